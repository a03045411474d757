"""Issue 20: verdicts true outside the default run (each test failed before its fix)."""

from __future__ import annotations

import numpy as np
from gradxval.dtypes import info
from gradxval.judge.error_model import measure
from gradxval.judge.evidence import EVIDENCE
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import Case


def _flush_model(case_id, actual):
    case = Case.from_id(case_id)
    ref = reference_for(case, case.inputs())
    di = info(case.dtype)
    ms = measure(actual, ref.values["loss"], ref.scale["loss"], ref.under["loss"], di, "float32")
    tol = 21.083
    return ms, EVIDENCE["subnormal_flush"](case, "loss", actual, ref, ms, tol), ref


def test_flushed_squares_of_the_loss_are_the_flush_model():
    # XLA's loss of this case drops the three of 146 squares z_i^2 below float32's tiny
    cid = "saturated-float32-m146n1-s21230"
    case = Case.from_id(cid)
    ref = reference_for(case, case.inputs())
    sq = np.square(ref.embedding @ ref.sigma.reshape(case.n, 1))
    tiny = info("float32").tiny
    assert 0 < np.count_nonzero(sq < tiny) < sq.size
    flushed = np.float32(np.sum(np.where(sq < tiny, 0.0, sq)))
    ms, explained, _ = _flush_model(cid, flushed)
    assert ms.e.max() > 21.083  # outside the tolerance, so it needs the model
    assert explained is not None and explained.all()
    # the same error the other way (a loss too large) is not a flush
    too_big = np.float32(2 * ref.values["loss"] - np.float64(flushed))
    ms, explained, _ = _flush_model(cid, too_big)
    assert ms.e.max() > 21.083 and not explained.all()


def test_sampler_honours_a_problems_declared_regimes_and_dtypes():
    import sys
    from pathlib import Path

    import pytest
    from gradxval.dtypes import DTYPES
    from gradxval.errors import UsageError
    from gradxval.model.cases import REGIMES, sample_cases
    from gradxval.model.problems import domains

    sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
    name = "logsumexp_problem:LogSumExp"
    doms = domains([name, "logistic"], DTYPES, REGIMES)
    assert doms[name] == (("float32", "float64"), ("normal", "saturated", "strided"))
    cases = sample_cases(120, 7, DTYPES, REGIMES, problems=(name, "logistic"), domains=doms)
    lse = [c for c in cases if c.problem == name]
    assert {c.regime for c in lse} == {"normal", "saturated", "strided"}
    assert {c.dtype for c in lse} == {"float32", "float64"}
    # the built-in keeps every regime and dtype; the built-ins' own domains change no draw
    seed = [c for c in cases if c.problem == "logistic"]
    assert {c.regime for c in seed} == set(REGIMES) and {c.dtype for c in seed} == set(DTYPES)
    four = ("logistic", "tanh", "softplus", "logsigmoid")
    full = sample_cases(90, 3, DTYPES, REGIMES, problems=four)
    doms = domains(four, DTYPES, REGIMES)
    assert sample_cases(90, 3, DTYPES, REGIMES, problems=four, domains=doms) == full
    # --regimes narrows; nothing left is a usage error naming what the problem declares
    assert domains([name], DTYPES, ("saturated", "special"))[name][1] == ("saturated",)
    with pytest.raises(UsageError, match="declares regimes normal, saturated, strided"):
        domains([name], DTYPES, ("special",))
    with pytest.raises(UsageError, match="declares dtypes float32, float64"):
        domains([name], ("float16",), REGIMES)


def _doubled_problem():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
    from logsumexp_problem import LogSumExp

    class Doubled(LogSumExp):
        name = "lse-doubled"

        def closed_form(self, A, x, xp):
            loss, gx, gA = super().closed_form(A, x, xp)
            return loss, 2 * gx, gA

    return Doubled()


def test_a_users_closed_form_is_never_the_reference(monkeypatch):
    # a closed form with grad_x doubled: flagged as the closed form; autodiff agrees
    from gradxval.model import problems
    from gradxval.run.runner import run_cases

    doubled = _doubled_problem()
    monkeypatch.setitem(problems.PROBLEMS, "lse-doubled", doubled)
    problems.load_problem.cache_clear()
    cases = [
        Case("normal", "float64", 6, 4, None, 3, "lse-doubled"),
        Case("saturated", "float32", 3, 5, 2, 4, "lse-doubled"),
    ]
    out: list = []
    run_cases(cases, ["numpy", "torch"], out.append, isolate=False)
    problems.load_problem.cache_clear()
    by = {(v.case_id, v.backend, v.method, v.quantity): v.verdict for v in out}
    for c in cases:
        for b in ("numpy", "torch"):
            assert by[(c.id, b, "closed_form", "grad_x")] == "disagree"
            assert by[(c.id, b, "closed_form", "grad_A")] == "agree"
        assert by[(c.id, "torch", "autodiff", "grad_x")] == "agree"


