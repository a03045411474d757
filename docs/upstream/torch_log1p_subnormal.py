"""torch.log1p (CPU) returns 0 for the smallest subnormal (float32 and float64), where log1p(x) = x.

Exit 1 while the fault persists.  numpy and torch only.
"""

import sys

import numpy as np
import torch

x = np.array([1.4013e-45, 3.7835e-44, 1e-40], dtype=np.float32)
got = torch.log1p(torch.from_numpy(x)).numpy()
want = np.log1p(x.astype(np.float64)).astype(np.float32)  # log1p(x) = x to float32's last bit
print("float32 torch:", got, " true:", want)
x64 = np.array([5e-324, 1e-310])
got64 = torch.log1p(torch.from_numpy(x64)).numpy()
print("float64 torch:", got64, " true:", x64)  # log1p(x) rounds to x for subnormal x
sys.exit(1 if (got != want).any() or (got64 != x64).any() else 0)
