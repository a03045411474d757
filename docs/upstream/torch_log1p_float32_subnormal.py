"""torch.log1p (CPU, float32) returns 0 for the smallest subnormal, where log1p(x) = x.

Exit 1 while the fault persists.  numpy and torch only.
"""

import sys

import numpy as np
import torch

x = np.array([1.4013e-45, 3.7835e-44, 1e-40], dtype=np.float32)
got = torch.log1p(torch.from_numpy(x)).numpy()
want = np.log1p(x.astype(np.float64)).astype(np.float32)  # log1p(x) = x to float32's last bit
print("torch:", got, " true:", want)
sys.exit(1 if (got != want).any() else 0)
