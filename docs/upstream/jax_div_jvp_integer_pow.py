"""jax: the derivative of x / y in y is computed as (-g * x) * integer_pow(y, -2), and y ** -2
leaves float16's range long before the derivative does.

d/dy (300 / y) at y = 300 is -300 / 300^2 = -1/300 = -0.00333, a normal float16 number.  jax
(float16) returns 0: y * y = 90000 overflows float16 (max 65504), 1 / inf = 0.  torch's rule,
-g * (x / y) / y, gives -0.00333.  The rule is in jax/_src/lax/lax.py
(ad.defjvp(div_p, ..., lambda g, x, y: mul(mul(neg(g), x), integer_pow(y, -2)))); bfloat16 has
float32's range and is not affected at this size.  integer_pow entered this rule in jax PR #3140;
jax#40634 is the same squared-argument overflow in arcsinh's rule.

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import sys

import jax
import jax.numpy as jnp

if __name__ == "__main__":
    print(f"jax {jax.__version__}")
    y = jnp.asarray(300.0, dtype=jnp.float16)
    g = float(jax.grad(lambda y: jnp.asarray(300.0, jnp.float16) / y)(y))
    print(f"float16: d/dy (300 / y) at 300 = {g}  (true value {-1 / 300:.6g})")
    sys.exit(1 if abs(g - (-1 / 300)) > 1e-5 else 0)
