"""torch's CPU bfloat16 matmul (oneDNN, above a size threshold) treats subnormal operands as 0.

(64 x 2 of -7) @ (2 x 64 of 1e-38): every entry is -1.4e-37, a normal bfloat16; torch 2.13 on
the CPU gives 0.0 (with oneDNN disabled, or for a 32 x 32 product, it gives the right value).
Exit 1 while the fault persists.  numpy and torch only.
"""

import sys

import numpy as np
import torch

z = torch.full((64, 2), -7.0, dtype=torch.bfloat16)
s = torch.full((64, 2), 1e-38, dtype=torch.bfloat16)  # subnormal in bfloat16 (and float32)
got = (z @ s.T).float().numpy()
want = (z.double().numpy() @ s.double().numpy().T).astype(np.float32)  # exact, then rounded
with torch.backends.mkldnn.flags(enabled=False):
    without = (z @ s.T).float().numpy()
print("bfloat16 matmul:", got[0, 0], " without oneDNN:", without[0, 0], " true:", want[0, 0])
sys.exit(1 if (got == 0).any() else 0)
