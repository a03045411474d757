"""gradxval check-formula on the three textbook answers and on planted wrong formulas."""

import sys
from pathlib import Path

import pytest
from gradxval.cli import main
from gradxval.followup.formula import check_formula

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import sigmoid_gradient_answers as answers  # noqa: E402

FAST = dict(backends=("numpy",), cases=8)


def test_answer_a_is_a_scalar_not_a_gradient():
    r = check_formula(answers.answer_a, **FAST)
    assert not r.ok
    assert r.summary.startswith("your formula returns shape () but the gradient has shape (")
    assert r.counterexample is not None


def test_answer_b_is_right_everywhere():
    r = check_formula(answers.answer_b, **FAST)
    assert r.ok and r.summary.startswith("right: agrees with the reference")
    assert set(r.counts()) == {"agree"}


def test_answer_c_cancels_for_large_x_and_is_not_excused():
    """sigma - sigma^2 is what library autodiff does, but in a hand-written closed form it is
    a disagreement with a diagnosis, never a known fault."""
    r = check_formula(answers.answer_c, **FAST)
    assert not r.ok and "wrong in the saturated regime" in r.summary
    assert not [v for v in r.verdicts if v.verdict == "known"]
    bad = [v for v in r.verdicts if v.verdict == "disagree"]
    assert {v.regime for v in bad} == {"saturated"}
    assert all(v.extra["diagnosis"] == ["derivative_cancellation"] for v in bad)
    assert all(v.verdict == "agree" for v in r.verdicts if v.regime == "normal")


def test_check_formula_cases_include_a_square_A():
    """A Aᵀ where AᵀA belongs is caught as a wrong value, not only as a shape error."""
    from gradxval.followup.formula import check_formula

    def aat(A, x, xp):
        e = xp.exp(-xp.abs(x))
        s = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        sn = xp.where(x >= 0, e / (1 + e), 1 / (1 + e))
        if A.shape[0] == A.shape[1]:
            return 2 * s * sn * (A @ (A.T @ s))
        return 2 * s * sn * (A.T @ (A @ s))

    r = check_formula(aat, **FAST)
    assert not r.ok
    assert any(v.verdict == "disagree" and "shape" not in v.message for v in r.verdicts)


@pytest.mark.parametrize(
    "formula, words",
    [
        (answers.twice_too_large, "wrong by a factor of 2 everywhere"),
        (
            lambda A, x, xp: -2 * (1 / (1 + xp.exp(-x))) * (A.T @ (A @ (1 / (1 + xp.exp(-x))))),
            "wrong",
        ),
        (lambda A, x, xp: A.T @ A, "your formula returns shape ("),
        (lambda A, x, xp: xp.undefined_function(x), "your formula raised AttributeError"),
    ],
)
def test_planted_wrong_formulas(formula, words):
    r = check_formula(formula, **FAST)
    assert not r.ok and words in r.summary


def test_check_formula_command(capsys):
    spec = f"{answers.__file__}:answer_b"
    assert main(["check-formula", spec, "--backends", "numpy", "--cases", "4"]) == 0
    assert "right: agrees with the reference" in capsys.readouterr().out
    spec = f"{answers.__file__}:answer_a"
    assert main(["check-formula", spec, "--backends", "numpy", "--cases", "4"]) == 1
    assert main(["check-formula", "no_such_module:f"]) == 2
