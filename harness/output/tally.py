"""A summary that streams: mergeable state updated per batch of records, never the records.

The state is what the figures need, not the records they come from:

- counts per verdict, the agreement matrix (backend/method x dtype x verdict) and the known
  entries seen: exact counts;
- the error distribution per backend/method x dtype: a fixed histogram of error_u on a
  log scale, BINS_PER_DECADE bins per decade from 1e-12 u to 1e24 u, plus counts of exact
  zeros, of values below the first bin, and of infinities, and the exact maximum.  A quantile
  read from it is the geometric centre of its bin: within a factor 10**(1/(2 BINS_PER_DECADE))
  (1.8 %) of the exact one, for values inside the binned range (numpy's linear interpolation
  between two order statistics stays within it too);
- the flagged records themselves (disagree, error), for findings: their number is what a
  campaign must read anyway, and a healthy campaign has few.

Two tallies merge by adding (shards, Dask workers, part files): ``merge``.  Memory grows with
the number of cells and flagged records, not with the number of records.  ``add_batch`` takes a
pyarrow RecordBatch or Table of the store's schema and works column-wise; ``add`` takes one
record dict (results.jsonl).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

__all__ = ["Tally", "BINS_PER_DECADE", "LOW", "HIGH"]

BINS_PER_DECADE = 64
LOW, HIGH = -12, 24  # decades of error_u binned: 1e-12 u .. 1e24 u
NBINS = (HIGH - LOW) * BINS_PER_DECADE
JUDGED = ("agree", "overflow", "disagree", "known")
FLAGGED = ("disagree", "error")
_BELOW, _ZERO, _INF = NBINS, NBINS + 1, NBINS + 2  # extra slots after the bins


def _bins(e: np.ndarray) -> np.ndarray:
    """The histogram slot of each error_u."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.floor((np.log10(e) - LOW) * BINS_PER_DECADE)
    k = np.clip(np.nan_to_num(k, nan=-1, neginf=-1, posinf=NBINS - 1), -1, NBINS - 1)
    slot = k.astype(np.int64)
    slot[slot < 0] = _BELOW
    slot[e == 0] = _ZERO
    slot[np.isinf(e)] = _INF
    return slot


