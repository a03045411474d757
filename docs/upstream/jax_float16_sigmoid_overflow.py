"""jax.nn.sigmoid in float16 (CPU) is 0 below x = -11.09, where sigma(x) is a float16 subnormal.

lax.logistic in float16 computes 1 / (1 + exp(-x)) in the dtype: exp(-x) overflows float16
(65504) below x = -11.09, so sigma is 0 there, while sigma(-11.2) = 1.36e-5 is representable
(float16's subnormals reach 6e-8, and jax keeps them: sigma(-10.5) = 2.75e-5 comes back).
Its gradient is 0 there too.  torch.sigmoid computes float16 in float32 and returns the
subnormals.

Exit 1 while the fault persists.  numpy and jax only.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

x = np.array([-10.5, -11.0, -11.2, -12.0, -14.0], dtype=np.float16)
got = np.asarray(jax.nn.sigmoid(jnp.asarray(x)))
want = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float16)  # correctly rounded
grad = np.asarray(jax.grad(lambda t: jnp.sum(jax.nn.sigmoid(t)))(jnp.asarray(x)))
print("x:           ", x)
print("jax sigmoid: ", got)
print("true sigmoid:", want)
print("jax grad:    ", grad)
sys.exit(1 if (got != want).any() else 0)
