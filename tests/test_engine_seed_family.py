"""The hand-derived references of `gradxval run` and the engine agree (first and second order).

The full comparison, 10^3 cases per problem, is benchmarks/seed_family_agreement.py; this runs a
slice of it in every dtype (complex A included) and regime."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from gradxval.model.cases import sample_cases

_SPEC = importlib.util.spec_from_file_location(
    "seed_family_agreement", Path(__file__).parents[1] / "benchmarks" / "seed_family_agreement.py"
)
agreement = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(agreement)


@pytest.mark.parametrize("dtypes", [agreement.REAL, agreement.COMPLEX], ids=["real", "complex"])
@pytest.mark.parametrize("problem", sorted(agreement.PHI))
def test_the_hand_reference_agrees_with_the_engine(problem, dtypes):
    cases = sample_cases(24, 3, dtypes, problems=(problem,))
    cases = [c for c in cases if c.m * c.n <= 20000]  # keep it quick
    assert len({c.regime for c in cases}) >= 4
    bad = {}
    for c in cases:
        with np.errstate(all="ignore"):
            wrong, _ = agreement.compare(c)
        if wrong:
            bad[c.id] = wrong
    assert not bad, bad


def test_the_comparison_can_fail():
    """A reference off by 4 ulps of float64 in a float64 case is caught."""
    r = np.array([1.0, 2.0, 3.0])
    assert agreement.close(r, r, "float64") is True
    assert not agreement.close(r * (1 + 8 * 2.0**-52), r, "float64")
    assert not agreement.close(r * (1 + 1e-9), r, "float32")
