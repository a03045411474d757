"""jax: the reverse-mode derivative of xlogy(x, y) in y divides the cotangent by y before
multiplying by x, and overflows float16 where x / y is 1.

d/dp xlogy(p, p) = log p + 1, which at p = 1.9e-6 is -12.17, a normal float16 number.  jax
(float16) returns inf: jax/_src/scipy/special.py defines the JVP as
x_dot * log(y) + y_dot * x / y, whose transpose in y_dot is (g / y) * x, and 1 / 1.9e-6 =
5.2e5 overflows float16 (max 65504).  Forward mode (jax.jvp) computes (y_dot * x) / y and is
right.  In an entropy -sum(xlogy(p, p)) of a float16 softmax the gradient is NaN.  Writing the
term as y_dot * (x / y) fixes both.

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import math
import sys

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

if __name__ == "__main__":
    print(f"jax {jax.__version__}")
    p = jnp.asarray(1.9e-6, dtype=jnp.float16)
    g = float(jax.grad(lambda p: xlogy(p, p))(p))
    true = math.log(float(p)) + 1.0
    _, t = jax.jvp(lambda p: xlogy(p, p), (p,), (jnp.ones_like(p),))
    print(
        f"float16: d/dp xlogy(p, p) at p = {float(p):.3g}: grad {g}, jvp {float(t)}"
        f"  (true value {true:.6g})"
    )
    sys.exit(1 if not math.isfinite(g) or abs(g - true) > 0.1 else 0)
