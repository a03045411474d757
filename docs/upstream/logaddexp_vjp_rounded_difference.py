"""jax.grad and autograd.grad of softplus = logaddexp(x, 0) lose |x|/2 ulps for very negative x.

Their VJP is g * exp(x - ans); x - ans is rounded, and exp turns that absolute error into a
relative one.  The true derivative, sigma(x), from mpmath.  Exit 1 while the fault persists
(an error above 4 ulps at x = -23.9).
"""

import sys

import autograd
import autograd.numpy as anp
import jax
import jax.numpy as jnp
import mpmath
import numpy as np

jax.config.update("jax_enable_x64", True)
x = -23.877359382749685  # softplus:saturated-float64-m1n1-s764503
with mpmath.workdps(40):
    want = 1 / (1 + mpmath.exp(-mpmath.mpf(x)))
ulp = np.spacing(float(want))
worst = 0.0
for name, got in (
    ("jax", float(jax.grad(lambda t: jnp.logaddexp(t, 0.0))(x))),
    ("autograd", float(autograd.grad(lambda t: anp.logaddexp(t, 0.0))(x))),
    ("numpy sigma(x)", float(1 / (1 + np.exp(-x)))),
):
    err = float(abs(mpmath.mpf(got) - want) / ulp)
    print(f"{name:15s} {got!r}  error {err:.1f} ulps")
    if name != "numpy sigma(x)":
        worst = max(worst, err)
sys.exit(1 if worst > 4 else 0)