class Tally:
    def __init__(self):
        self.records = 0
        self.counts: Counter = Counter()
        self.matrix: dict[tuple[str, str], Counter] = {}
        self.known: Counter = Counter()
        self.hist: dict[str, np.ndarray] = {}
        self.maximum: dict[str, float] = {}
        self.flagged: list[dict] = []

    # -- updates -------------------------------------------------------------------------------
    def add(self, r: dict) -> None:
        if "case_done" in r:
            return
        self.records += 1
        v = r["verdict"]
        self.counts[v] += 1
        row = f"{r['backend']}/{r['method']}"
        self.matrix.setdefault((row, r["dtype"]), Counter())[v] += 1
        if v == "known":
            self.known.update(p for p in (r.get("classification") or "").split("+") if p)
        e = r.get("error_u")
        if v in JUDGED and e is not None:
            self._hist(f"{row} {r['dtype']}", np.array([math.inf if e == "inf" else float(e)]))
        if v in FLAGGED:
            self.flagged.append(r)

    def add_batch(self, batch) -> None:
        """A pyarrow RecordBatch or Table with the store's columns, column-wise."""
        import pyarrow as pa
        import pyarrow.compute as pc

        t = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if not t.num_rows:
            return
        self.records += t.num_rows
        row = pc.binary_join_element_wise(t["backend"], t["method"], "/")
        t = t.append_column("row", row)
        groups = t.group_by(["row", "dtype", "verdict"]).aggregate([([], "count_all")])
        for g in groups.to_pylist():
            self.counts[g["verdict"]] += g["count_all"]
            self.matrix.setdefault((g["row"], g["dtype"]), Counter())[g["verdict"]] += g[
                "count_all"
            ]
        known = t.filter(pc.equal(t["verdict"], "known"))["classification"]
        for cls, n in zip(*_value_counts(known), strict=True):
            self.known.update({p: n for p in (cls or "").split("+") if p})
        judged = t.filter(pc.and_(pc.is_in(t["verdict"], pa.array(JUDGED)),
                                  pc.is_valid(t["error_u"])))  # fmt: skip
        if judged.num_rows:
            key = pc.binary_join_element_wise(judged["row"], judged["dtype"], " ")
            enc = pc.dictionary_encode(key).combine_chunks()
            idx = enc.indices.to_numpy(zero_copy_only=False)
            e = judged["error_u"].to_numpy()
            slots = _bins(e)
            for i, name in enumerate(enc.dictionary.to_pylist()):
                mine = idx == i
                self._add_hist(name, slots[mine], e[mine])
        flagged = t.filter(pc.is_in(t["verdict"], pa.array(FLAGGED)))
        if flagged.num_rows:
            from gradxval.output.store import _record

            self.flagged.extend(_record(r) for r in flagged.drop_columns(["row"]).to_pylist())

    def _hist(self, key: str, e: np.ndarray) -> None:
        self._add_hist(key, _bins(e), e)

    def _add_hist(self, key: str, slots: np.ndarray, e: np.ndarray) -> None:
        h = self.hist.get(key)
        if h is None:
            h = self.hist[key] = np.zeros(NBINS + 3, dtype=np.int64)
        h += np.bincount(slots, minlength=NBINS + 3)
        if e.size:
            self.maximum[key] = max(self.maximum.get(key, -math.inf), float(np.max(e)))

    def merge(self, other: Tally) -> Tally:
        self.records += other.records
        self.counts.update(other.counts)
        for k, c in other.matrix.items():
            self.matrix.setdefault(k, Counter()).update(c)
        self.known.update(other.known)
        for k, h in other.hist.items():
            if k in self.hist:
                self.hist[k] = self.hist[k] + h
            else:
                self.hist[k] = h.copy()
            self.maximum[k] = max(self.maximum.get(k, -math.inf), other.maximum[k])
        self.flagged.extend(other.flagged)
        return self

    # -- figures -------------------------------------------------------------------------------
    def matrix_counts(self) -> dict:
        """As summary.json's "matrix": {backend/method: {dtype: {verdict: count}}}."""
        from gradxval.dtypes import DTYPES

        rows = sorted({k[0] for k in self.matrix})
        cols = [d for d in DTYPES if any(k[1] == d for k in self.matrix)]
        return {r: {d: dict(self.matrix[(r, d)]) for d in cols if (r, d) in self.matrix}
                for r in rows}  # fmt: skip

    def distributions(self) -> dict:
        """As summary.json's "accuracy": results, median, p99 and max of error_u per
        backend/method dtype; the quantiles within a bin's width (module docstring)."""
        out = {}
        for key in sorted(self.hist):
            h = self.hist[key]
            n = int(h.sum())
            top = self.maximum[key]
            out[key] = {
                "results": n,
                "median_u": _clamp(_quantile(h, 0.5, n), top),
                "p99_u": _clamp(_quantile(h, 0.99, n - int(h[_INF])), top) if n > h[_INF] else None,
                "max_u": "inf" if math.isinf(self.maximum[key]) else round(self.maximum[key], 4),
            }
        return out

    def summary(self, registry=None, diagnoses=None) -> dict:
        from gradxval.judge.compare import VERDICTS
        from gradxval.output.findings import findings

        return {
            "records": self.records,
            "counts": {v: self.counts.get(v, 0) for v in VERDICTS},
            "unexplained": self.counts.get("disagree", 0),
            "matrix": self.matrix_counts(),
            "known_seen": dict(self.known.most_common()),
            "accuracy": self.distributions(),
            "findings": findings(self.flagged, registry, diagnoses),
        }


def _clamp(q, top: float):
    """A bin centre may lie past the largest value: no quantile exceeds the exact maximum."""
    return q if isinstance(q, str) or q is None or q <= top else round(top, 4)


def _quantile(h: np.ndarray, q: float, n: int):
    """The q-quantile of the histogrammed values as numpy's default (linear between the two
    order statistics around rank q (n - 1)), each order statistic taken as the geometric
    centre of its bin; 0 for exact zeros, 'inf' for infinities."""
    if n <= 0:
        return None
    pos = q * (n - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = _order_statistic(h, lo), _order_statistic(h, hi)
    if math.inf in (a, b):
        return "inf"
    return round(a + (pos - lo) * (b - a), 4)


def _order_statistic(h: np.ndarray, rank: int) -> float:
    order = np.concatenate([[h[_ZERO], h[_BELOW]], h[:NBINS], [h[_INF]]])
    k = int(np.searchsorted(np.cumsum(order), rank + 1))
    if k == 0:
        return 0.0
    if k == 1:
        return 10.0**LOW  # below the binned range: at most this
    if k >= len(order) - 1:
        return math.inf
    return 10 ** (LOW + (k - 2 + 0.5) / BINS_PER_DECADE)


def _value_counts(col):
    import pyarrow.compute as pc

    vc = pc.value_counts(col)
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()
