"""Ground-floor numerics shared by problems, the reference and the witness; imports nothing of
gradxval.

- error-free transformations: TwoSum (Knuth) and TwoProduct (Dekker's splitting), exact for
  float64 arrays without overflow;
- double-double arithmetic built on them (Dot2 of Ogita, Rump & Oishi 2005);
- Richardson-extrapolated central differences, with an error estimate.
"""

from __future__ import annotations

import numpy as np

__all__ = ["two_sum", "two_prod", "dd_mul", "dd_matmul", "richardson"]

_SPLIT = 134217729.0  # 2**27 + 1, Dekker's splitter for float64


def two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a):
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a, b):
    """(p, e) with p = fl(a * b) and p + e = a * b exactly (barring underflow)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def dd_mul(a_hi, a_lo, b_hi, b_lo):
    """(a_hi + a_lo)(b_hi + b_lo) as a double-double, to about 2**-104 relative."""
    p, e = two_prod(a_hi, b_hi)
    return two_sum(p, e + (a_hi * b_lo + a_lo * b_hi))


def dd_matmul(B: np.ndarray, v_hi: np.ndarray, v_lo: np.ndarray):
    """Double-double B @ (v_hi + v_lo) for float64 B (P, Q) and v (Q, k)."""
    P, k = B.shape[0], v_hi.shape[1]
    hi = np.zeros((P, k))
    lo = np.zeros((P, k))
    cols = np.ascontiguousarray(B.T)
    for q in range(B.shape[1]):
        b = cols[q][:, None]
        p, e = two_prod(b, v_hi[q][None, :])
        hi, t = two_sum(hi, p)
        lo += t + e + b * v_lo[q][None, :]
    return two_sum(hi, lo)


def richardson(f, h0: float) -> tuple[float, float]:
    """Central differences at h0 / 2**j, extrapolated; returns (value, error estimate)."""
    rows: list[list[float]] = []
    f0 = abs(f(0.0))
    for j in range(4):
        h = h0 / 2**j
        row = [(f(h) - f(-h)) / (2 * h)]
        for i in range(1, j + 1):
            row.append(row[i - 1] + (row[i - 1] - rows[j - 1][i - 1]) / (4**i - 1))
        rows.append(row)
    best = rows[-1][-1]
    err = abs(best - rows[-2][-1]) + 4 * 2.0**-53 * f0 / (h0 / 8)
    return best, err
