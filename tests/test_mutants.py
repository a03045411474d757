"""The mutation suite: every planted fault is caught by a default-size run and attributed to the
backend and method that carry it.  scripts/mutation_table.py publishes the numbers."""

import pytest
from gradxval.backends import load
from gradxval.cli import DEFAULT_CASES, DEFAULT_SEED
from gradxval.model.cases import sample_cases
from mutants import FALSE_GREEN, MUTANTS, SECOND_ORDER_MUTANTS, first_detection

NEEDS = {
    "NormSquaredJax": "jax",
    "JaxWithoutX64": "jax",
    "NaiveSigmoidTorch": "torch",
    "ZeroGradAutodiff": "torch",
    "NaNAtInfReverse": "torch",
    "TorchClone": "torch",
    "ClaimsToBeTorch": "torch",
    "ZeroHvpAutodiff": "torch",
}


def test_suite_has_at_least_twenty_distinct_mutants():
    assert len({name for name, _ in MUTANTS}) >= 20
    assert len(set(SECOND_ORDER_MUTANTS)) >= 6


@pytest.mark.parametrize("name, expect", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_is_detected_and_attributed(name, expect, record_property):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    cases = sample_cases(DEFAULT_CASES, DEFAULT_SEED)
    seen: list = []
    run, v = first_detection(name, expect, cases, seen)
    assert v is not None, f"{name} not detected in {run} cases of the default run"
    if name in FALSE_GREEN:
        # it looks like a registered fault, in the wrong library or method: never excused
        assert not [w for w in seen if w.verdict == "known"], [w.message for w in seen]
    spec = f"mutants:{name}"
    b = load(spec)
    assert v.backend == spec and v.method in (*b.methods, *b.hvp_methods)
    if name in SECOND_ORDER_MUTANTS:
        assert v.verdict == "disagree" and v.quantity == "hvp_x", v
        assert "--order 2" in v.reproduce
    if v.verdict in ("disagree", "known"):
        assert v.attribution.startswith(f"outlier: {spec}/{v.method}"), v.attribution
    record_property("cases_until_detection", run)


@pytest.mark.parametrize("name", ["TorchClone", "ClaimsToBeTorch"])
def test_a_copy_of_a_known_fault_is_known_only_in_its_library(name):
    """torch's own autodiff is known on a saturated case; the same code under another name is
    a disagreement with a diagnosis."""
    pytest.importorskip("torch")
    from gradxval.model.cases import Case
    from gradxval.run.runner import run_cases

    out: list = []
    run_cases(
        [Case.from_id("saturated-float32-m10n50-s7")],
        ["torch", f"mutants:{name}"],
        out.append,
        isolate=False,
    )
    gx = {v.backend: v for v in out if v.quantity == "grad_x" and v.method == "autodiff"}
    assert gx["torch"].verdict == "known"
    clone = gx[f"mutants:{name}"]
    assert clone.verdict == "disagree" and clone.extra["diagnosis"] == ["derivative_cancellation"]
