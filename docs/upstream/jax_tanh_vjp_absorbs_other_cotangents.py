"""jax: the tanh VJP adds g(1 - y) and g(1 - y) y to the cotangent separately; for a large g
through a saturated tanh the two cancel and take the input's other gradient terms with them.

f(x) = sum(1e4 * tanh(x)) + sum(x) at x = -76: df/dx = 1e4 * (1 - tanh(x)^2) + 1 = 1 (tanh'(-76)
~ 1e-66).  jax (bfloat16 and float16) returns 0: the transposed rule computes u = g * (1 - y) =
2e4 and w = u * y = -2e4 and adds them to the cotangent that already holds the sum's 1, one
after the other: (1 + 2e4) rounds to 2e4 in bfloat16, and + (-2e4) leaves 0.  In float32 the
sum 1 + 2e4 is exact and the answer is right.  Related: jax PR #40319 rewrites the rule as
g * ((1 - y) * (1 + y)), one term.

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np


def grad(dtype):
    x = jnp.asarray(np.array([-76.0], dtype=np.float32)).astype(dtype)
    return float(jax.grad(lambda x: jnp.sum(jnp.tanh(x) * 1e4) + jnp.sum(x))(x)[0])


if __name__ == "__main__":
    print(f"jax {jax.__version__}")
    wrong = False
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32):
        g = grad(dtype)
        print(f"{jnp.dtype(dtype).name:>8}: d/dx = {g}  (true value 1)")
        wrong |= g != 1.0
    sys.exit(1 if wrong else 0)
