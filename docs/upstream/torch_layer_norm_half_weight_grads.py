"""torch: the CPU LayerNorm backward accumulates bias.grad and weight.grad of float16 and
bfloat16 inputs in the input's dtype, rounding the running sum after every row.

bias.grad is the column sum of the upstream gradient dy.  For the 8 float16 rows below the
sum is -0.0067444 (float64), and a float32 accumulator rounded once to float16 gives -0.006744;
torch 2.13 (CPU) gives -0.00653 with 2 threads (-0.006592 with 1), 3 % off.  The kernel
(aten/src/ATen/native/cpu/layer_norm_kernel.cpp, LayerNormBackwardKernelImplInternal) keeps
one dgamma/dbeta buffer per thread allocated with X.options(), so in float16 or bfloat16, and
layer_norm_backward_frame adds each row into it with vec::map2<T> (widen, add in float32,
store back in T); only the final sum over threads is in float32.  dy.sum(0) in torch itself
accumulates in float32 and is right.

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import sys

import numpy as np
import torch

if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    col = [-1.459, -0.007904, 1.581, -0.0722, -0.1886, -0.625, 0.619, 0.1458]
    dy = torch.tensor(np.stack([col, np.zeros(8)], axis=1), dtype=torch.float16)
    x = torch.tensor(np.random.default_rng(0).standard_normal((8, 2)), dtype=torch.float16)
    w = torch.ones(2, dtype=torch.float16, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float16, requires_grad=True)
    torch.nn.functional.layer_norm(x, (2,), w, b).backward(dy)
    exact = float(np.sum(dy[:, 0].double().numpy()))
    right = float(np.float16(np.float32(dy[:, 0].float().sum())))
    got = float(b.grad[0])
    print(f"bias.grad[0] = {got}; float32 accumulation {right}; exact {exact:.7g}")
    sys.exit(1 if got != right else 0)
