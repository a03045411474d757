"""Functions binary128 lacks (numpy-quaddtype 1.0.0 has no erf), through arb ball arithmetic.

A binary128 value is split exactly into three float64s (hi + mid + lo), summed exactly in arb,
evaluated with a rigorous enclosure at 150 bits, and rounded back the same way.
"""

from __future__ import annotations

import numpy as np
from gradxval.judge.engine.arith import current, join3, split3

__all__ = ["erf_values", "two_over_sqrt_pi"]


def _arb_map(fn, q):
    import flint

    old = flint.ctx.prec
    flint.ctx.prec = 150
    try:
        hi, mid, lo = split3(q)
        out = np.empty((3, q.size))
        for i, (a, b, c) in enumerate(zip(hi.ravel(), mid.ravel(), lo.ravel(), strict=True)):
            if not np.isfinite(a):
                y = fn(float(a))
                out[:, i] = (y, 0.0, 0.0)
                continue
            y = fn(flint.arb(a) + flint.arb(b) + flint.arb(c)).mid()
            h = float(y)
            m = float(y - h)
            out[:, i] = (h, m, float(y - h - m))
        return join3(*(o.reshape(q.shape) for o in out), q.dtype)
    finally:
        flint.ctx.prec = old


def _erf_scalar(t):
    import math

    return math.erf(t) if isinstance(t, float) else t.erf()


def erf_values(v, arith):
    """erf of an array in the arithmetic ``arith``."""
    if not arith.exact:
        from scipy.special import erf

        return erf(arith.to_float64(v))
    if np.asarray(v).dtype == object:  # arb balls already
        return np.vectorize(lambda t: t.erf(), otypes=[object])(v)
    return _arb_map(_erf_scalar, v)


def two_over_sqrt_pi():
    """2 / sqrt(pi) as a constant of the current arithmetic."""
    ar = current()
    if not ar.exact:
        return ar.const(2.0 / np.sqrt(np.pi))
    import flint

    if ar.dtype == object:
        return np.asarray(2 / flint.arb.pi().sqrt(), dtype=object)
    old = flint.ctx.prec
    flint.ctx.prec = 150
    try:
        y = 2 / flint.arb.pi().sqrt()
        h = float(y)
        m = float(y - h)
        lo = float(y - h - m)
    finally:
        flint.ctx.prec = old
    return join3(np.array(h), np.array(m), np.array(lo), ar.dtype)
