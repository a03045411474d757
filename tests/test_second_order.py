"""Second order: hvp_x, its reference, tolerance, routes, registry entries and front doors."""

from __future__ import annotations

import json
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from gradxval.judge.known import load_registry
from gradxval.judge.problem_reference import reference_for
from gradxval.judge.witness import partial_derivative
from gradxval.model.cases import Case
from gradxval.model.problems import PROBLEMS, load_problem, parse_order
from gradxval.run.runner import run_cases


def _mp_hvp(case, inputs, activation):
    """H v of ||A phi(x)||^2 at 60 digits, column by column."""
    A = np.asarray(inputs.A, dtype=complex)
    X = np.asarray(inputs.x, dtype=float).reshape(case.n, -1)
    V = np.asarray(inputs.v, dtype=float).reshape(case.n, -1)
    out = np.zeros(X.shape)
    with mpmath.workdps(60):
        Am = [
            [mpmath.mpc(A[i, j].real, A[i, j].imag) for j in range(case.n)] for i in range(case.m)
        ]

        def normal(t):
            z = [sum(Am[i][j] * t[j] for j in range(case.n)) for i in range(case.m)]
            return [
                mpmath.re(sum(mpmath.conj(Am[i][j]) * z[i] for i in range(case.m)))
                for j in range(case.n)
            ]

        for c in range(X.shape[1]):
            ts = [mpmath.mpf(float(t)) for t in X[:, c]]
            p = [activation.mp(t)[0] for t in ts]
            dp = [activation.mp(t)[1] for t in ts]
            ddp = [activation.mp2(t) for t in ts]
            b, b2 = normal(p), normal([dp[j] * V[j, c] for j in range(case.n)])
            for j in range(case.n):
                out[j, c] = float(2 * ddp[j] * b[j] * V[j, c] + 2 * dp[j] * b2[j])
    return out.reshape(case.x_shape)


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize(
    "cid", ["normal-float64-m5n4-s2", "saturated-float64-m3n6k2-s3", "normal-complex128-m4n3-s1"]
)
def test_hvp_reference_matches_60_digit_mpmath(name, cid):
    case = Case.from_id(f"{name}:{cid}")
    inputs = case.inputs()
    ref = reference_for(case, inputs, second_order=True)
    truth = _mp_hvp(case, inputs, PROBLEMS[name].activation)
    err = np.abs(ref.values["hvp_x"] - truth) / (2.0**-53 * ref.scale["hvp_x"])
    assert err.max() <= 1.0, err.max()


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_second_derivatives_keep_relative_accuracy_where_rules_cancel(name):
    act = PROBLEMS[name].activation
    x = np.concatenate([np.linspace(-60, 60, 241), [1e-8, -1e-8, 3e-3]])
    got = act.second(x, np)
    with mpmath.workprec(200):
        want = np.array([float(act.mp2(mpmath.mpf(float(t)))) for t in x])
    rel = np.abs(got - want) / np.abs(want)
    assert np.nanmax(rel) < 8 * 2.0**-53, (x[np.nanargmax(rel)], np.nanmax(rel))


def test_v_is_drawn_after_a_and_x():
    case = Case.from_id("saturated-float32-m5n4k2-s9")
    inputs = case.inputs()
    assert inputs.v.shape == case.x_shape and inputs.v.dtype == inputs.x.dtype
    again = case.inputs()
    assert np.array_equal(inputs.v, again.v) and not np.array_equal(inputs.v, inputs.x)


def test_witness_sides_with_the_reference_on_hvp():
    case = Case.from_id("normal-float64-m6n5k2-s4")
    ref = reference_for(case, case.inputs(), second_order=True)
    w = partial_derivative(ref, case, "hvp_x", (2, 1))
    assert w is not None and w.admits(ref.values["hvp_x"][2, 1])
    assert w.error < 1e-6 * np.abs(ref.values["hvp_x"]).max()
    assert not w.admits(ref.values["hvp_x"][2, 1] * (1 + 1e-3))


def test_order_names():
    assert parse_order("2") == ("hvp_x",)
    assert parse_order("all")[-1] == "hvp_x"
    with pytest.raises(Exception, match="order"):
        parse_order("3")


def _run(cids, backends, **kw):
    out: list = []
    run_cases([Case.from_id(c) for c in cids], backends, out.append, isolate=False, **kw)
    return out


def test_every_route_agrees_on_a_normal_case_and_a_missing_route_says_why():
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    pytest.importorskip("autograd")
    out = _run(["normal-float64-m7n5k2-s3"], ["numpy", "torch", "jax", "autograd"], order="2")
    assert {v.quantity for v in out} == {"hvp_x"}
    by = {(v.backend, v.method): v for v in out}
    for key in [
        ("numpy", "closed_form"),
        ("torch", "fwd_over_rev"),
        ("torch", "rev_over_rev"),
        ("jax", "fwd_over_rev"),
        ("jax", "rev_over_rev"),
        ("autograd", "rev_over_rev"),
    ]:
        assert by[key].verdict == "agree", by[key].message
        assert by[key].reproduce.endswith("--order 2")
    missing = by[("autograd", "fwd_over_rev")]
    assert missing.verdict == "unsupported" and "JVP of expit" in missing.message


