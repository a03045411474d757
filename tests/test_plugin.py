"""The pytest plugin as a user meets it: in a fresh directory, through pytester."""

import importlib.util
import json
import xml.etree.ElementTree as ET

import pytest

BAD_BACKEND = """
import array_api_compat.numpy as xp
import numpy as np
from gradxval.backends.base import Backend
from gradxval.model.problems import closed_form


class Doubled(Backend):
    name = "doubled"
    methods = ("closed_form",)

    def version(self):
        return "0"

    def _evaluate(self, method, A, x, dtype):
        loss, gx, gA = closed_form(A, x, xp)
        return {"loss": np.asarray(loss), "grad_x": 2 * np.asarray(gx), "grad_A": np.asarray(gA)}
"""


# Hypothesis's pytest plugin imports all of Hypothesis in pytest_terminal_summary, used or not
# (hypothesis 6.170; PR HypothesisWorks/hypothesis#3159 meant it not to), and pytest rewrites
# the asserts of every module it imports: about 0.7 s per fresh pytest here, where no bytecode
# is cached.  Runs that do not use Hypothesis leave its plugin out.
NO_HYPOTHESIS = ("-p", "no:hypothesispytest")


def _items(pytester, *args):
    """Run the shipped cross-validation items (not the property test) in a fresh process."""
    return pytester.runpytest_subprocess(
        *NO_HYPOTHESIS, "--pyargs", "gradxval", "-k", "not property", *args
    )


def test_help_shows_the_options(pytester):
    out = pytester.runpytest_subprocess("--help")
    for opt in (
        "--gradxval-backends",
        "--gradxval-dtypes",
        "--gradxval-regimes",
        "--gradxval-cases",
        "--gradxval-seed",
        "--gradxval-strict",
        "--gradxval-report",
    ):
        out.stdout.fnmatch_lines([f"*{opt}*"])


def test_pyargs_runs_the_cross_validation(pytester):
    out = _items(
        pytester,
        "--gradxval-backends",
        "numpy",
        "--gradxval-cases",
        "6",
        "-v",
    )
    out.assert_outcomes(passed=6)
    out.stdout.fnmatch_lines(
        [
            "*gradxval: seed 20261126*",
            "*gradxval frameworks: numpy*",
            "*test_gradxval?numpy-closed_form-float16-normal-m*",
        ]
    )


def test_planted_fault_fails_with_the_full_message(pytester):
    pytester.makepyfile(badbackend=BAD_BACKEND)
    pytester.syspathinsert()
    out = _items(
        pytester,
        "--gradxval-backends",
        "numpy,badbackend:Doubled",
        "--gradxval-cases",
        "3",
        "--gradxval-regimes",
        "normal",
        "--gradxval-dtypes",
        "float64",
    )
    out.assert_outcomes(passed=3, failed=3)
    out.stdout.fnmatch_lines(
        [
            "*gradxval: badbackend:Doubled/closed_form grad_x on normal-float64-*: disagree",
            "*at index (*): actual *, reference *",
            "*error * u, tolerance * u",
            "*attribution: outlier: badbackend:Doubled/closed_form against the reference;"
            " agreeing with the reference: numpy/closed_form; numeric witness at (*): *,"
            " siding with numpy/closed_form and the reference",
            "*reproduce: PYTHONPATH=* gradxval replay normal-float64-*"
            " --backends badbackend:Doubled",
        ]
    )
    assert "verify" not in out.stdout.str()  # the assertion helper hides itself


def test_known_disagreements_xfail_unless_strict(pytester):
    # find_spec, not importorskip: pytester restores sys.modules after each test, and torch's
    # extension cannot be imported a second time in one process
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch not installed")
    args = [
        "--gradxval-backends",
        "torch",
        "--gradxval-cases",
        "2",
        "--gradxval-regimes",
        "saturated",
        "--gradxval-dtypes",
        "float32",
        "-rx",
    ]
    out = _items(pytester, *args)
    xfailed = out.parseoutcomes().get("xfailed", 0)
    assert xfailed >= 1 and out.ret == 0
    out.stdout.fnmatch_lines(["*known sigmoid-grad-cancellation*github.com*"])
    out = _items(pytester, *args, "--gradxval-strict")
    out.assert_outcomes(passed=4 - xfailed, failed=xfailed)
    # a failure names its standalone reproducer, which runs alone and exits 1
    line = next(s for s in out.outlines if "standalone reproducer" in s)
    path = line.split(": ", 1)[1].strip()
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-I", path], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "error" in run.stdout


