"""gradxval check-backend: one actionable line per problem."""

import pytest
from _support import available_backends
from gradxval.cli import main
from gradxval.run.conformance import check_backend


@pytest.mark.parametrize("name", available_backends())
def test_builtin_backends_conform(name):
    problems = check_backend(name)
    assert [p for p in problems if not p.startswith("note: ")] == []
    # numpy differentiates nothing: its hvp_x is the closed form's, and that is said
    assert bool(problems) == (name == "numpy"), problems


@pytest.mark.parametrize(
    "spec, words",
    [
        (
            "mutants:ReturnsFloat32",
            "grad_x has dtype float32 but the case is float64; return float64",
        ),
        ("mutants:Mutates", "modified its input arrays; copy them before writing"),
        ("mutants:ReturnsList", "grad_x is a builtins.list; return a numpy array"),
        ("mutants:Nondeterministic", "a second identical call changed grad_x"),
        ("mutants:Raises", "raised RuntimeError: planted failure"),
        # second order is part of the kit (issue 20)
        (
            "mutants:HvpWidened",
            "closed_form (hvp_x) on float32: hvp_x has dtype float64 but the case is float32",
        ),
        ("no_such_module:Backend", "failed to load"),
    ],
)
def test_faults_are_named_with_a_fix(spec, words):
    problems = check_backend(spec)
    assert any(words in p for p in problems), problems


def test_check_backend_command(capsys):
    assert main(["check-backend", "numpy", "--cases", "6", "--in-process"]) == 0
    out = capsys.readouterr().out
    assert "conformance of numpy: 0 problem(s)" in out and "agreement run, 6 cases" in out
    assert main(["check-backend", "mutants:Mutates", "--cases", "6"]) == 1
    assert main(["check-backend", "nope"]) == 2
