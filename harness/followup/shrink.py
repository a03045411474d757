"""Shrink a disagreement with Hypothesis to the smallest case that still disagrees."""

from __future__ import annotations

from gradxval.errors import UsageError
from gradxval.model.cases import Case

__all__ = ["shrink_case", "shrink"]


def _smaller_cases(case: Case):
    """Cases of the same problem, regime and dtype, no larger than ``case``."""
    from gradxval.model.strategies import cases

    return cases(
        dtypes=(case.dtype,),
        regimes=(case.regime,),
        max_m=case.m,
        max_n=case.n,
        max_k=case.k or 0,
        problems=(case.problem,),
    )


def shrink_case(
    case: Case,
    backend: str,
    method: str,
    quantity: str,
    known=None,
    max_examples: int = 120,
    entry: str | None = None,
) -> Case:
    """Return the smallest case (m, n, k, then seed) on which ``backend``/``method`` still
    disagrees for ``quantity`` (with ``entry``: is still known by that registry entry); the
    case itself if nothing smaller does.  Only the method that disagreed runs."""
    from gradxval.run.runner import run_cases

    def disagrees(c: Case) -> bool:
        out: list = []
        try:
            run_cases(
                [c],
                [backend],
                out.append,
                isolate=False,
                known=known,
                method_spec=(method,),
                order="2" if quantity == "hvp_x" else "1",
            )
        except UsageError:
            return False
        for v in out:
            if v.method != method or v.quantity != quantity:
                continue
            if entry is None and v.verdict == "disagree":
                return True
            if entry is not None and v.verdict == "known":
                if entry in (v.classification or "").split("+"):
                    return True
        return False

    if not disagrees(case):
        return case
    return shrink(case, disagrees, max_examples)


def shrink(case: Case, fails, max_examples: int = 120) -> Case:
    """The smallest case no larger than ``case`` for which ``fails(case)`` is true."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    s = settings(
        max_examples=max_examples,
        database=None,
        derandomize=True,  # the same case shrinks to the same case, run after run
        deadline=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    try:
        return find(_smaller_cases(case), fails, settings=s)
    except NoSuchExample:  # nothing smaller fails within the budget
        return case