def test_seed_random_then_last_reuses_it(pytester):
    out = _items(
        pytester,
        "--gradxval-backends",
        "numpy",
        "--gradxval-cases",
        "2",
        "--gradxval-seed",
        "random",
        "-v",
    )
    seed = next(s for s in out.outlines if "gradxval: seed" in s).split()[2]
    ids = sorted(s.split("::")[1].split()[0] for s in out.outlines if "::test_gradxval[" in s)
    again = _items(
        pytester,
        "--gradxval-backends",
        "numpy",
        "--gradxval-cases",
        "2",
        "--gradxval-seed",
        "last",
        "-v",
    )
    again.stdout.fnmatch_lines([f"*gradxval: seed {seed} *"])
    assert ids == sorted(
        s.split("::")[1].split()[0] for s in again.outlines if "::test_gradxval[" in s
    )
    bad = _items(pytester, "--gradxval-seed", "soon")
    bad.stderr.fnmatch_lines(["*--gradxval-seed='soon', expected an int, 'random' or 'last'*"])


def test_ini_keys_and_junit_properties(pytester):
    pytester.makeini("[pytest]\ngradxval_backends = numpy\ngradxval_cases = 2\n")
    xml = pytester.path / "junit.xml"
    out = _items(pytester, f"--junitxml={xml}")
    out.assert_outcomes(passed=2)
    props = {p.get("name") for p in ET.parse(xml).iter("property")}
    assert {"gradxval_grad_x_error_u", "gradxval_grad_x_tolerance_u"} <= props


def test_report_option_writes_the_run_report(pytester):
    out_dir = pytester.path / "rep"
    out = _items(
        pytester,
        "--gradxval-backends",
        "numpy",
        "--gradxval-cases",
        "3",
        f"--gradxval-report={out_dir}",
    )
    out.assert_outcomes(passed=3)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert (
        summary["schema"] == "gradxval.summary/2"
        and summary["counts"]["agree"] + summary["counts"]["overflow"] == 9
    )
    assert len((out_dir / "results.jsonl").read_text().splitlines()) == 9


def test_property_shrinks_a_planted_fault_to_the_minimal_case(pytester):
    pytester.makepyfile(badbackend=BAD_BACKEND)
    pytester.syspathinsert()
    out = pytester.runpytest_subprocess(
        "--pyargs", "gradxval", "-k", "property", "--gradxval-backends", "numpy,badbackend:Doubled"
    )
    out.assert_outcomes(failed=1)
    text = out.stdout.str()
    assert "Failing test case" in text
    minimal = "Case(regime='normal', dtype='float16', m=1, n=1, k=None, seed=0, problem='logistic')"
    assert minimal in text


def test_problems_option_selects_the_problems(pytester):
    out = _items(
        pytester,
        "--gradxval-backends",
        "numpy",
        "--gradxval-cases",
        "2",
        "--gradxval-problems",
        "tanh",
        "-v",
    )
    out.assert_outcomes(passed=2)
    out.stdout.fnmatch_lines(["*test_gradxval?numpy-closed_form-tanh-float16-normal-m*PASSED*"])
    bad = pytester.runpytest_subprocess(
        *NO_HYPOTHESIS, "--pyargs", "gradxval", "--gradxval-problems", "nope"
    )
    assert bad.ret != 0
    assert "problem='nope', expected one of logistic" in bad.stdout.str() + bad.stderr.str()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--gradxval-cases=0"], "nothing would be tested"),
        (["--gradxval-dtypes=nope"], "dtype='nope', expected one of"),
        (["--gradxval-backends=numpy", "--gradxval-methods=autodiff"], "no selected backend"),
        (["--gradxval-backends=no.such.module:Backend"], "did not load"),
    ],
)
def test_a_vacuous_or_bad_selection_is_one_usage_line(pytester, args, words):
    out = _items(pytester, *args)
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    err = out.stderr.str()
    assert words in err and "Traceback" not in err and "pluggy" not in err, err


def test_shard_option_runs_a_disjoint_slice(pytester):
    ids = []
    for i in (1, 2):
        out = _items(
            pytester,
            "--gradxval-backends=numpy",
            "--gradxval-cases=6",
            f"--gradxval-shard={i}/2",
            "--collect-only",
            "-q",
        )
        ids.append({line for line in out.outlines if "test_gradxval[" in line})
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    whole = _items(
        pytester, "--gradxval-backends=numpy", "--gradxval-cases=6", "--collect-only", "-q"
    )
    assert ids[0] | ids[1] == {line for line in whole.outlines if "test_gradxval[" in line}
    bad = _items(pytester, "--gradxval-shard=3/2")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
