"""Findings: flagged results grouped by what is wrong (issue 23).

Three plug-ins with one planted fault each come out of check-backend as exactly one finding
with the right diagnosis and a standalone reproducer that exits 1; an honest one gets none.
Each new diagnosis has a planted fault that triggers it and one where it must not appear.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gradxval.cli import main
from gradxval.output.findings import findings

PLANTED = {
    "Widened": ("dtype", "wrong dtype: promoted_dtype", {"float16"}),
    "Rewrite": ("diagnosed", "rewrite_cancellation", None),
    "Float32": ("diagnosed", "computed_in_float32", {"float64"}),
}


@pytest.mark.parametrize("name", [*PLANTED, "Honest"])
def test_check_backend_reports_a_planted_fault_as_one_finding(name, tmp_path, capsys):
    out = tmp_path / "out"
    cases = "24" if name == "Rewrite" else "12"  # it needs saturated cases with x < 0
    args = ["--cases", cases, "--out", str(out), "--in-process"]
    status = main(["check-backend", f"planted_plugins:{name}", *args])
    summary = json.loads((out / "summary.json").read_text())
    for f in ("report.md", "report.html", "results.jsonl"):
        assert (out / f).exists(), f
    assert summary["run"]["conformance"] is not None
    if name == "Honest":
        assert status == 0 and summary["findings"] == []
        return
    assert status == 1
    (f,) = summary["findings"]
    kind, sig, dtypes = PLANTED[name]
    assert (f["kind"], f["signature"], f["quantity"]) == (kind, sig, "grad_x")
    assert dtypes is None or set(f["dtypes"]) == dtypes
    assert f["diagnoses"][0]["reproduces"] == f["count"]  # the model reproduces all of it
    script = out / f["standalone"]
    run = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    imports = [ln for ln in script.read_text().splitlines() if ln.startswith(("import", "from"))]
    assert imports and not any("gradxval" in ln for ln in imports)  # numpy alone
    printed = capsys.readouterr().out
    assert f"F1 planted_plugins:{name}/closed_form grad_x: {sig}" in printed


def _run(backends, dtypes, tmp_path, cases=30):
    from gradxval.campaign import Settings, execute, plan

    p = plan(Settings(backends=backends, dtypes=dtypes, cases=cases, seed=2))
    return execute(p, None, isolate=False, follow_up=False).summary["findings"]


def test_computed_in_float32_appears_only_where_float32_is_the_fault(tmp_path):
    found = _run("mutants:Float32Inside,mutants:FactorTwo", "float64", tmp_path)
    by_backend = {}
    for f in found:
        by_backend.setdefault(f["backend"], set()).update(d["name"] for d in f["diagnoses"])
    assert "computed_in_float32" in by_backend["mutants:Float32Inside"]
    assert "computed_in_float32" not in by_backend["mutants:FactorTwo"]


def test_rewrite_cancellation_is_not_the_cancelling_derivative_rule(tmp_path):
    """sigma - sigma^2 is the cancelling derivative rule: that names its finding.  Where x is
    large the rewrite cancels to the same values, so it may fit some results, never all."""
    found = _run("mutants:SigmaMinusSigmaSquared", "float32,float64", tmp_path)
    assert {f["signature"] for f in found} == {"derivative_cancellation"}
    for f in found:
        share = {d["name"]: d["reproduces"] for d in f["diagnoses"]}
        assert share["derivative_cancellation"] == f["count"]
        assert share.get("rewrite_cancellation", 0) < f["count"]


def _rec(backend, quantity, case, diagnoses=(), verdict="disagree", error=100.0, message=""):
    return {"backend": backend, "method": "closed_form", "quantity": quantity, "case_id": case,
            "dtype": case.split("-")[1], "regime": case.split("-")[0], "verdict": verdict,
            "error_u": error, "tolerance_u": 10.0, "message": message,
            "reproduce": f"gradxval replay {case}",
            "extra": {"diagnosis": list(diagnoses)}}  # fmt: skip


def test_one_fault_is_one_finding_and_unexplained_comes_first():
    from gradxval.judge.known import load_registry

    recs = [
        _rec("lib", "grad_x", "normal-float32-m4n4-s1", ["derivative_cancellation",
                                                         "rewrite_cancellation"]),
        _rec("lib", "grad_x", "normal-float32-m2n2-s2", ["all_zero_gradient",
                                                         "rewrite_cancellation"]),
        _rec("lib", "grad_x", "saturated-float64-m9n9-s3", ["derivative_cancellation"], error=1e9),
        _rec("lib", "loss", "normal-float32-m3n3-s4", error=20.0),
        _rec("lib", "grad_A", "normal-float32-m3n3-s4", verdict="error",
             message="lib/closed_form grad_A: raised ValueError: bad"),
        _rec("numpy", "grad_x", "normal-float32-m1n1-s5", verdict="agree"),
    ]  # fmt: skip
    found = findings(recs, load_registry())
    sigs = [(f["quantity"], f["signature"], f["count"]) for f in found]
    assert sigs[:2] == [("grad_A", "error: ValueError", 1), ("loss", "unexplained", 1)]
    assert ("grad_x", "rewrite_cancellation", 2) in sigs  # both, although one fits another
    assert ("grad_x", "derivative_cancellation", 1) in sigs
    rewrite = next(f for f in found if f["signature"] == "rewrite_cancellation")
    assert rewrite["smallest_case"] == "normal-float32-m2n2-s2"
    assert [(d["name"], d["reproduces"]) for d in rewrite["diagnoses"]][0] == (
        "rewrite_cancellation",
        2,
    )
    assert rewrite["same_as"] == []  # no registered fault has this model
    cancel = next(f for f in found if f["signature"] == "derivative_cancellation")
    assert "sigmoid-grad-cancellation" in {s["id"] for s in cancel["same_as"]}
    assert [f["id"] for f in found] == [f"F{i}" for i in range(1, len(found) + 1)]


def test_diff_compares_findings(tmp_path):
    from gradxval.output.diff import diff_records

    a = [_rec("lib", "grad_x", "normal-float32-m4n4-s1")]
    b = a + [
        _rec("lib", "grad_x", "normal-float32-m5n5-s2"),
        _rec("lib", "loss", "normal-float32-m4n4-s1"),
    ]
    env = {"environment": {"backends": {}}}
    d = diff_records(a, b, base_summary=env | {"findings": findings(a)},
                     new_summary=env | {"findings": findings(b)})  # fmt: skip
    assert [(f["quantity"], f["signature"]) for f in d.new_findings] == [("loss", "unexplained")]
    assert [(f["quantity"], f["count"], f["before"]) for f in d.grown_findings] == [
        ("grad_x", 2, 1)
    ]
    assert not d.gone_findings and "New findings (1)" in d.text()


def test_products_accumulated_in_dtype_reproduces_a_half_precision_accumulator():
    """Positive terms (where the condition scale cannot absorb it): a float16 z = A s summed
    in float16 is diagnosed; a result 5 % off is not."""
    from types import SimpleNamespace

    import numpy as np
    from gradxval.dtypes import info
    from gradxval.judge.error_model import measure
    from gradxval.judge.evidence import _products_accumulated_in_dtype

    rng = np.random.default_rng(0)
    A = rng.uniform(0.5, 1, (3, 2000)).astype(np.float16).astype(np.float64)
    x = rng.uniform(-1, 1, 2000).astype(np.float16).astype(np.float64)
    s = 1 / (1 + np.exp(-x))
    exact = 2 * (A @ s)[:, None] * s[None, :]
    ref = SimpleNamespace(embedding=A, sigma=s, sigma_prime=s * (1 - s),
                          values={"grad_A": exact}, scale={"grad_A": 2 * (A @ s)[:, None] * s},
                          under={"grad_A": np.ones_like(exact)})  # fmt: skip
    case = SimpleNamespace(dtype="float16", n=2000, k=None, problem="logistic")
    Ad, sd = A.astype(np.float16), s.astype(np.float16)
    acc = np.zeros(3, np.float16)
    for j in range(2000):
        acc = (acc + Ad[:, j] * sd[j]).astype(np.float16)
    low = (2 * acc.astype(np.float32)[:, None] * sd.astype(np.float32)[None, :]).astype(np.float16)
    off = (exact * 1.05).astype(np.float16)  # wrong, but not by the accumulator
    di = info("float16")
    for result, diagnosed in ((low, True), (off, False)):
        ms = measure(result, exact, ref.scale["grad_A"], ref.under["grad_A"], di, "float16")
        assert ms.error_u > 10  # a disagreement either way
        explained = _products_accumulated_in_dtype(case, "grad_A", result, ref, ms, 10.0)
        assert bool(explained is not None and explained.all()) is diagnosed


def test_constant_factor_names_a_doubled_gradient_and_nothing_else(tmp_path):
    found = _run("mutants:FactorTwo,mutants:SigmaForSigmaPrime", "float32,float64", tmp_path)
    sigs = {(f["backend"], f["signature"]) for f in found}
    assert ("mutants:FactorTwo", "constant_factor") in sigs
    # sigma where sigma' belongs is wrong by a factor that varies with x: no constant fits
    assert not any(b == "mutants:SigmaForSigmaPrime" and s == "constant_factor" for b, s in sigs)
    assert all(f["quantity"] != "loss" or f["signature"] != "constant_factor" for f in found)
