"""torch (CPU) bfloat16 A @ s: a NaN in row r of A also makes row r - 1 NaN.

Exit 1 while the fault persists.  numpy and torch only.
"""

import sys

import numpy as np
import torch

torch.manual_seed(0)
A = torch.randn(1000, 257).to(torch.bfloat16)
s = torch.rand(257).to(torch.bfloat16)
A[329, 5] = float("nan")
got = torch.nonzero(torch.isnan(A @ s)).ravel().tolist()
want = np.flatnonzero(np.isnan(A.float().numpy() @ s.float().numpy())).tolist()  # exact rows
print("NaN rows, torch bfloat16:", got, " float32 / numpy:", want)
row = float((A.float() @ s.float())[328])
print("row 328 in float32:", row, " in bfloat16:", float((A @ s)[328]))
sys.exit(1 if got != want else 0)
