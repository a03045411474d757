"""Problems: the built-in family, the registry, and a problem added in a single file."""

import sys
from pathlib import Path

import pytest
from _support import available_backends
from gradxval.errors import UsageError
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import Case, sample_cases
from gradxval.model.problems import PROBLEMS, known_problems, load_problem
from gradxval.run.runner import run_cases

EXAMPLES = str(Path(__file__).resolve().parent.parent / "examples")


def test_builtin_problems_and_unknown_names():
    assert {"logistic", "tanh", "softplus", "logsigmoid"} <= set(known_problems())
    with pytest.raises(UsageError, match="problem='nope', expected one of logistic"):
        load_problem("nope")


def test_problem_is_part_of_the_case_id():
    c = Case.from_id("tanh:saturated-float32-m5n4k2-s3")
    assert c.problem == "tanh" and c.id == "tanh:saturated-float32-m5n4k2-s3"
    assert Case.from_id("normal-float32-m5n4-s3").problem == "logistic"


@pytest.mark.parametrize("name", ["tanh", "softplus", "logsigmoid"])
def test_reference_uses_the_problems_own_derivative(name):
    import mpmath

    case = Case.from_id(f"{name}:normal-float64-m3n4-s2")
    ref = reference_for(case, case.inputs())
    act = PROBLEMS[name].activation
    for xi, s, sp in zip(case.inputs().x, ref.sigma, ref.sigma_prime, strict=True):
        want_s, want_sp = act.mp(mpmath.mpf(float(xi)))
        assert s == pytest.approx(float(want_s), rel=1e-15)
        assert sp == pytest.approx(float(want_sp), rel=1e-15)


@pytest.mark.parametrize("name", ["tanh", "softplus", "logsigmoid"])
def test_every_backend_runs_every_problem_without_false_alarm(name):
    cases = sample_cases(18, seed=4, problems=(name,), pool_size=4)
    out: list = []
    run_cases(cases, available_backends(), out.append, isolate=False)
    bad = [v.message for v in out if v.verdict in ("disagree", "error")]
    assert not bad, bad[:3]
    assert {v.backend for v in out if v.verdict == "agree"} == set(available_backends())


def test_tanh_autodiff_cancels_and_is_flagged():
    pytest.importorskip("torch")
    out: list = []
    run_cases(
        [Case.from_id("tanh:saturated-float32-m6n40-s3")], ["torch"], out.append, isolate=False
    )
    auto = next(v for v in out if v.method == "autodiff" and v.quantity == "grad_x")
    closed = next(v for v in out if v.method == "closed_form" and v.quantity == "grad_x")
    assert auto.verdict == "known" and "tanh-grad-cancellation" in auto.classification
    assert closed.verdict == "agree"


def test_a_problem_in_a_single_file_runs_on_every_backend(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    spec = "softsign_problem:SOFTSIGN"
    cases = sample_cases(12, seed=5, regimes=("normal",), problems=(spec,), pool_size=3)
    assert cases[0].id.startswith(f"{spec}:normal-")
    out: list = []
    run_cases(cases, available_backends(), out.append, isolate=False)
    bad = [v.message for v in out if v.verdict in ("disagree", "error")]
    assert not bad, bad[:3]
    assert {v.backend for v in out if v.verdict == "agree"} == set(available_backends())
    assert Case.from_id(cases[0].id) == cases[0]
    sys.modules.pop("softsign_problem", None)


def test_a_problem_without_high_precision_reference_is_judged_by_its_mp_loss(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    spec = "logsumexp_problem:LogSumExp"
    cases = sample_cases(
        12,
        seed=6,
        dtypes=("float32", "float64"),
        regimes=("normal",),
        problems=(spec,),
        pool_size=3,
    )
    cases = [c for c in cases if c.m and c.n and c.m * c.n <= 5000]  # the mp loss: 3 us each
    small = min(cases, key=lambda c: c.m * c.n)
    ref = reference_for(small, small.inputs())
    assert ref.confidence.startswith("mpmath at 60 digits")
    assert {"loss", "grad_x", "grad_A"} <= set(ref.values), ref.missing
    out: list = []
    run_cases(cases, available_backends(), out.append, isolate=False)
    bad = [v.message for v in out if v.verdict in ("disagree", "error")]
    assert not bad, bad[:3]
    judged = [v for v in out if v.verdict == "agree"]
    assert judged and all(v.extra["reference"] == ref.confidence for v in judged)
    # a real-only problem declines complex dtypes instead of failing
    out = []
    run_cases(
        [Case("normal", "complex64", 3, 2, None, 1, spec)], ["numpy"], out.append, isolate=False
    )
    assert {v.verdict for v in out} == {"unsupported"}
    sys.modules.pop("logsumexp_problem", None)
