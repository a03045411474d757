"""Ground-floor numerics shared by problems, the reference and the witness; imports nothing of
gradxval.

- error-free transformations: TwoSum (Knuth) and TwoProduct (Dekker's splitting), exact for
  float64 arrays without overflow;
- double-double arithmetic built on them (Dot2 of Ogita, Rump & Oishi 2005), elementwise on
  whole arrays: sums, products, quotients and exp (Hida, Li & Bailey's QD algorithms);
- exact matrix products by splitting into slices with one quantum each (Ozaki, Ogita, Oishi &
  Rump 2012), so that BLAS does the work and every slice product is exact;
- Richardson-extrapolated central differences, with an error estimate.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "two_sum",
    "two_prod",
    "dd_add",
    "dd_mul",
    "dd_div",
    "dd_exp",
    "dd_matmul",
    "dd_outer",
    "aligned_slices",
    "richardson",
    "round_to",
]


def round_to(v, dt) -> np.ndarray:
    """v rounded to the dtype ``dt`` and back to float64: one rounding of a model's operation."""
    with np.errstate(all="ignore"):
        return np.asarray(v).astype(dt).astype(np.float64)


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


_BLOCK = 1 << 16  # elements: a block's temporaries (512 KB each) stay in cache


def dd_outer(a_hi, a_lo, b_hi, b_lo, scale: float = 1.0) -> np.ndarray:
    """scale * fl((a_hi + a_lo)(b_hi + b_lo)) for a column (P, 1) and a row (1, Q), float64.

    a_hi b_hi exactly (two_prod), plus the cross terms a_hi b_lo + a_lo b_hi in float64 (below
    2**-53 of it; a_lo b_lo is below 2**-104), rounded once; ``scale`` a power of two.  Row
    block by row block: the temporaries stay in cache and only the result goes to memory (the
    whole-array form made ten passes over P x Q and three fresh arrays of that size: 63 ms
    against 20 ms at P = Q = 3000, benchmarks/micro.py).  The operations are two_prod's, in its
    order, element by element: the same bits as on whole arrays.
    """
    P, Q = a_hi.shape[0], b_hi.shape[1]
    out = np.empty((P, Q))
    bh, bl = _split(b_hi)
    step = max(1, _BLOCK // max(Q, 1))
    for r in range(0, P, step):
        x, x_lo = a_hi[r : r + step], a_lo[r : r + step]
        ah, al = _split(x)
        p = np.multiply(x, b_hi, out=out[r : r + step])
        e = ah * bh
        e -= p
        t = ah * bl
        e += t
        e += np.multiply(al, bh, out=t)
        e += np.multiply(al, bl, out=t)  # e: the exact error of p
        e += np.multiply(x, b_lo, out=t)
        e += np.multiply(x_lo, b_hi, out=t)
        p += e
        if scale != 1.0:
            p *= scale
    return out


def _fast_two_sum(a, b):
    """two_sum for |a| >= |b| (or a == 0)."""
    s = a + b
    return s, b - (s - a)


def dd_add(a_hi, a_lo, b_hi, b_lo):
    """(a_hi + a_lo) + (b_hi + b_lo) as a double-double (QD's accurate addition)."""
    s, e = two_sum(a_hi, b_hi)
    t, f = two_sum(a_lo, b_lo)
    s, e = _fast_two_sum(s, e + t)
    return _fast_two_sum(s, e + f)


def dd_mul(a_hi, a_lo, b_hi, b_lo):
    """(a_hi + a_lo)(b_hi + b_lo) as a double-double, to about 2**-104 relative."""
    p, e = two_prod(a_hi, b_hi)
    return two_sum(p, e + (a_hi * b_lo + a_lo * b_hi))


def dd_div(a_hi, a_lo, b_hi, b_lo):
    """(a_hi + a_lo) / (b_hi + b_lo) as a double-double: three quotient digits, each with the
    remainder computed in double-double (QD's accurate division)."""
    q1 = a_hi / b_hi
    r = dd_add(a_hi, a_lo, *_neg(*dd_mul(b_hi, b_lo, q1, 0.0)))
    q2 = r[0] / b_hi
    r = dd_add(*r, *_neg(*dd_mul(b_hi, b_lo, q2, 0.0)))
    q3 = r[0] / b_hi
    return dd_add(*_fast_two_sum(q1, q2), q3, 0.0)


def _neg(hi, lo):
    return -hi, -lo


_LN2 = (0.6931471805599453, 2.3190468138462996e-17)  # ln 2 = hi + lo to 2**-107
_LN2_LO2 = 5.707708438416212e-34  # ln 2 - hi - lo: keeps k ln 2 exact to 2**-110 for |k| < 2**11


def _inverse_factorials(count: int):
    from fractions import Fraction
    from math import factorial

    out = []
    for i in range(count + 1):
        f = Fraction(1, factorial(i))
        hi = float(f)
        out.append((hi, float(f - Fraction(hi))))
    return out


_INV_FACT = _inverse_factorials(10)
_HALVINGS = 10  # exp(r) = exp(r / 2**10)**(2**10): the Taylor series then needs 9 terms


def dd_exp(y):
    """exp(y) - 1 and exp(y) as double-doubles for float64 y in [-650, 650], both to 2**-97
    relative (measured against mpmath; no cancellation in exp(y) - 1 near 0).  Beyond, the low
    part turns subnormal and the pair loses digits.

    y = k ln 2 + r with |r| <= ln 2 / 2, r exact in double-double; expm1(r / 2**10) by its
    Taylor series; doubled ten times as (1 + e)**2 - 1 = e (2 + e); then scaled by 2**k.
    """
    y = np.asarray(y, dtype=np.float64)
    k = np.rint(y / _LN2[0])
    p, pe = two_prod(k, _LN2[0])  # k ln2_hi exactly; y - p is exact (Sterbenz)
    q, qe = two_prod(k, _LN2[1])
    r = dd_add(y - p, -pe, -q, -qe)
    r = dd_add(*r, -k * _LN2_LO2, 0.0)
    r = (r[0] / 2.0**_HALVINGS, r[1] / 2.0**_HALVINGS)
    t = _INV_FACT[9]
    for i in range(8, 0, -1):  # Horner: 1/1! + r (1/2! + r (... + r / 9!))
        t = dd_add(*dd_mul(*t, *r), *_INV_FACT[i])
    e = dd_mul(*t, *r)  # expm1(r / 2**10)
    for _ in range(_HALVINGS):
        e = dd_mul(*e, *dd_add(*e, 2.0, 0.0))
    ex = dd_add(*e, 1.0, 0.0)
    ex = (np.ldexp(ex[0], k.astype(np.int64)), np.ldexp(ex[1], k.astype(np.int64)))
    em1 = dd_add(*ex, -1.0, 0.0)
    small = k == 0  # exp(y) - 1 straight from the series: no cancellation
    em1 = (np.where(small, e[0], em1[0]), np.where(small, e[1], em1[1]))
    return em1, ex


def dd_matmul(B: np.ndarray, v_hi: np.ndarray, v_lo: np.ndarray, slices=None):
    """Double-double B @ (v_hi + v_lo) for float64 B (P, Q) and v (Q, k).

    With ``slices`` (``aligned_slices(B)``) and finite inputs the products run on BLAS, exact
    (``_sliced_matmul``); otherwise, or where the slices would not be exact, Dot2 column by
    column.
    """
    if slices is not None:
        out = _sliced_matmul(B, slices, v_hi, v_lo)
        if out is not None:
            return out
    return _dot2_matmul(B, v_hi, v_lo)


def _dot2_matmul(B: np.ndarray, v_hi: np.ndarray, v_lo: np.ndarray):
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


# Exact products by slices (Ozaki's scheme).  A slice holds integer multiples of one quantum
# 2**(t - beta), each at most 2**t in magnitude: a product of two slices summed over Q terms is
# an integer multiple of the quanta's product below 2**53 of them when
# beta_B + beta_v + log2(Q) <= 53, so BLAS returns it exactly, in any order, with or without fma.
_BETA_B = 26  # bits per slice of the matrix: 53 bits and the spread of a random matrix in 3
_MAX_B_SLICES = 4
_MAX_V_SLICES = 12


def aligned_slices(a: np.ndarray, beta: int = _BETA_B, cap: int = _MAX_B_SLICES):
    """(slices, quantum exponents, t) with sum(slices) exactly ``a`` (finite float64), slice j an
    integer multiple of 2**e_j at most 2**(e_j + beta) in magnitude, and max |a| < 2**t; or None
    when ``a`` is not finite or needs more than ``cap`` slices.

    Extraction is Rump's: fl((r + sigma) - sigma) with sigma = 1.5 * 2**(52 + t - beta) rounds
    r (|r| <= 2**t) to a multiple of 2**(t - beta) exactly, and r minus it is exact.
    """
    if a.size == 0:
        return [], [], 0
    with np.errstate(all="ignore"):
        top = max(float(a.max()), -float(a.min()))  # max |a|, no temporary; NaN if any is
    if not np.isfinite(top):
        return None
    if top == 0:
        return [], [], 0
    t0 = int(np.frexp(top)[1])  # top < 2**t0
    # Row block by row block, so that each block's remainder stays in cache and each slice is
    # written once (the whole-array form made four passes and a fresh array per slice).  The
    # slices are the same: each element's depend only on t0 and the slice's index; a block
    # that needs fewer slices than another leaves zeros in the rest.
    a2 = a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, 1)
    step = max(1, _BLOCK // max(a2.shape[1], 1))
    out: list[np.ndarray] = []
    for r in range(0, a2.shape[0], step):
        rest, t, j = a2[r : r + step], t0, 0
        while True:
            if j == cap or t - beta < -1074:
                return None
            if j == len(out):
                out.append(np.zeros(a2.shape))
            sigma = 1.5 * 2.0 ** (52 + t - beta)
            q = np.add(rest, sigma, out=out[j][r : r + step])
            q -= sigma
            rest = rest - q if j == 0 else np.subtract(rest, q, out=rest)
            j += 1
            t -= beta + 1  # |rest| <= 2**(t - beta - 1)
            if not rest.any():
                break
    quanta = [t0 - beta - j * (beta + 1) for j in range(len(out))]
    return [q.reshape(a.shape) for q in out], quanta, t0


def _sliced_matmul(B, b_slices, v_hi, v_lo):
    """B @ (v_hi + v_lo) with B @ v_hi exact on BLAS, slice by slice, and the small B @ v_lo in
    float64 (below 2**-53 of the rest, as Dot2 has it); the exact partial products are summed
    in double-double, largest first.  None where v_hi or the sizes do not allow exactness."""
    slices, quanta_b, t_b = b_slices
    Q = B.shape[1]
    k = v_hi.shape[1]
    if not slices or not Q or not np.isfinite(v_lo).all():
        return None
    log_q = max(1, int(np.ceil(np.log2(Q))))
    beta_v = 53 - _BETA_B - log_q
    if beta_v < 8:
        return None
    vs = aligned_slices(v_hi, beta_v, _MAX_V_SLICES)
    if vs is None:
        return None
    v_slices, quanta_v, t_v = vs
    if not v_slices:  # v_hi == 0
        return np.zeros((B.shape[0], k)), B @ v_lo
    # every product a multiple of a representable quantum (subnormals included), no overflow
    if quanta_b[-1] + quanta_v[-1] < -1074 or t_b + t_v + log_q > 1020:
        return None
    V = np.concatenate(v_slices, axis=1)  # (Q, k * slices)
    hi = lo = None
    for part in (b @ V for b in slices):  # exact partial products, columns grouped by v slice
        for j in range(len(v_slices)):
            c = part[:, j * k : (j + 1) * k]
            if hi is None:
                hi, lo = c, np.zeros_like(c)
            else:
                hi, e = two_sum(hi, c)
                lo = lo + e
    lo = lo + B @ v_lo
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
