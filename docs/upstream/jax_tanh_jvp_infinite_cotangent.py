"""jax.grad of sum((A @ tanh(x))**2) is NaN where the cotangent is infinite and tanh(x) < 0.

lax.tanh's JVP is (g + g * ans) * (1 - ans): inf + (-inf) = NaN.  The true gradient is
2 (1 - tanh(x)^2) A^T A tanh(x), an infinity of known sign.  Exit 1 while the fault persists.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
A = np.array([[1.0, 2.0], [np.inf, 0.5]])
x = np.array([0.7, -0.4])
got = np.asarray(jax.grad(lambda x: jnp.sum((A @ jnp.tanh(x)) ** 2))(x))
t = np.tanh(x)
with np.errstate(all="ignore"):
    want = 2 * (1 - t**2) * (A.T @ (A @ t))  # numpy: +-inf, no NaN
print("jax:", got, " true:", want)
sys.exit(1 if np.isnan(got).any() and not np.isnan(want).any() else 0)
