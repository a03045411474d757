"""gradxval check-formula on the three textbook answers and on planted wrong formulas."""

import sys
from pathlib import Path

import pytest
from gradxval.cli import main
from gradxval.formula import check_formula

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


def test_answer_c_is_right_but_cancels_for_large_x():
    r = check_formula(answers.answer_c, **FAST)
    assert r.ok and "loses accuracy in the saturated regime" in r.summary
    assert {v.regime for v in r.verdicts if v.verdict == "known"} == {"saturated"}
    assert all(v.verdict == "agree" for v in r.verdicts if v.regime == "normal")


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
