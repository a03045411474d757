"""The third-party backend package plugins/gradxval-mygrad, installed by CI from its own package."""

import subprocess
import sys

import pytest

pytest.importorskip("gradxval_mygrad", reason="pip install -e plugins/gradxval-mygrad")

from gradxval.backends import known_backends  # noqa: E402
from gradxval.model.cases import sample_cases  # noqa: E402
from gradxval.run.conformance import check_backend, failing  # noqa: E402
from gradxval.run.runner import run_cases  # noqa: E402


def test_entry_point_is_listed_without_importing_it():
    code = (
        "import sys, gradxval.backends as b; names = b.known_backends();"
        "print('mygrad' in names, 'mygrad' in sys.modules, 'gradxval_mygrad' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False"]
    assert known_backends()["mygrad"] == "gradxval_mygrad:MygradBackend"


def test_plugin_passes_the_conformance_kit():
    problems = check_backend("mygrad")
    assert failing(problems) == []
    # its one real deviation is explained by evidence, not hidden; its lack of second-order
    # autodiff is a note (check-backend then judges first order: CI runs it on mygrad)
    notes = [p for p in problems if p.startswith("note: ")]
    assert len(notes) == 1 and "no second-order autodiff" in notes[0]
    assert all("python-scalar-promotes-to-float64" in p for p in problems if p not in notes)


def test_plugin_agreement_run_has_nothing_unexplained():
    out: list = []
    run_cases(sample_cases(24, seed=3), ["numpy", "mygrad"], out.append, isolate=False)
    bad = [v.message for v in out if v.verdict in ("disagree", "error")]
    assert not bad, bad[:3]
    assert any(v.backend == "mygrad" and v.verdict == "agree" for v in out)


def test_a_plugin_without_second_order_autodiff_is_shown_and_named_is_incomplete(tmp_path, capsys):
    from gradxval.cli import main
    from gradxval.output import read_jsonl

    args = ["run", "--order", "2", "--cases", "2", "--dtypes", "float64", "--quiet", "--in-process"]
    assert main([*args, "--backends", "numpy,mygrad", "--out", str(tmp_path / "named")]) == 4
    err = capsys.readouterr().err
    assert "mygrad was asked for by name but its second-order autodiff judged nothing" in err
    rows = [r for r in read_jsonl(tmp_path / "named" / "results.jsonl") if r["method"] == "hvp"]
    assert rows and all(r["verdict"] == "unsupported" for r in rows)
    assert "no second-order autodiff" in rows[0]["message"]
    # not named (every installed backend): shown as unsupported, and the run passes
    assert main([*args, "--out", str(tmp_path / "all")]) == 0
    rows = read_jsonl(tmp_path / "all" / "results.jsonl")
    assert any(r["backend"] == "mygrad" and r["method"] == "hvp" for r in rows)


def test_the_plugin_checks_declared_functions():
    """The adapter (docs/plugins.md): reverse mode on declared functions, erf unsupported."""
    from gradxval.checking import check

    r = check("suite:huber,softmax_xent,gelu_erf", backends="mygrad", dtypes=("float64",), cases=3)
    outcomes = {(rec["function"], rec["outcome"]) for rec in r.records}
    assert ("huber", "agree") in outcomes and ("softmax_xent", "agree") in outcomes
    assert {o for f, o in outcomes if f == "gelu_erf"} == {"unsupported"}
    assert r.ok


def test_repro_writes_a_standalone_reproducer_for_a_plugins_known_fault(tmp_path):
    """The plug-in's repro_recipe: `gradxval repro` for its registered fault, numpy and mygrad
    only, exits 1 while the fault persists."""
    from gradxval.cli import main

    args = ["run", "--backends", "mygrad", "--regimes", "saturated", "--dtypes", "float64"]
    main([*args, "--cases", "6", "--quiet", "--in-process", "--out", str(tmp_path)])
    assert main(["repro", str(tmp_path), "--known", "mygrad-sigmoid-grad-cancellation"]) == 0
    (script,) = (tmp_path / "known").glob("mygrad-sigmoid-grad-cancellation-*.py")
    imports = [ln for ln in script.read_text().splitlines() if ln.startswith(("import", "from"))]
    assert imports and not any("gradxval" in ln for ln in imports)
    run = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr


def test_the_plugins_registered_dtype_fault_holds_for_declared_functions():
    """MyGrad wraps a Python float as a float64 array (its known.toml entry): README's
    tanh_ridge loss, 0.5 * sum(x * x) included, comes back float64 for float32 inputs.  The
    plug-in's own entry names it; the same float64 result from another backend, or a float64
    result that is wrong once rounded, is not explained by it."""
    import numpy as np
    from gradxval.backends import load
    from gradxval.model.functions import function
    from gradxval.model.sampling import FunctionCase
    from gradxval.run.check_case import check_case

    @function(A="m n", x="n")
    def tanh_ridge(A, x, *, xp, nn):
        return xp.sum((A @ xp.tanh(x)) ** 2) + 0.5 * xp.sum(x * x)

    case = FunctionCase("tanh_ridge", "normal", "float32", (("m", 3), ("n", 4)), 5)
    mygrad = load("mygrad")

    def loss(backend, name="mygrad"):
        recs = check_case(tanh_ridge, case, {name: backend}, ("autodiff",), 1)
        return next(r for r in recs if r["quantity"] == "loss")

    got = loss(mygrad)
    assert got["outcome"] == "known" and got["note"] == "mygrad-python-scalar-promotes-to-float64"

    class Wider(type(mygrad)):
        """float64 and 1 % off: the dtype is the fault's, the values are not"""

        def run_function(self, method, fn, arrays, dtype, extra=None):
            out = super().run_function(method, fn, arrays, dtype, extra)
            return {k: np.asarray(v, np.float64) * (1.01 if k == "loss" else 1) for k, v in
                    out.items()}  # fmt: skip

    assert loss(Wider())["outcome"] == "disagree"
    numpy = load("numpy")

    class NumpyWide(type(numpy)):
        """numpy's value, honest but float64: MyGrad's entry is not numpy's"""

        def run_function(self, method, fn, arrays, dtype, extra=None):
            out = super().run_function(method, fn, arrays, dtype, extra)
            return {k: np.asarray(v, np.float64) for k, v in out.items()}

    recs = check_case(tanh_ridge, case, {"numpy": NumpyWide()}, ("value",), 1)
    assert [r["outcome"] for r in recs if r["quantity"] == "loss"] == ["disagree"]
    # a function that promotes by itself (a float64 array it closes over) is the user's to
    # fix on every backend: MyGrad's entry does not explain its float64 loss either
    w = np.linspace(0.5, 1.5, 4)  # float64

    @function(A="m n", x="n")
    def weighted(A, x, *, xp, nn):
        return xp.sum((A @ xp.tanh(x)) ** 2) + xp.sum(w * x * x)

    recs = check_case(weighted, case, {"mygrad": mygrad}, ("autodiff",), 1)
    assert [r["outcome"] for r in recs if r["quantity"] == "loss"] == ["disagree"]