def test_the_mp_reference_matches_60_digit_mpmath_and_declines_what_it_cannot_do():
    import mpmath
    from gradxval.judge.mp_reference import GRADIENT_BUDGET, multiprecision_reference

    p = _doubled_problem()
    case = Case("normal", "float64", 3, 2, None, 9, "lse-doubled")
    inp = case.inputs()
    ref = multiprecision_reference(p, case, inp)
    with mpmath.workdps(60):  # d/dx_j sum logsumexp(A x) = sum_i softmax(A x)_i A_ij
        A = mpmath.matrix(inp.A.tolist())
        z = A * mpmath.matrix(inp.x.tolist())
        e = [mpmath.exp(t) for t in z]
        sm = [t / sum(e) for t in e]
        gx = [sum(sm[i] * A[i, j] for i in range(3)) for j in range(2)]
        assert abs(ref.values["loss"] - mpmath.log(sum(e))) < 1e-15 * abs(ref.values["loss"])
        for j in range(2):
            assert abs(ref.values["grad_x"][j] - gx[j]) <= 1e-16 * abs(gx[j])
    big = Case("normal", "float64", 300, 200, None, 1, "lse-doubled")
    ref = multiprecision_reference(p, big, big.inputs())
    assert "grad_A" not in ref.values and str(GRADIENT_BUDGET) in ref.missing["grad_A"]
    assert "loss" in ref.values


def test_float16_loss_faults_are_caught_on_wide_cases():
    from gradxval.run.runner import run_cases

    out: list = []
    run_cases(
        [Case.from_id("normal-float16-m1n983-s888290")],
        ["numpy", "mutants:Float16LossOneTermUnsquared", "mutants:Float16LossTenPercent"],
        out.append,
        isolate=False,
    )
    loss = {v.backend: v.verdict for v in out if v.quantity == "loss"}
    assert loss == {
        "numpy": "agree",
        "mutants:Float16LossOneTermUnsquared": "disagree",
        "mutants:Float16LossTenPercent": "disagree",
    }, loss


def test_half_precision_growth_is_float32_accumulation():
    from gradxval.model.tolerance import tolerance_u

    # 1 x 983: the growth term once gave float16 40 u (a 150 % loss tolerance there)
    assert tolerance_u("loss", 1, 983, None) > 40
    assert tolerance_u("loss", 1, 983, None, "float16") < 8.01
    assert tolerance_u("loss", 1, 983, None, "float32") == tolerance_u("loss", 1, 983, None)


def test_loading_mistakes_are_one_line_usage_errors(tmp_path, monkeypatch, capsys):
    import pytest
    from gradxval.cli import main
    from gradxval.model.problems import load_problem

    (tmp_path / "broken_problem.py").write_text("def f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_problem.cache_clear()
    out = str(tmp_path / "out")
    for spec, says in (
        ("broken_problem:X", "syntax error in"),
        ("no_such_module_here:X", "no module 'no_such_module_here'"),
        ("json:NoAttr", "json has no attribute 'NoAttr'"),
        (f"{tmp_path}/broken_problem.py:X", f"PYTHONPATH={tmp_path}"),
    ):
        assert main(["run", "--problems", spec, "--cases", "2", "--out", out]) == 2, spec
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1 and "bug in gradxval" not in err, err
    # a class that is not a Backend: refused before any case runs
    assert main(["run", "--backends", "json:JSONDecoder", "--cases", "2", "--out", out]) == 2
    assert "is not a gradxval Backend" in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.jsonl").exists()
    with pytest.raises(SystemExit) as exc:
        main(["run", "--seed", "abc"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'abc'" in err, err


def test_jax_float16_sigmoid_zeros_are_its_exp_overflow_not_a_flush():
    """jax's float16 logistic is 0 where exp(-x) overflows float16 (x < -11.09) and keeps the
    subnormal sigma of -11.09 < x < -9.7: the registry names its own fault there, not XLA's
    flush-to-zero (which does not touch float16), and the exp-overflow model does not explain
    a result flushed in that band too."""
    import pytest

    pytest.importorskip("jax")
    from gradxval.judge.known import load_registry
    from gradxval.judge.reference import evaluate_plain
    from gradxval.run.runner import run_cases

    cid = "saturated-float16-m37n5k3-s360400"  # 3 x in the subnormal band, 5 below it
    out: list = []
    run_cases([Case.from_id(cid)], ["jax"], out.append, isolate=False)
    out = [v for v in out if v.method == "autodiff"]
    ga = next(v for v in out if v.quantity == "grad_A")
    assert ga.verdict == "known", ga.message
    assert ga.classification == "jax-float16-sigmoid-underflows-to-zero", ga.classification
    case = Case.from_id(cid)
    ref = reference_for(case, case.inputs())
    di = info("float16")
    x = np.asarray(ref.x, dtype=np.float64).reshape(ref.sigma.shape)
    band = (x > -11.09) & (ref.sigma < di.tiny)
    assert band.any() and (x < -11.1).any()
    flushed = np.where(ref.sigma < di.tiny, 0.0, ref.sigma)  # a flush: the band is 0 too
    spf = np.where(ref.sigma < di.tiny, 0.0, ref.sigma_prime)
    got = evaluate_plain(ref.embedding, flushed, spf, case.m, False)["grad_A"].astype(np.float16)
    ms = measure(got, ref.values["grad_A"], ref.scale["grad_A"], ref.under["grad_A"], di,
                 "float16")  # fmt: skip
    tol = ga.tolerance_u
    explained = EVIDENCE["sigmoid_exp_overflow"](case, "grad_A", got, ref, ms, tol)
    assert (ms.e > tol).any() and not explained[ms.e > tol].all()
    entry = load_registry().get("xla-cpu-flush-to-zero")
    assert "float16" not in entry.dtypes
