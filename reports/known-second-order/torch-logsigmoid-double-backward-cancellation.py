"""Standalone reproducer: torch-logsigmoid-double-backward-cancellation (pytorch#195530).

The second derivative of F.logsigmoid is -sigma(x) sigma(-x), even in x.  torch's double
backward forms (z - 1) z with z = sigmoid(x) and returns 0 where z rounds to 1.
Run: python torch-logsigmoid-double-backward-cancellation.py  (exit 1 while the fault is there)
"""

import math
import sys

import torch
import torch.nn.functional as F

x = torch.tensor([30.0, 37.0, 40.0, -40.0], dtype=torch.float64, requires_grad=True)
(first,) = torch.autograd.grad(F.logsigmoid(x).sum(), x, create_graph=True)
(second,) = torch.autograd.grad(first.sum(), x)
fault = False
for xi, got in zip(x.tolist(), second.tolist()):
    e = math.exp(-abs(xi))
    true = -e / (1 + e) ** 2
    rel = abs(got - true) / abs(true)
    fault |= rel > 1e-12
    print(f"x = {xi:6}: torch {got!r:24} true {true!r:24} relative error {rel:.2g}")
print(f"torch {torch.__version__}: {'fault present' if fault else 'fixed'}")
sys.exit(1 if fault else 0)
