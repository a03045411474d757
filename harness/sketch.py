"""Values of one cell of a summary, mergeable and bounded: ``Sketch``.

A sketch keeps the values themselves while it has at most EXACT of them, so that every figure
read from it (quantiles, the median) equals numpy's on the same values.  Past that it keeps a
fixed histogram on a log scale, BINS_PER_DECADE bins per decade from 1e-12 to 1e24 for each
sign, plus exact zeros, magnitudes below the first bin, infinities and the exact maximum.  A
quantile read from the histogram is the geometric centre of its bin: within a factor
10**(1/(2 BINS_PER_DECADE)) (1.8 %) of the exact one, for values inside the binned range.
Sketches merge by adding (shards, workers, store parts) and save as JSON (``to_state``).
"""

from __future__ import annotations

import base64
import math

import numpy as np

__all__ = ["Sketch", "BINS_PER_DECADE", "LOW", "HIGH", "EXACT"]

EXACT = 2048  # values a sketch keeps as they are; past that, its histogram

BINS_PER_DECADE = 64
LOW, HIGH = -12, 24  # decades binned: 1e-12 .. 1e24
NBINS = (HIGH - LOW) * BINS_PER_DECADE
_BELOW, _ZERO, _INF = NBINS, NBINS + 1, NBINS + 2  # extra slots after the bins


