"""jax: the gradient of a broadcast (a bias added to every row) is summed in bfloat16.

f(b) = sum((zeros((300, 1)) + b) * P) with P = 0.01 everywhere: df/db = sum(P) = 3.003 (P
rounded to bfloat16).  jax returns 2.9375 in bfloat16, eagerly and under jit: the transpose of
broadcast_in_dim is a reduce_sum in the dtype itself, while jnp.sum of the same terms converts to
float32 first (compare the two reduce_sums in jax.make_jaxpr(jax.grad(f))(b)).  torch sums in
float32 and returns 3.0.

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

if __name__ == "__main__":
    print(f"jax {jax.__version__}")
    P = jnp.asarray(np.full((300, 1), 0.01, np.float32)).astype(jnp.bfloat16)
    true = float(np.sum(np.asarray(P.astype(jnp.float32), np.float64)))

    def f(b):
        return jnp.sum((jnp.zeros((300, 1), jnp.bfloat16) + b) * P)

    g = float(jax.grad(f)(jnp.zeros((1,), jnp.bfloat16))[0])
    print(f"bfloat16: df/db = {g}  (true value {true:.6g}; sum in float32 rounds to 3.0)")
    sys.exit(1 if abs(g - true) > 0.02 else 0)
