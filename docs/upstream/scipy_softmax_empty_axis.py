"""scipy: softmax and log_softmax of an empty axis raise ValueError; logsumexp returns -inf.

The softmax of no entries is no entries, and log(sum of no exponentials) is log 0 = -inf.
scipy.special.logsumexp returns -inf there since scipy#20399 (fixed by scipy PR #20511), but
softmax and log_softmax still take np.amax of the axis without an initial value and raise
"zero-size array to reduction operation maximum which has no identity".  torch and jax
(jax PR #20690) return an empty array.  A batch of zero classes or a masked-out row reaches
this in practice.

Exit status: 1 while the fault persists, 0 once it is fixed.
"""

import sys

import numpy as np
import scipy
from scipy.special import log_softmax, logsumexp, softmax

if __name__ == "__main__":
    print(f"scipy {scipy.__version__}")
    empty = np.zeros((3, 0))
    print(f"logsumexp(empty, axis=-1) = {logsumexp(empty, axis=-1)}")
    raised = []
    for f in (softmax, log_softmax):
        try:
            out = f(empty, axis=-1)
            print(f"{f.__name__}(empty, axis=-1) -> shape {out.shape}")
        except ValueError as exc:
            print(f"{f.__name__}(empty, axis=-1) raised ValueError: {exc}")
            raised.append(f.__name__)
    sys.exit(1 if raised else 0)