def _bins(e: np.ndarray) -> np.ndarray:
    """The histogram slot of each magnitude."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.floor((np.log10(e) - LOW) * BINS_PER_DECADE)
    k = np.clip(np.nan_to_num(k, nan=-1, neginf=-1, posinf=NBINS - 1), -1, NBINS - 1)
    slot = k.astype(np.int64)
    slot[slot < 0] = _BELOW
    slot[e == 0] = _ZERO
    slot[np.isinf(e)] = _INF
    return slot


class Sketch:
    """The values of one cell: exact while at most EXACT, else a signed log histogram."""

    __slots__ = ("values", "neg", "pos", "n", "top", "t", "hi", "lo")

    def __init__(self, threshold: float | None = None):
        self.values: list[float] | None = []
        self.neg = self.pos = None
        self.n = 0
        self.top = -math.inf
        # with a threshold t: exact counts of values >= t and <= -t, so that whether the
        # median reaches +-t is decided exactly past EXACT values too (``side``)
        self.t, self.hi, self.lo = threshold, 0, 0

    def add(self, v: float) -> None:
        self.n += 1
        if self.t is not None:
            self.hi += v >= self.t
            self.lo += v <= -self.t
        self.top = max(self.top, v)
        if self.values is not None:
            self.values.append(v)
            if len(self.values) > EXACT:
                self._to_histogram()
        else:
            self._bin(np.array([v]))

    def _bin(self, a: np.ndarray) -> None:
        if self.neg is None:
            self.neg = np.zeros(NBINS + 3, dtype=np.int64)
            self.pos = np.zeros(NBINS + 3, dtype=np.int64)
        slots, neg = _bins(np.abs(a)), a < 0  # one pass over the magnitudes, then by sign
        self.neg += np.bincount(slots[neg], minlength=NBINS + 3)
        self.pos += np.bincount(slots[a >= 0], minlength=NBINS + 3)  # NaN: in neither

    def _to_histogram(self) -> None:
        if self.values is not None:
            values, self.values = self.values, None
            self._bin(np.asarray(values, dtype=float))

    @property
    def exact(self) -> bool:
        return self.values is not None

    def merge(self, other: Sketch) -> None:
        self.n += other.n
        self.hi += other.hi
        self.lo += other.lo
        self.top = max(self.top, other.top)
        if (self.values is not None and other.values is not None
                and len(self.values) + len(other.values) <= EXACT):  # fmt: skip
            self.values.extend(other.values)
            return
        self._to_histogram()
        if other.values is not None:
            self._bin(np.asarray(other.values, dtype=float))
        else:
            self.neg += other.neg
            self.pos += other.pos

    # -- figures ---------------------------------------------------------------------------------
    def _ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """(bin values ascending, counts): each bin as its geometric centre."""
        counts = np.concatenate([[self.neg[_INF]], self.neg[:NBINS][::-1], [self.neg[_BELOW]],
                                 [self.neg[_ZERO] + self.pos[_ZERO]], [self.pos[_BELOW]],
                                 self.pos[:NBINS], [self.pos[_INF]]])  # fmt: skip
        return _ORDERED, counts

    def quantile(self, q: float, finite: bool = False) -> float | None:
        """numpy's default quantile (linear between the two order statistics around rank
        q (n - 1)), over the finite values only with ``finite``; None where there are none."""
        if self.values is not None:
            a = np.asarray(self.values, dtype=float)
            if finite:
                a = a[np.isfinite(a)]
            if not a.size:
                return None
            if q == 0.5:  # np.median: an infinity in the middle is inf, not nan
                return float(np.median(a))
            return float(np.percentile(a, 100 * q))
        values, counts = self._ordered()
        if finite:
            counts = counts.copy()
            counts[0] = counts[-1] = 0
        n = int(counts.sum())
        if not n:
            return None
        cum = np.cumsum(counts)
        pos = q * (n - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        a = values[int(np.searchsorted(cum, lo + 1))]
        b = values[int(np.searchsorted(cum, hi + 1))]
        if math.isinf(a) or math.isinf(b):
            return float(a if math.isinf(a) else b)
        return float(min(a + (pos - lo) * (b - a), self.top))  # no quantile past the maximum

    def median(self) -> float:
        m = self.quantile(0.5)
        return 0.0 if m is None else m

    def side(self) -> int:
        """+1 if the median is >= the threshold t, -1 if <= -t, else 0: exact from the values,
        or from the counts past EXACT (both middle values on one side of t); only where the
        two middle values of an even count straddle t, from the histogram's median."""
        t, n = self.t, self.n
        if self.values is None and n:
            if 2 * self.hi > n:
                return 1
            if 2 * self.lo > n:
                return -1
            if 2 * self.hi < n and 2 * self.lo < n:
                return 0
        m = self.median()
        return 1 if m >= t else -1 if m <= -t else 0

    # -- saved state -----------------------------------------------------------------------------
    def to_state(self) -> dict:
        top = "inf" if self.top == math.inf else (None if self.top == -math.inf else self.top)
        counts = {} if self.t is None else {"t": self.t, "hi": self.hi, "lo": self.lo}
        if self.values is not None:  # as they are, so a store part gives the figures memory does
            # as float64 bytes (base64): a store part's footer holds thousands of values, and
            # parsing them as JSON numbers is what reading a campaign's footers would cost
            raw = np.asarray(self.values, dtype="<f8").tobytes()
            return {"v64": base64.b64encode(raw).decode(), "top": top, **counts}
        return {"n": self.n, "top": top, "neg": _sparse(self.neg), "pos": _sparse(self.pos),
                **counts}  # fmt: skip

    @classmethod
    def from_state(cls, d: dict) -> Sketch:
        s = cls(d.get("t"))
        s.hi, s.lo = d.get("hi", 0), d.get("lo", 0)
        top = d.get("top")
        s.top = -math.inf if top is None else float(top)  # "inf" parses
        if "v64" in d:
            s.values = np.frombuffer(base64.b64decode(d["v64"]), dtype="<f8").tolist()
            s.n = len(s.values)
            return s
        s.values, s.n = None, d["n"]
        s.neg = np.zeros(NBINS + 3, dtype=np.int64)
        s.pos = np.zeros(NBINS + 3, dtype=np.int64)
        for side, arr in (("neg", s.neg), ("pos", s.pos)):
            for k, c in d[side].items():
                arr[int(k)] = c
        return s


# the value each slot of ``Sketch._ordered`` stands for, ascending: -inf, the negative bins'
# centres, the magnitudes below the first bin, zero, then the same mirrored
_CENTRES = 10 ** (LOW + (np.arange(NBINS) + 0.5) / BINS_PER_DECADE)
_ORDERED = np.concatenate([[-math.inf], -_CENTRES[::-1], [-(10.0**LOW)], [0.0], [10.0**LOW],
                           _CENTRES, [math.inf]])  # fmt: skip


def _sparse(a: np.ndarray) -> dict:
    (nz,) = np.nonzero(a)
    return {str(int(k)): int(a[k]) for k in nz}
