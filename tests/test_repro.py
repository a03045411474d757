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


# Runs reproducer scripts one after another in one fresh, isolated interpreter (-I: no
# gradxval on its path, no user site): each as __main__, its exit status and output kept.
# One interpreter per framework instead of one per script: torch's or jax's import once.
_DRIVER = """
import contextlib, io, json, runpy, sys
out = []
for path in sys.argv[1:]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            runpy.run_path(path, run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out.append([code, buf.getvalue()])
print(json.dumps(out))
"""


def _run_alone(paths, cwd=None) -> list:
    import json

    run = subprocess.run([sys.executable, "-I", "-c", _DRIVER, *map(str, paths)],
                         capture_output=True, text=True, timeout=300, cwd=cwd)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.parametrize("backend", [b for b in available_backends() if b in RECIPES])
def test_reproducer_runs_alone_and_exits_1_while_wrong(backend, tmp_path):
    case = Case.from_id(SATURATED)
    ref = reference_for(case, case.inputs())
    methods = RECIPES[backend][1]
    paths = []
    for method in methods:
        d = tmp_path / method
        d.mkdir()
        path = write_reproducer(
            d,
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
        paths.append(path)
    for method, (code, stdout) in zip(methods, _run_alone(paths, tmp_path), strict=True):
        # autodiff differentiates sigma(1 - sigma): wrong on saturated x; closed forms are right
        assert code == (1 if method == "autodiff" else 0), (method, stdout)
        assert f"{backend}/{method} grad_x on {SATURATED}" in stdout
        assert "reference" in stdout and "tolerance" in stdout


def test_reproducer_handles_input_dtypes_and_0d_results(tmp_path):
    backend = "torch" if "torch" in available_backends() else "numpy"
    paths = []
    for dtype, quantities in [("bfloat16", ("loss", "grad_A")), ("complex64", ("grad_A",)),
                              ("float64", ("loss",))]:  # fmt: skip
        case = Case.from_id(f"normal-{dtype}-m5n4k2-s1")
        ref = reference_for(case, case.inputs())
        for q in quantities:
            d = tmp_path / f"{dtype}-{q}"
            d.mkdir()
            tol = tolerance_u(q, case.m, case.n, case.k)
            paths.append(write_reproducer(d, case, backend, "closed_form", q, ref, tol, "test"))
    results = _run_alone(paths)
    assert len(results) == 4 and all(code == 0 for code, _ in results), results


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
