"""Which reference a case of a built-in or plug-in problem is judged against.

A problem's own ``reference`` where it defines one; the double-double/mpmath reference of the
||A phi(x)||^2 family for an ActivationProblem; otherwise the problem's loss in mpmath with
gradients by differences of it (mp_reference), never the problem's closed form.
"""

from __future__ import annotations

import inspect

from gradxval.judge.mp_reference import multiprecision_reference
from gradxval.judge.reference import Reference, compute_reference
from gradxval.model.problems import ActivationProblem, load_problem

__all__ = ["reference_for"]


def reference_for(case, inputs, second_order: bool = False) -> Reference:
    """The reference a case is judged against, from its problem (an unknown name lists the
    known ones); ``second_order`` adds hvp_x where the problem defines it."""
    problem = load_problem(case.problem)
    own = problem.reference
    if own is None:
        if isinstance(problem, ActivationProblem):
            return compute_reference(case, inputs, problem.activation, second_order)
        return multiprecision_reference(problem, case, inputs)  # second order: unsupported
    if not second_order or "second_order" not in inspect.signature(own).parameters:
        return own(case, inputs)  # hvp_x verdicts then say unsupported
    return own(case, inputs, second_order=True)
