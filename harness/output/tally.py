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
  campaign must read anyway, and a healthy campaign has few; and the known ones up to
  KNOWN_KEPT (summary.json's "disagreements" lists those, and says how many more there were);
- per case (``add_case``: a case's records together, as a campaign finishes them): coverage
  (judged cases per dtype x shape class, regime and problem), determinism counts, the |x|
  profiles (worst per bin: exact), and the accuracy-outlier test's state per backend/method x
  dtype x quantity: the signs of d = bias_u - the honest closed forms' median (exact counts),
  d and bias_u themselves in signed histograms (their medians within the same 1.8 %), and the
  registered systematic fault marks with their excess bias.

Two tallies merge by adding (shards, Dask workers, part files): ``merge``.  Memory grows with
the number of cells and flagged records, not with the number of records.  ``add_batch`` takes a
pyarrow RecordBatch or Table of the store's schema and works column-wise; ``add`` takes one
record dict (results.jsonl).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

__all__ = ["Tally", "BINS_PER_DECADE", "LOW", "HIGH", "KNOWN_KEPT"]

KNOWN_KEPT = 10_000  # known results listed in "disagreements"; the rest counted

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
        self.known_kept: list[dict] = []
        self.known_more = 0
        self.listed: list[dict] = []  # disagree and (up to KNOWN_KEPT) known, in order
        self.judged_cases = 0
        self.shapes: dict[str, Counter] = {}
        self.regimes: dict[str, Counter] = {}
        self.problems: dict[str, Counter] = {}
        self.determinism = Counter()
        self.profiles: dict[str, dict[str, dict]] = {}
        self.outlier: dict[tuple, dict] = {}

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
            if len(self.known_kept) < KNOWN_KEPT:
                self.known_kept.append(r)
                self.listed.append(r)
            else:
                self.known_more += 1
        elif v == "disagree":
            self.listed.append(r)
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

            rows = [_record(r) for r in flagged.drop_columns(["row"]).to_pylist()]
            self.flagged.extend(rows)
            self.listed.extend(r for r in rows if r["verdict"] == "disagree")

    def add_case(self, records: list[dict]) -> None:
        """One case's records together: everything add() takes, and the per-case figures."""
        from gradxval.judge.accuracy import HONEST
        from gradxval.model.cases import SHAPE_CLASSES, Case, shape_classes

        records = [r for r in records if "case_done" not in r]
        for r in records:
            self.add(r)
        judged = [r for r in records if r["verdict"] in JUDGED]
        if judged:
            self.judged_cases += 1
            c = Case.from_id(judged[0]["case_id"])
            row = self.shapes.setdefault(c.dtype, Counter(dict.fromkeys(SHAPE_CLASSES, 0)))
            row.update(shape_classes(c))
            self.regimes.setdefault(c.dtype, Counter())[c.regime] += 1
            self.problems.setdefault(c.dtype, Counter())[c.problem] += 1
        self.determinism["results"] += len(judged)
        self.determinism["repeat_checked"] += sum(
            1 for r in records if (r.get("extra") or {}).get("repeat_checked")
        )
        for r in records:
            prof = (r.get("extra") or {}).get("profile")
            if prof:
                row = self.profiles.setdefault(r["dtype"], {}).setdefault(
                    f"{r['backend']}/{r['method']}", {}
                )
                for b, rel in prof:
                    row[b] = max(row.get(b, 0.0), rel)
        # the accuracy-outlier test (judge.accuracy): d against the honest closed forms' median
        by: dict[str, dict[str, tuple]] = {}
        for r in records:
            extra = r.get("extra") or {}
            if extra.get("bias_u") is not None and r["verdict"] in ("agree", "overflow"):
                by.setdefault(r["quantity"], {})[f"{r['backend']}/{r['method']}"] = (
                    float(extra["bias_u"]), extra, r["dtype"])  # fmt: skip
        for quantity, whos in by.items():
            for who, (b, extra, dtype) in whos.items():
                peers = [v[0] for w, v in whos.items() if w in HONEST and w != who]
                d = b - (float(np.median(peers)) if peers else 0.0)
                g = self.outlier.setdefault((who, dtype, quantity), _group())
                g["pos"] += d > 0
                g["neg"] += d < 0
                g["n"] += 1
                g["d"].add(d)
                g["b"].add(b)
                mark = extra.get("explained_by")
                if mark:
                    m = g["marks"].setdefault(mark, [0, _Signed()])
                    m[0] += 1
                    m[1].add(b - extra["model_bias_u"])

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
        room = max(0, KNOWN_KEPT - len(self.known_kept))
        dropped = {id(r) for r in other.known_kept[room:]}
        self.known_kept.extend(other.known_kept[:room])
        self.known_more += other.known_more + len(dropped)
        self.listed.extend(r for r in other.listed if id(r) not in dropped)
        self.judged_cases += other.judged_cases
        for mine, theirs in ((self.shapes, other.shapes), (self.regimes, other.regimes),
                             (self.problems, other.problems)):  # fmt: skip
            for k, c in theirs.items():
                mine.setdefault(k, Counter()).update(c)
        self.determinism.update(other.determinism)
        for d, rows in other.profiles.items():
            for who, bins in rows.items():
                row = self.profiles.setdefault(d, {}).setdefault(who, {})
                for b, v in bins.items():
                    row[b] = max(row.get(b, 0.0), v)
        for key, g in other.outlier.items():
            mine = self.outlier.setdefault(key, _group())
            for k in ("pos", "neg", "n"):
                mine[k] += g[k]
            mine["d"].merge(g["d"])
            mine["b"].merge(g["b"])
            for entry, (n, h) in g["marks"].items():
                m = mine["marks"].setdefault(entry, [0, _Signed()])
                m[0] += n
                m[1].merge(h)
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

    def coverage(self) -> dict:
        """As summary.json's "coverage" (cases taken in by add_case)."""
        return {
            "judged_cases": self.judged_cases,
            "shape_classes": {d: dict(c) for d, c in self.shapes.items()},
            "regimes": {d: dict(c) for d, c in self.regimes.items()},
            "problems": {d: dict(c) for d, c in self.problems.items()},
        }

    def profile_figures(self) -> dict:
        """As summary.json's "profiles"."""
        return {
            d: {who: sorted([b, v] for b, v in bins.items()) for who, bins in sorted(rows.items())}
            for d, rows in self.profiles.items()
        }

    def accuracy_outliers(self) -> list[dict]:
        """judge.accuracy.accuracy_outliers from the state: the same groups, counts and sign
        tests; the medians from the signed histograms."""
        from gradxval.judge.accuracy import ALPHA, MIN_CASES, MIN_SHIFT_U, sign_test

        out = []
        for (who, dtype, quantity), g in sorted(self.outlier.items()):
            pos, neg = g["pos"], g["neg"]
            if pos + neg < MIN_CASES:
                continue
            p = sign_test(pos, neg)
            shift, own = g["d"].median(), g["b"].median()
            away = abs(own) >= MIN_SHIFT_U and own * shift > 0
            if not (p < ALPHA and abs(shift) >= MIN_SHIFT_U and away):
                continue
            backend, method = who.split("/", 1)
            o = {"backend": backend, "method": method, "dtype": dtype, "quantity": quantity,
                 "cases": g["n"], "higher": pos, "lower": neg,
                 "median_shift_u": round(shift, 3), "p_value": float(f"{p:.3g}"),
                 "median_bias_u": round(own, 3),
                 "message": (f"{who} {quantity} in {dtype} is systematically "
                             f"{'above' if shift > 0 else 'below'} the honest closed forms: "
                             f"{max(pos, neg)} of {pos + neg} cases on one side, median shift "
                             f"{shift:+.3g} u, its own mean relative error {own:+.3g} u "
                             f"(sign test p = {p:.2g} < {ALPHA:g})")}  # fmt: skip
            best = max(g["marks"].items(), key=lambda kv: kv[1][0], default=None)
            if best and best[1][0] >= 0.9 * g["n"] and abs(best[1][1].median()) < MIN_SHIFT_U:
                o["known"] = best[0]
                o["message"] += f" -- known: {best[0]}"
            out.append(o)
        return out

    def summary(self, registry=None, diagnoses=None) -> dict:
        """Every figure of summary.json that comes from the records (not "run",
        "environment", "incomplete" or "conventions", which the campaign adds)."""
        from gradxval.judge.compare import VERDICTS
        from gradxval.output.findings import findings
        from gradxval.output.summary import LISTED_KEYS

        return {
            "records": self.records,
            "counts": {v: self.counts.get(v, 0) for v in VERDICTS},
            "unexplained": self.counts.get("disagree", 0),
            "findings": findings(self.flagged, registry, diagnoses),
            "disagreements": [{k: r.get(k) for k in LISTED_KEYS} for r in self.listed],
            "disagreements_not_listed": self.known_more,
            "errors": [
                {k: r.get(k) for k in ERROR_KEYS} for r in self.flagged if r["verdict"] == "error"
            ],  # fmt: skip
            "determinism": dict(self.determinism),
            "matrix": self.matrix_counts(),
            "known_seen": dict(self.known.most_common()),
            "profiles": self.profile_figures(),
            "accuracy_outliers": self.accuracy_outliers(),
            "accuracy": self.distributions(),
            "coverage": self.coverage(),
        }


def _group() -> dict:
    """One accuracy-outlier group's state."""
    return {"pos": 0, "neg": 0, "n": 0, "d": _Signed(), "b": _Signed(), "marks": {}}


ERROR_KEYS = ("case_id", "backend", "method", "quantity", "message", "reproduce")


class _Signed:
    """A histogram of signed values (negative and positive magnitudes apart): its median."""

    def __init__(self):
        self.neg = np.zeros(NBINS + 3, dtype=np.int64)
        self.pos = np.zeros(NBINS + 3, dtype=np.int64)

    def add(self, v: float) -> None:
        side = self.neg if v < 0 else self.pos
        side[_bins(np.array([abs(v)]))[0]] += 1

    def merge(self, other: _Signed) -> None:
        self.neg += other.neg
        self.pos += other.pos

    def median(self) -> float:
        """numpy's median (the mean of the two middle values for an even count), each order
        statistic a bin's geometric centre."""
        centres = 10 ** (LOW + (np.arange(NBINS) + 0.5) / BINS_PER_DECADE)
        values = np.concatenate([[-math.inf], -centres[::-1], [-(10.0**LOW)], [0.0],
                                 [10.0**LOW], centres, [math.inf]])  # fmt: skip
        counts = np.concatenate([[self.neg[_INF]], self.neg[:NBINS][::-1], [self.neg[_BELOW]],
                                 [self.neg[_ZERO] + self.pos[_ZERO]], [self.pos[_BELOW]],
                                 self.pos[:NBINS], [self.pos[_INF]]])  # fmt: skip
        n = int(counts.sum())
        if not n:
            return 0.0
        cum = np.cumsum(counts)
        lo, hi = (n - 1) // 2, n // 2
        a = values[int(np.searchsorted(cum, lo + 1))]
        b = values[int(np.searchsorted(cum, hi + 1))]
        return float((a + b) / 2)


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
