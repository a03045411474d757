"""autograd: the VJP of x / y in y is -g * x / y**2, which overflows where the answer does not.

Cosine similarity a.b / (|a| |b|) of a = [-1.1e-109, 4.8e141] and b = [1.7e8, 3.5e124] (float64):
the two vectors are parallel to 1e-250, so the gradient's second element is
b1 / (|a||b|) - cos * a1 / |a|^2, whose two terms cancel to about 1e-500, i.e. 0 in float64.
autograd returns 2.09e-142, the first term alone: the second comes through the divisor's VJP,
-g * x / y**2 with y = |a||b| = 1.7e266, and y**2 overflows to inf, so the term is 0.  The same
rule computes g * x first, which overflows in float32 BatchNorm (x = 8e8, g = 4e31): NaN.
Rewritten as -(g * ans) / y (the quotient instead of x / y**2), both are right; jax's JVP has
the same squared divisor (jax-div-jvp-squares-the-divisor, in float16 and bfloat16).

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import sys

import autograd
import autograd.numpy as anp
import mpmath
import numpy as np


def cosine(a, b):
    return anp.sum(a * b) / (anp.sqrt(anp.sum(a * a)) * anp.sqrt(anp.sum(b * b)))


if __name__ == "__main__":
    a = np.array([-1.13676861e-109, 4.77448981e141])
    b = np.array([1.71819236e008, 3.45394829e124])
    got = autograd.grad(cosine)(a, b)
    mpmath.mp.dps = 1200  # the cancellation is near 1e-500: far below float64, exact here
    A, B = [mpmath.mpf(float(v)) for v in a], [mpmath.mpf(float(v)) for v in b]
    na, nb = mpmath.sqrt(A[0] ** 2 + A[1] ** 2), mpmath.sqrt(B[0] ** 2 + B[1] ** 2)
    cos = (A[0] * B[0] + A[1] * B[1]) / (na * nb)
    want = [float(B[i] / (na * nb) - cos * A[i] / na**2) for i in range(2)]
    from importlib.metadata import version

    print(f"autograd {version('autograd')}")
    print(f"grad_a = {got.tolist()}  (exact, rounded to float64: {want})")
    sys.exit(1 if not np.allclose(got, want, rtol=1e-12, atol=0) else 0)
