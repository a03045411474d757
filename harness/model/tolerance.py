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

tol_u = C[quantity] + G * (sqrt(n) + sqrt(m * k)), k = 1 for a vector x.

C counts first-order roundings, taking a library exp to be within 1 ulp (2u):
- sigma = 1/(1 + e) or e/(1 + e), e = exp(-|x|): 2u + 1u + 1u, so |d sigma| <= 4u sigma;
- loss: z = A s carries 4u from s; z^2 doubles it: C = 8;
- grad_x: sigma' = sigma(x) sigma(-x) carries 4u + 4u + 1u = 9u, times Re(A^H A s) 1u: C = 10;
- grad_A: 2 z s^T carries 4u (z) + 4u (s) + 1u: C = 9.
- hvp_x (second order), H v = 2 phi'' Re(A^H A s) v + 2 phi' Re(A^H A (phi' v)), with scale
  2 |phi''| (|A|^T |A| |s|) |v| + 2 |phi'| |A|^T |A| |phi' v|:
  the first term carries phi'' = -sigma' tanh(x/2) 9u + 2u + 1u, then Re(A^H A s) 1u and the
  products with v and 2, 2u: 14u; the second carries phi' v 9u + 1u, the two sums 1u, and
  phi' again 9u + 1u: 20u; their sum 1u: C = 21.  Its sums have the lengths of grad_x's.
The sums add the growth term.  Their lengths are n (z = A s) and m k (A^H z, and the loss's
sum over rows and batch).  A recursive sum of length L has worst case L u times the sum of
|terms|; with independent rounding errors it stays below lambda sqrt(L) u with probability
1 - 2 exp(-lambda^2 (1 - u)^2 / 2) (Higham & Mary 2019, "A new approach to probabilistic
rounding error analysis", thm 3.1), and blocked or pairwise kernels do better still.  G = 1 is
that sqrt(L) growth.  It matters where the terms share a sign: a GEMV kernel summing 777
positive terms A_i^2 sigma was measured 21 u off, against tolerance 19.6 u under a log2(L) growth
term tried first (case strided-float32-m777n1k7-s80190).  scripts/soak.py measures how tight the
result is: the worst honest error over the tolerance, per dtype (docs/tolerance.md).

float16 and bfloat16 sums are accumulated in float32 by every library an honest result comes
from (numpy's half loops and pairwise sums, torch's CPU kernels' opmath type, XLA's CPU
upcasting of half-precision dots and reductions), so their growth term is float32's:
G (sqrt(n) + sqrt(m k)) u32 / u.  A sum accumulated in the case's own half precision is a
finding (the sequential-sum diagnosis), not the tolerance: with float16's growth term a float16
loss 66 % off was accepted on a 1 x 983 case (issue 20).
"""

from __future__ import annotations

import math

__all__ = ["tolerance_u", "CONSTANTS", "ACCUMULATION"]

# quantity -> (C, G); see module docstring and docs/tolerance.md for where each comes from
CONSTANTS = {
    "loss": (8.0, 1.0),
    "grad_x": (10.0, 1.0),
    "grad_A": (9.0, 1.0),
    "hvp_x": (21.0, 1.0),
}


# dtype -> the unit roundoff its sums are accumulated in, over its own (float32's 2**-24)
ACCUMULATION = {"float16": 2.0**-24 / 2.0**-11, "bfloat16": 2.0**-24 / 2.0**-8}


def tolerance_u(
    quantity: str, m: int, n: int, k: int | None = None, dtype: str | None = None
) -> float:
    """Return the tolerance in units of u for one quantity of an (m, n, k) case of ``dtype``
    (None: the growth term at the dtype's own u, as before dtypes were told apart)."""
    c, g = CONSTANTS[quantity]
    g *= ACCUMULATION.get(dtype, 1.0)
    return c + g * (math.sqrt(n) + math.sqrt(m * (k or 1)))
