"""A problem in a single file: f(A, x) = ||A softsign(x)||^2, softsign(x) = x / (1 + |x|).

    PYTHONPATH=examples gradxval run --problems softsign_problem:SOFTSIGN

Nothing in gradxval changes: the Activation gives phi and phi' in the forms the harness needs,
and ActivationProblem supplies the loss, closed form, reference and tolerance.  To ship it,
register SOFTSIGN in the "gradxval.problems" entry-point group of your package.

What gradxval finds with it: autodiff differentiates x / (1 + |x|) by the quotient rule,
1/d - |x|/d^2, which cancels (error ~ |x| u, 30 u at |x| = 20) and in float16 overflows d^2
for |x| > 255 (340 times too large).  The closed form 1/d^2 has neither problem.
"""

import mpmath
import numpy as np
from gradxval.model.problems import Activation, ActivationProblem


def _pair(x, xp):
    d = 1 + xp.abs(x)
    return x / d, (1 / d) * (1 / d)  # not 1 / d^2: d^2 overflows float16 for |x| > 255


def _mp(t):
    d = 1 + abs(t)
    return t / d, 1 / (d * d)


SOFTSIGN = ActivationProblem(
    Activation(
        name="softsign",
        pair=_pair,  # the closed form
        library=lambda x, xp: x / (1 + xp.abs(x)),  # what autodiff differentiates
        plain=lambda x: _pair(x, np),  # float64, for the reference of low-precision cases
        mp=_mp,  # mpmath, for the float64 reference
        at_inf=(1.0, 0.0, -1.0, 0.0),  # phi(+inf), phi'(+inf), phi(-inf), phi'(-inf)
    )
)
_ = mpmath  # mp receives mpmath numbers; abs and arithmetic are enough here
