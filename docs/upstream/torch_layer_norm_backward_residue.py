"""torch: LayerNorm's CPU backward leaves a rounding residue where the normalized input is 0.

With normalized_shape=(1,) every row's normalized input (x - mean) * rstd is exactly 0, so
weight.grad is exactly 0 and x.grad is exactly 0, whatever x and the upstream gradient are
(torch's forward agrees: mean == x and the output is the bias).  The CPU backward kernel
(aten/src/ATen/native/cpu/layer_norm_kernel.cpp, layer_norm_backward_frame) recomputes the
normalized input as a * x + b with a = rstd and b = -a * mean, the two products rounded apart
(here fused: fma(a, x, b)), so it returns rstd * x - fl(rstd * mean), a rounding residue, times
the upstream gradient.  At x = 2.7e7 in float32 that is -62.6 where 0 is exact, and with an
upstream gradient of -1.7e18 weight.grad is 1.1e20.  The same residue is in x.grad
(a * dy * w - fl(dy * w) * a).  pytorch#188375 reports the width-1 case.

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import sys

import torch
import torch.nn.functional as F

if __name__ == "__main__":
    print(f"torch {torch.__version__}")
    wrong = False
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([[2.6798154e07], [1.0265474e-05]], dtype=dtype, requires_grad=True)
        w = torch.tensor([-6.570428e-31], dtype=dtype, requires_grad=True)
        b = torch.tensor([1.25822576e-29], dtype=dtype, requires_grad=True)
        dy = torch.tensor([[-1.7368321e18], [3.5592650e-11]], dtype=dtype)
        (dy * F.layer_norm(x, (1,), w, b)).sum().backward()
        print(f"{str(dtype):>14}: weight.grad = {w.grad.item():.4g}, "
              f"x.grad = {x.grad.flatten().tolist()}  (exact: 0 and [0, 0])")  # fmt: skip
        wrong |= w.grad.item() != 0 or bool(x.grad.ne(0).any())
    sys.exit(1 if wrong else 0)
