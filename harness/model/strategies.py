"""Hypothesis strategies over gradxval cases, and the quick/thorough profiles.

Importing this module imports hypothesis (not a framework).  A failing property shrinks toward
the smallest shape, the first regime in the list, no batch axis and seed 0.
"""

from __future__ import annotations

from gradxval.dtypes import DTYPES
from gradxval.model.cases import MAX_SIZE, REGIMES, Case
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["cases", "PROFILES", "profile"]

# deadline=None: a backend's first call for a shape jit-compiles, which takes 0.1-0.3 s
PROFILES = {
    "quick": settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "thorough": settings(
        max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    ),
}
for _name, _s in PROFILES.items():
    settings.register_profile(f"gradxval-{_name}", _s)


def profile(name: str) -> settings:
    """The settings of a gradxval profile: 'quick' (CI) or 'thorough' (on demand)."""
    from gradxval.errors import expected

    try:
        return PROFILES[name]
    except KeyError:
        raise expected("profile", name, PROFILES) from None


@st.composite
def cases(
    draw,
    dtypes=DTYPES,
    regimes=REGIMES,
    max_size: int = MAX_SIZE,
    max_m: int | None = None,
    max_n: int | None = None,
    max_k: int = 8,
    problems=("logistic",),
) -> Case:
    """A Case: regime, dtype, m, n, k and seed; the regime's constraints hold (empty: m or n 0).

    m and n go up to ``max_m``/``max_n`` (default ``max_size``), k up to ``max_k`` (0: no batch).
    """
    regime = draw(st.sampled_from(list(regimes)))
    dtype = draw(st.sampled_from(list(dtypes)))
    m = draw(st.integers(0, max_size if max_m is None else max_m))
    n = draw(st.integers(0, max_size if max_n is None else max_n))
    if regime == "empty" and m and n:
        if draw(st.booleans()):
            m = 0
        else:
            n = 0
    k = draw(st.none() | st.integers(1, max_k)) if max_k else None
    seed = draw(st.integers(0, 10**6 - 1))
    return Case(regime, dtype, m, n, k, seed, draw(st.sampled_from(list(problems))))
