"""XLA (CPU): float64 tanh is 1 - 7 * 2^-53 for 17.714 <= |x| < 20, where tanh(x) rounds to 1.

tanh(19.877130465494965) = 1 - 1.09e-17, which rounds to 1.0 in float64 (numpy and torch give
1.0).  jax (jit or eager, x64) gives 0.9999999999999992 = 1 - 7 * 2^-53, 7 ulps off; XLA's own
accuracy budget for CPU float64 tanh is 4 ulps.  xla/codegen/intrinsic/tanh.cc
(EmitFastTanhF64) clamps |x| at 17.714196154005176, the bound Eigen chose for its rational
approximation evaluated without fused multiply-adds, but lets LLVM contract the Horner steps
into FMAs; with them the rational at the clamp is 1 - 7u, and only |x| >= 20 returns +-1.
A fix: the clamp for the contracted evaluation (or no contraction), or +-1 from the clamp on.

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import sys

import jax

if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import mpmath

    print(f"jax {jax.__version__}")
    x = 19.877130465494965
    got = float(jnp.tanh(jnp.float64(x)))
    mpmath.mp.dps = 40
    true = float(mpmath.tanh(mpmath.mpf(x)))  # correctly rounded: 1.0
    print(f"tanh({x}) = {got!r}; correctly rounded {true!r}")
    sys.exit(1 if got != true else 0)
