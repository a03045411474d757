"""autograd's tanh VJP, g / cosh(x)**2, is 0 for |x| > ~355 where the gradient is representable.

The true d/dx [c * tanh(x)] = c * 4 exp(-2|x|) / (1 + exp(-2|x|))**2, from mpmath.
Exit 1 while the fault persists.
"""

import sys

import autograd
import autograd.numpy as anp
import mpmath

x, c = -366.420172617087, -2175.78  # tanh:extreme-complex128-m1000n257-s883039, element 232
got = autograd.grad(lambda t: c * anp.tanh(t))(x)
with mpmath.workdps(40):
    want = float(c * mpmath.sech(mpmath.mpf(x)) ** 2)
print("autograd:", got, " true:", want)
sys.exit(1 if got == 0.0 and want != 0.0 else 0)
