"""torch: LayerNorm on the CPU returns NaN once x * x overflows, where nothing else does.

layer_norm([[1e160]]) over a width of 1 is [[0]]: x - mean is exactly 0, and a two-pass
variance, mean((x - mean)^2), is 0 too.  torch 2.13 returns NaN in float64, and for
[[1e30], [2e30]] in float32: its row statistics square x itself (x * x overflows above
1.3e154 in float64, 1.8e19 in float32), and inf - inf is NaN.  (Where x - mean is itself that
large, as in [[1e200, 3e200]], a two-pass variance overflows as well: not counted here.)
In float16 and bfloat16 the forward also normalizes as x * rstd + (-rstd * mean), so at width
1 a rounding residue times the weight can overflow to inf where the output is the bias.

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import math
import sys

import torch
import torch.nn.functional as F

if __name__ == "__main__":
    print(f"torch {torch.__version__}")
    cases = [
        (torch.tensor([[1e160]], dtype=torch.float64), [0.0]),
        (torch.tensor([[1e30], [2e30]], dtype=torch.float32), [0.0, 0.0]),
    ]
    wrong = False
    for x, want in cases:
        got = F.layer_norm(x, x.shape[-1:]).flatten().tolist()
        print(f"{x.flatten().tolist()} ({x.dtype}): {got}  (exact: {want})")
        pairs = zip(got, want, strict=True)
        wrong |= any(not math.isfinite(g) or abs(g - w) > 1e-3 for g, w in pairs)
    sys.exit(1 if wrong else 0)
