"""torch: the CPU GELU (erf) backward loses every digit below x = -5.5 in float32.

d/dx gelu(x) = Phi(x) + x phi(x).  At x = -7 it is -6.266e-11 (float32 holds it to 7 digits);
torch returns 0 for any tensor of two or more elements, and -6.394e-11 for a single element (the
Phi term lost where 1 + erf rounds to 0: 2 %, what any float32 evaluation of that form does).
The vectorized kernel's result is a multiple of 2^-25: it adds two terms near 0.5 that cancel,
(0.5 + x * pdf) + 0.5 * erf(x / sqrt 2), so it is 18 % off at x = -6 (-2.98e-8 for -3.65e-8)
and 0 below about -6.1; bfloat16 and float16 (computed in float32) do the same.  The scalar
path, and float64, are right.  A layer of GELUs feeding on pre-activations below -6 gets exact
zeros where its gradients are tiny but nonzero (e.g. -1.4e-19 at -9.46: held-out seed 7,
gelu_erf:normal-float32-k1m3n19-s196061).

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import sys

import mpmath
import torch
import torch.nn.functional as F

if __name__ == "__main__":
    print(f"torch {torch.__version__}")
    wrong = False
    for x in (-5.0, -6.0, -7.0, -9.0):
        exact = float(mpmath.ncdf(x) + x * mpmath.npdf(x))
        t = torch.full((16,), x, requires_grad=True)
        F.gelu(t).sum().backward()
        one = torch.full((1,), x, requires_grad=True)
        F.gelu(one).sum().backward()
        got, single = t.grad[0].item(), one.grad[0].item()
        print(f"x = {x:5}: 16 elements {got:.6e}, one element {single:.6e}, exact {exact:.6e}")
        wrong |= abs(got - exact) > 1e-3 * abs(exact)
    sys.exit(1 if wrong else 0)
