"""The mutation suite: every planted fault is caught by a default-size run and attributed to the
backend and method that carry it.  scripts/mutation_table.py publishes the numbers."""

import pytest
from gradxval.backends import load
from gradxval.cases import sample_cases
from gradxval.cli import DEFAULT_CASES, DEFAULT_SEED
from mutants import MUTANTS, first_detection

NEEDS = {"NormSquaredJax": "jax", "JaxWithoutX64": "jax", "NaiveSigmoidTorch": "torch"}


def test_suite_has_at_least_twenty_distinct_mutants():
    assert len({name for name, _ in MUTANTS}) >= 20


@pytest.mark.parametrize("name, expect", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_is_detected_and_attributed(name, expect, record_property):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    cases = sample_cases(DEFAULT_CASES, DEFAULT_SEED)
    run, v = first_detection(name, expect, cases)
    assert v is not None, f"{name} not detected in {run} cases of the default run"
    spec = f"mutants:{name}"
    assert v.backend == spec and v.method in load(spec).methods
    if v.verdict in ("disagree", "known"):
        assert v.attribution.startswith(f"outlier: {spec}/{v.method}"), v.attribution
    record_property("cases_until_detection", run)
