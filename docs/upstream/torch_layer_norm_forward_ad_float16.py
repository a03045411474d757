"""torch: forward-mode AD through LayerNorm in float16 gives NaN for a small variance.

The JVP of sum(layer_norm(x, (1,))) + sum(x * x) at x = [[1.5], [0.25]] along ones is 3.5 (the
LayerNorm of a single element is 0 whatever x is, so only 2 * sum(x) remains).  torch.func.jvp
returns NaN in float16 (3.5 in bfloat16 and float32): the rule multiplies by rsqrt(var + eps)^3,
1 / sqrt(1e-5)^3 = 3.2e7, past float16's 65504, and inf * 0 is NaN.  Width 1 is the extreme case
of any row with var + eps below about 2.4e-3.  The reverse-mode gradient is finite (but not 0:
pytorch#188375, the same width-1 LayerNorm).

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import math
import sys

import torch
import torch.nn.functional as F
from torch.func import jvp

if __name__ == "__main__":
    print(f"torch {torch.__version__}")
    wrong = False
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        x = torch.tensor([[1.5], [0.25]], dtype=dtype)
        _, t = jvp(
            lambda x: F.layer_norm(x, (1,)).sum() + (x * x).sum(), (x,), (torch.ones_like(x),)
        )
        print(f"{str(dtype):>15}: jvp = {t.item()}  (true value 3.5)")
        wrong |= not math.isfinite(t.item()) or abs(t.item() - 3.5) > 0.01
    sys.exit(1 if wrong else 0)
