"""Standalone reproducers and shrinking."""

import subprocess
import sys

import pytest
from _support import available_backends
from gradxval.backends.recipes import RECIPES
from gradxval.followup.repro import follow_up, write_reproducer
from gradxval.followup.shrink import shrink_case
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import Case
from gradxval.model.tolerance import tolerance_u

SATURATED = "saturated-float32-m12n40-s3"


def _params():
    for b in available_backends():
        for method in RECIPES[b][1]:
            # autodiff differentiates sigma(1 - sigma): wrong on saturated x; closed forms are right
            yield b, method, 1 if method == "autodiff" else 0


@pytest.mark.parametrize(
    "backend, method, want", list(_params()), ids=[f"{b}-{m}" for b, m, _ in _params()]
)
def test_reproducer_runs_alone_and_exits_1_while_wrong(backend, method, want, tmp_path):
    case = Case.from_id(SATURATED)
    ref = reference_for(case, case.inputs())
    path = write_reproducer(
        tmp_path,
        case,
        backend,
        method,
        "grad_x",
        ref,
        tolerance_u("grad_x", case.m, case.n, case.k),
        "test",
    )
    text = path.read_text()
    assert "import gradxval" not in text and "from gradxval" not in text
    out = subprocess.run(
        [sys.executable, "-I", str(path)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == want, out.stdout + out.stderr
    assert f"{backend}/{method} grad_x on {SATURATED}" in out.stdout
    assert "reference" in out.stdout and "tolerance" in out.stdout


@pytest.mark.parametrize(
    "dtype, quantities",
    [("bfloat16", ("loss", "grad_A")), ("complex64", ("grad_A",)), ("float64", ("loss",))],
)
def test_reproducer_handles_input_dtypes_and_0d_results(dtype, quantities, tmp_path):
    backend = "torch" if "torch" in available_backends() else "numpy"
    case = Case.from_id(f"normal-{dtype}-m5n4k2-s1")
    ref = reference_for(case, case.inputs())
    for q in quantities:
        path = write_reproducer(
            tmp_path,
            case,
            backend,
            "closed_form",
            q,
            ref,
            tolerance_u(q, case.m, case.n, case.k),
            "test",
        )
        out = subprocess.run(
            [sys.executable, "-I", str(path)], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stdout + out.stderr


def test_shrink_finds_the_boundary_of_a_size_dependent_fault():
    case = Case.from_id("normal-float32-m300n257-s5")
    small = shrink_case(case, "mutants:WrongAboveN64", "closed_form", "grad_x")
    assert (small.m, small.n, small.k, small.seed) == (1, 65, None, 0)


def test_follow_up_records_shrunk_case_and_skips_plugins_without_recipe(tmp_path):
    rec = {
        "case_id": "normal-float64-m20n9-s2",
        "backend": "mutants:FactorTwo",
        "method": "closed_form",
        "quantity": "grad_x",
        "verdict": "disagree",
    }
    extra = follow_up([rec], tmp_path, None, {})
    got = extra[("normal-float64-m20n9-s2", "mutants:FactorTwo", "closed_form", "grad_x")]
    assert got == {"shrunk_case": "normal-float64-m1n1-s0", "standalone": None}


def test_known_faults_get_one_reproducer_per_entry_and_backend(tmp_path, capsys):
    """Known faults are the ones to file upstream: DIR/known/<entry>-<backend>.py, and
    `gradxval repro DIR --known ENTRY` shrinks it first."""
    from gradxval.cli import main

    pytest.importorskip("torch")
    d = tmp_path / "run"
    args = ["run", "--backends", "numpy,torch", "--regimes", "saturated", "--dtypes", "float32"]
    assert main([*args, "--cases", "6", "--quiet", "--out", str(d)]) == 0
    files = sorted(p.name for p in (d / "known").iterdir())
    assert "sigmoid-grad-cancellation-torch.py" in files
    assert len(files) == len(set(files))
    run = subprocess.run([sys.executable, str(d / "known" / files[0])], capture_output=True)
    assert run.returncode == 1  # the fault persists in this torch
    capsys.readouterr()
    assert (
        main(["repro", str(d), "--known", "sigmoid-grad-cancellation", "--backend", "torch"]) == 0
    )
    path = capsys.readouterr().out.strip()
    assert path.endswith("known/sigmoid-grad-cancellation-torch.py")
    text = open(path).read()
    assert "saturated-float32-m1n" in text  # shrunk to one row of A
    import torch

    assert f"found with torch {torch.__version__}" in text  # was "found with torch ?"
    assert main(["repro", str(d), "--known", "tanh-grad-cancellation"]) == 2
    assert main(["repro", str(d), "--known", "no-such-entry"]) == 2
