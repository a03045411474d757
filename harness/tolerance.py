"""How far a result may be from the reference: condition-scaled, per quantity and dtype.

An element passes when |result - reference| <= tol_u * (u * scale + eta * under), where
- u is the dtype's unit roundoff and eta its smallest subnormal (Higham's model
  fl(a op b) = (a op b)(1 + d) + e with |d| <= u, |e| <= eta/2, "Accuracy and Stability of
  Numerical Algorithms", 2nd ed., sec. 2.2);
- scale is the first-order bound of the rounding errors with unit constant:
    loss    sum_i (|A| |s|)_i^2
    grad_x  2 |s'| * |A|^T |A| |s|
    grad_A  2 (|A| |s|) |s|^T
  (for complex A, |A| is taken over the real embedding [Re A; Im A]);
- under is the matching weight of the underflow terms (1 + 2 |A|^T |A| |s| for grad_x).
error_u reports the worst element's |result - reference| / (u * scale + eta * under).

tol_u = C[quantity] + G * log2(1 + inner) where inner = m + n (the length of the two chained
sums).  The worst-case growth of a recursive sum is linear in its length (gamma_n = n u), but the
errors of BLAS-blocked and pairwise sums, relative to this absolute-value scale, grow like
log2(length) at worst and are flat for random-sign data (Higham & Mary 2019, "A new approach to
probabilistic rounding error analysis"); G carries that growth.  The constants come from
scripts/soak.py over honest backends (numbers in docs/tolerance.md); they are set about 1.5x
above the worst honest error so that a real fault of a few u stands out.
"""

from __future__ import annotations

import math

__all__ = ["tolerance_u", "CONSTANTS"]

# quantity -> (C, G); see module docstring and docs/tolerance.md for where each comes from
CONSTANTS = {
    "loss": (3.0, 0.25),
    "grad_x": (4.0, 0.25),
    "grad_A": (3.0, 0.25),
}


def tolerance_u(quantity: str, m: int, n: int) -> float:
    """Return the tolerance in units of u for one quantity of an (m, n) case."""
    c, g = CONSTANTS[quantity]
    return c + g * math.log2(1 + m + n)