def test_order_all_judges_both_orders_once():
    out = _run(["normal-float32-m4n3-s1"], ["numpy"], order="all")
    assert sorted(v.quantity for v in out) == ["grad_A", "grad_x", "hvp_x", "loss"]


def test_torch_logsigmoid_double_backward_is_known_never_agree():
    pytest.importorskip("torch")
    cid = "logsigmoid:saturated-float64-m3n6k2-s3"
    out = _run([cid], ["torch", "numpy"], order="2")
    routes = [v for v in out if v.backend == "torch" and v.method != "closed_form"]
    assert routes and all(v.verdict == "known" for v in routes), [v.message for v in routes]
    assert {v.classification for v in routes} == {"torch-logsigmoid-double-backward-cancellation"}
    assert all("pytorch/issues/195530" in v.message for v in routes)
    # the same values from another library are a disagreement: the entry names torch only
    entry = next(e for e in load_registry().entries if e.id.startswith("torch-logsigmoid"))
    assert all(s.backends == ("torch",) for s in entry.scopes)


def test_saturated_sigmoid_routes_are_known_and_the_closed_forms_agree():
    pytest.importorskip("torch")
    out = _run(["saturated-float32-m10n50-s7"], ["torch", "numpy"], order="2")
    by = {(v.backend, v.method): v for v in out}
    assert by[("numpy", "closed_form")].verdict == "agree"
    assert by[("torch", "closed_form")].verdict == "agree"
    for m in ("fwd_over_rev", "rev_over_rev"):
        v = by[("torch", m)]
        assert v.verdict == "known" and "sigmoid-second-derivative-cancellation" in (
            v.classification or ""
        ), v.message


def test_a_problem_without_second_order_is_unsupported_not_agree():
    from gradxval.model.problems import Problem

    assert Problem().hvp_closed_form(None, None, None, None) is None
    assert load_problem("logistic").hvp_closed_form is not None


def test_cli_order_2_runs_and_writes_hvp_verdicts(tmp_path):
    out = tmp_path / "run"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradxval",
            "run",
            "--order",
            "2",
            "--backends",
            "numpy",
            "--cases",
            "6",
            "--regimes",
            "normal",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    verdicts = [r for r in records if "verdict" in r]
    assert verdicts and {r["quantity"] for r in verdicts} == {"hvp_x"}
    assert json.loads((out / "manifest.json").read_text())["settings"]["order"] == "2"


def test_cli_rejects_an_unknown_order(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "gradxval", "run", "--order", "3", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "--order" in run.stderr


def test_check_formula_order_2(tmp_path):
    from gradxval.followup.formula import check_formula

    def right(A, x, v, xp):
        from gradxval.model.problems import LOGISTIC, closed_form_hvp

        return closed_form_hvp(A, x, v, xp, LOGISTIC.triple)

    def gauss_newton(A, x, v, xp):
        s = 1 / (1 + xp.exp(-x))
        sp = s * (1 - s)
        return 2 * sp * (A.T @ (A @ (sp * v)))

    good = check_formula(right, backends=("numpy",), cases=6, order=2)
    assert good.ok and good.counts()["agree"] == 6
    bad = check_formula(gauss_newton, backends=("numpy",), cases=6, order=2, shrink=False)
    assert not bad.ok and all(v.quantity == "hvp_x" for v in bad.verdicts)


def test_pytest_plugin_order_2(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--pyargs",
            "gradxval",
            "--gradxval-backends",
            "numpy",
            "--gradxval-cases",
            "3",
            "--gradxval-order",
            "2",
            "--gradxval-regimes",
            "normal",
            "--gradxval-report",
            str(tmp_path / "report"),
            "-rA",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("PASSED test_crossvalidation.py::test_gradxval[numpy-closed_form-") == 3
    # the report writer knows second-order quantities (it raised KeyError: 'hvp_x')
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["counts"]["agree"] == 3
    assert "hvp_x" in (tmp_path / "report" / "report.md").read_text()


def test_follow_up_of_a_second_order_disagreement_shrinks_with_order_2(tmp_path):
    from gradxval.followup.shrink import shrink_case
    from gradxval.judge.known import load_registry

    case = Case.from_id("normal-float32-m9n7-s3")
    small = shrink_case(case, "mutants:VAndXSwapped", "closed_form", "hvp_x", load_registry())
    assert (small.m, small.n) < (case.m, case.n) or small.n < case.n, small.id
    out = _run([small.id], ["mutants:VAndXSwapped"], order="2")
    assert any(v.verdict == "disagree" and v.quantity == "hvp_x" for v in out)
