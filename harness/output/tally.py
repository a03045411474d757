"""A summary that streams: mergeable state updated per case, never all the records.

A campaign of 10^6 cases makes ~2.7 x 10^7 verdict records; the summary needs far less than
them.  The state, per cell (backend/method x dtype, or a group of the accuracy-outlier test):

- exact counts: verdicts, the agreement matrix, the known entries seen, coverage (cases per
  dtype x shape class, regime and problem), determinism, what every backend, method and dtype
  asked for judged (``incomplete``);
- values (error_u, error / tolerance, the outlier test's signed biases) in a
  ``gradxval.sketch.Sketch``: exact while a cell has at most EXACT of them (the default run's
  cells hold ~80), so every figure equals the one computed from the records; past that a log
  histogram, its quantiles within 1.8 %;
- some records themselves: the flagged ones (disagree, error: findings and reproducers need
  them, and a healthy campaign has few); the known ones up to KNOWN_KEPT (summary.json's
  "disagreements"); the WORST_KEPT worst judged ones (report.md's "Worst results"); and the
  smallest case of each known entry x backend x method (its standalone reproducer).

Memory grows with the number of cells and flagged records, not with the number of records.
Two tallies merge by adding (shards, Dask workers, store parts): ``merge``.  ``to_state`` /
``from_state`` write and read it as JSON (each store part carries the tally of its cases).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter

from gradxval.sketch import Sketch

__all__ = ["Tally", "KNOWN_KEPT", "group_cases", "tally_of"]

KNOWN_KEPT = (
    1_000  # known results listed in "disagreements" (and kept per store part); the rest counted
)
WORST_KEPT = 200  # judged records kept for report.md's ten worst rows (several per row)
JUDGED = ("agree", "overflow", "disagree", "known")
FLAGGED = ("disagree", "error")
_RANK = {"disagree": 0, "known": 1}  # report.md's worst results: unexplained first


def _worst_key(r: dict) -> tuple:
    """Worst first (a min-heap keeps the best on top): unexplained, then by error/tolerance."""
    return (_RANK.get(r["verdict"], 2), -(r["error_u"] / r["tolerance_u"]), r["case_id"],
            r["backend"], r["method"], r["quantity"])  # fmt: skip


def _known_key(r: dict, size: tuple) -> tuple:
    """Which known results are listed: those of the smallest cases (``size``: its case's
    model.cases.size_order), in a fixed order."""
    return (size, r["case_id"], r["backend"], r["method"], r["quantity"])


def group_cases(records) -> list[list[dict]]:
    """Records grouped by case, cases in order of first appearance (case_done lines dropped)."""
    by: dict[str, list[dict]] = {}
    for r in records:
        if "case_done" not in r:
            by.setdefault(r["case_id"], []).append(r)
    return list(by.values())


def tally_of(records) -> Tally:
    """The streaming summary of a list of records (grouped by case)."""
    t = Tally()
    for rs in group_cases(records):
        t.add_case(rs)
    return t


class Tally:
    def __init__(self):
        self.records = 0
        self.counts: Counter = Counter()
        self.matrix: dict[tuple[str, str], Counter] = {}
        self.known: Counter = Counter()
        self.accuracy: dict[str, Sketch] = {}  # "backend/method dtype" -> error_u
        self.tightness: dict[str, dict[str, Sketch]] = {}  # dtype -> who -> error/tolerance
        self.flagged: list[dict] = []
        # the KNOWN_KEPT known results of the smallest cases (_known_key): which are kept does
        # not depend on the order records come in, so shards, workers and parts agree
        self._known: list[tuple] = []  # a heap of (_Reversed((key, arrival)), arrival, record)
        self.known_more = 0
        self._seq = 0  # records seen: the arrival order of the kept ones
        self._flag_seq: list[int] = []  # the arrival number of each flagged record
        self._index: dict[str, int] | None = None  # case id -> plan position (``order``)
        self._worst: list[tuple] = []  # a heap of (negated key, record)
        self._small: dict[tuple, tuple] = {}  # (entry, backend, method) -> (size, smallest)
        # (field, name) -> [judged, message, case id]: a reason why it judged nothing
        self.asked: dict[tuple[str, str], list] = {}
        self.hvp: dict[str, list] = {}  # backend -> [autodiff H v judged, results, message, id]
        self.judged_cases = 0
        self.shapes: dict[str, Counter] = {}
        self.regimes: dict[str, Counter] = {}
        self.problems: dict[str, Counter] = {}
        self.determinism = Counter(results=0, repeat_checked=0)
        self.profiles: dict[str, dict[str, dict]] = {}
        from gradxval.judge.accuracy import OutlierTest

        self.outlier = OutlierTest()  # the accuracy-outlier test's state

    # -- updates -------------------------------------------------------------------------------
    def add(self, r: dict) -> None:
        """One record: every figure but the per-case ones (``add_case``)."""
        if "case_done" in r:
            return
        self.records += 1
        self._seq += 1
        v = r["verdict"]
        self.counts[v] += 1
        who = f"{r['backend']}/{r['method']}"
        self.matrix.setdefault((who, r["dtype"]), Counter())[v] += 1
        judged = v in JUDGED
        cid, msg = r["case_id"], r.get("message")
        for field in ("backend", "method", "dtype"):
            seen = self.asked.get((field, r[field]))
            if seen is None:
                seen = self.asked[(field, r[field])] = [0, msg, cid]
            seen[0] += judged
            if cid < seen[2]:  # the message of the first case id: the same in every order
                seen[1:] = [msg, cid]
        if r["quantity"] == "hvp_x" and r["method"] != "closed_form":
            h = self.hvp.get(r["backend"])
            if h is None:
                h = self.hvp[r["backend"]] = [0, 0, msg, cid]
            h[0] += judged
            h[1] += 1
            if cid < h[3]:
                h[2:] = [msg, cid]
        if v == "known":
            from gradxval.model.cases import size_order

            self.known.update(p for p in (r.get("classification") or "").split("+") if p)
            size = size_order(cid)  # parsed once, for both selections
            self._keep_known(r, self._seq, _known_key(r, size))
            self._keep_small(r, size)
        if v in FLAGGED:
            self.flagged.append(r)
            self._flag_seq.append(self._seq)
        e = r.get("error_u")
        if judged and e is not None:
            e = float(e)  # "inf" parses
            self.accuracy.setdefault(f"{who} {r['dtype']}", Sketch()).add(e)
            t = r.get("tolerance_u")
            if t:
                ratio = min(max(e / t, 1e-4), 1e6) if math.isfinite(e) else 1e6
                self.tightness.setdefault(r["dtype"], {}).setdefault(who, Sketch()).add(ratio)
                if math.isfinite(e):
                    self._keep_worst(r)

    def _keep_worst(self, r: dict, key: tuple | None = None) -> None:
        key = _worst_key(r) if key is None else key
        item = (_Reversed(key), r)
        if len(self._worst) < WORST_KEPT:
            heapq.heappush(self._worst, item)
        elif key < self._worst[0][0].key:
            heapq.heapreplace(self._worst, item)

    def _keep_known(self, r: dict, seq: int, known_key: tuple) -> None:
        key = (known_key, seq)
        if len(self._known) < KNOWN_KEPT:
            heapq.heappush(self._known, (_Reversed(key), seq, r))
        elif key < self._known[0][0].key:
            heapq.heapreplace(self._known, (_Reversed(key), seq, r))
            self.known_more += 1
        else:
            self.known_more += 1

    def _order(self, case_id: str, seq: int) -> tuple:
        """Plan order where known (``order``), else the order records came in."""
        if self._index is not None:
            return (self._index.get(case_id, len(self._index)), seq)
        return (0, seq)

    def _sorted(self, items) -> list[dict]:
        items = sorted(items, key=lambda it: self._order(it[1]["case_id"], it[0]))
        return [r for _, r in items]

    @property
    def listed(self) -> list[dict]:
        """summary.json's "disagreements": every disagree result, and the known ones kept."""
        rs = [(q, r) for q, r in zip(self._flag_seq, self.flagged, strict=True)
              if r["verdict"] == "disagree"]  # fmt: skip
        return self._sorted(rs + [(seq, r) for _, seq, r in self._known])

    def _keep_small(self, r: dict, size: tuple) -> None:
        for entry in (r.get("classification") or "").split("+"):
            key = (entry, r["backend"], r["method"])
            have = self._small.get(key)
            if have is None or size < have[0]:
                self._small[key] = (size, r)

    @property
    def known_small(self) -> dict[tuple, dict]:
        """(entry, backend, method) -> the known result of the smallest case."""
        return {k: r for k, (_, r) in self._small.items()}

    def add_case(self, records: list[dict]) -> None:
        """One case's records together: everything add() takes, and the per-case figures."""
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
        self.outlier.add_case(records)

    def order(self, index: dict[str, int]) -> None:
        """Put the kept records in plan order (``index``: case id -> position), each case's
        own records in the order they came: a campaign's reports do not depend on which worker
        finished first."""

        self._index = index
        pairs = sorted(zip(self._flag_seq, self.flagged, strict=True),
                       key=lambda it: self._order(it[1]["case_id"], it[0]))  # fmt: skip
        self._flag_seq = [q for q, _ in pairs]
        self.flagged = [r for _, r in pairs]

    def merge(self, other: Tally) -> Tally:
        self.records += other.records
        self.counts.update(other.counts)
        for k, c in other.matrix.items():
            self.matrix.setdefault(k, Counter()).update(c)
        self.known.update(other.known)
        for k, s in other.accuracy.items():
            self.accuracy.setdefault(k, Sketch()).merge(s)
        for d, rows in other.tightness.items():
            for who, s in rows.items():
                self.tightness.setdefault(d, {}).setdefault(who, Sketch()).merge(s)
        base = self._seq  # the other's records come after this one's
        self.flagged.extend(other.flagged)
        self._flag_seq.extend(base + q for q in other._flag_seq)
        for rev, seq, r in other._known:  # its keys as they are: parsing ids costs
            self._keep_known(r, base + seq, rev.key[0])
        self.known_more += other.known_more
        self._seq += other._seq
        for rev, r in other._worst:  # keys kept: most are not worse than what is here
            if len(self._worst) < WORST_KEPT or rev.key < self._worst[0][0].key:
                self._keep_worst(r, rev.key)
        for size, r in other._small.values():
            self._keep_small(r, size)
        for k, (n, msg, cid) in other.asked.items():
            mine = self.asked.setdefault(k, [0, msg, cid])
            mine[0] += n
            if cid < mine[2]:
                mine[1:] = [msg, cid]
        for k, (n, m, msg, cid) in other.hvp.items():
            mine = self.hvp.setdefault(k, [0, 0, msg, cid])
            mine[0] += n
            mine[1] += m
            if cid < mine[3]:
                mine[2:] = [msg, cid]
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
        self.outlier.merge(other.outlier)
        return self

    # -- saved state ---------------------------------------------------------------------------
    def to_state(self) -> dict:
        """JSON-able state; ``Tally.from_state`` reads it back (records shared by two lists
        are written once)."""
        pool: list[dict] = []
        where: dict[int, int] = {}

        def ref(r: dict) -> int:
            if id(r) not in where:
                where[id(r)] = len(pool)
                pool.append(r)
            return where[id(r)]

        return {
            "records": self.records,
            "counts": dict(self.counts),
            "matrix": [[w, d, dict(c)] for (w, d), c in self.matrix.items()],
            "known": dict(self.known),
            "accuracy": {k: s.to_state() for k, s in self.accuracy.items()},
            "tightness": {
                d: {w: s.to_state() for w, s in rows.items()} for d, rows in self.tightness.items()
            },  # fmt: skip
            "flagged": [[ref(r), q] for q, r in zip(self._flag_seq, self.flagged, strict=True)],
            "known_listed": [[ref(r), seq, rev.key[0]] for rev, seq, r in self._known],
            "known_more": self.known_more,
            "seq": self._seq,
            "worst": [ref(r) for _, r in self._worst],
            "known_small": [[ref(r), size] for size, r in self._small.values()],
            "asked": [[f, n, v] for (f, n), v in self.asked.items()],
            "hvp": self.hvp,
            "judged_cases": self.judged_cases,
            "shapes": self.shapes,
            "regimes": self.regimes,
            "problems": self.problems,
            "determinism": dict(self.determinism),
            "profiles": [
                [d, who, list(bins.items())]
                for d, rows in self.profiles.items()
                for who, bins in rows.items()
            ],  # fmt: skip
            "outlier": self.outlier.to_state(),
            "pool": pool,
        }

    @classmethod
    def from_state(cls, s: dict) -> Tally:
        from gradxval.judge.accuracy import OutlierTest

        t = cls()
        pool = s["pool"]
        t.records = s["records"]
        t.counts = Counter(s["counts"])
        t.matrix = {(w, d): Counter(c) for w, d, c in s["matrix"]}
        t.known = Counter(s["known"])
        t.accuracy = {k: Sketch.from_state(v) for k, v in s["accuracy"].items()}
        t.tightness = {d: {w: Sketch.from_state(v) for w, v in rows.items()}
                       for d, rows in s["tightness"].items()}  # fmt: skip
        for i, seq in s["flagged"]:
            t.flagged.append(pool[i])
            t._flag_seq.append(seq)
        for i, seq, (size, *rest) in s["known_listed"]:
            t._keep_known(pool[i], seq, (tuple(size), *rest))
        t.known_more = s["known_more"]
        t._seq = s["seq"]
        for i in s["worst"]:
            t._keep_worst(pool[i])
        for i, size in s["known_small"]:
            t._keep_small(pool[i], tuple(size))
        t.asked = {(f, n): list(v) for f, n, v in s["asked"]}
        t.hvp = {k: list(v) for k, v in s["hvp"].items()}
        t.judged_cases = s["judged_cases"]
        for name in ("shapes", "regimes", "problems"):
            setattr(t, name, {d: Counter(c) for d, c in s[name].items()})
        t.determinism = Counter(s["determinism"])
        for d, who, bins in s["profiles"]:
            t.profiles.setdefault(d, {})[who] = dict((b, v) for b, v in bins)
        t.outlier = OutlierTest.from_state(s["outlier"])
        return t

    # -- figures -------------------------------------------------------------------------------
    def matrix_counts(self) -> dict:
        """As summary.json's "matrix": {backend/method: {dtype: {verdict: count}}}."""
        from gradxval.dtypes import DTYPES
        from gradxval.judge.compare import VERDICTS

        def cell(c: Counter) -> dict:  # verdicts in VERDICTS order, whatever came first
            return {v: c[v] for v in (*VERDICTS, *sorted(set(c) - set(VERDICTS))) if v in c}

        rows = sorted({k[0] for k in self.matrix})
        cols = [d for d in DTYPES if any(k[1] == d for k in self.matrix)]
        return {r: {d: cell(self.matrix[(r, d)]) for d in cols if (r, d) in self.matrix}
                for r in rows}  # fmt: skip

    def distributions(self) -> dict:
        """As summary.json's "accuracy" (judge.accuracy.distribution_figures)."""
        from gradxval.judge.accuracy import distribution_figures

        return distribution_figures(self.accuracy)

    def worst(self) -> list[dict]:
        """The kept judged records, worst first (report.md's "Worst results")."""
        return [r for _, r in sorted(self._worst, key=lambda item: item[0].key)]

    def box_stats(self) -> dict[str, dict[str, dict]]:
        """{dtype: {who: {"q1", "med", "q3", "whislo", "whishi", "max"}}} of error/tolerance
        (report.html's tightness plot): 1st, 25th, 50th, 75th and 99th percentiles."""
        out: dict = {}
        for d, rows in self.tightness.items():
            for who, s in rows.items():
                qs = [s.quantile(q) for q in (0.01, 0.25, 0.5, 0.75, 0.99)]
                out.setdefault(d, {})[who] = {
                    "whislo": qs[0], "q1": qs[1], "med": qs[2], "q3": qs[3], "whishi": qs[4],
                    "max": s.top,
                }  # fmt: skip
        return out

    def coverage(self) -> dict:
        """As summary.json's "coverage" (cases taken in by add_case); keys in a fixed order,
        whichever shard or worker saw a dtype first."""
        from gradxval.model.cases import REGIMES

        return {
            "judged_cases": self.judged_cases,
            "shape_classes": {d: dict(c) for d, c in _by_dtype(self.shapes)},
            "regimes": {
                d: {r: c[r] for r in REGIMES if r in c} for d, c in _by_dtype(self.regimes)
            },  # fmt: skip
            "problems": {d: dict(sorted(c.items())) for d, c in _by_dtype(self.problems)},
        }

    def profile_figures(self) -> dict:
        """As summary.json's "profiles"."""
        return {
            d: {who: sorted([b, v] for b, v in bins.items()) for who, bins in sorted(rows.items())}
            for d, rows in _by_dtype(self.profiles)
        }

    def incomplete(self, run: dict) -> list[str]:
        """Why a run judged less than it was asked to judge; [] when it judged everything."""
        if not run.get("cases"):
            return ["nothing tested: the run had 0 cases"]
        out = []
        dropped = run.get("dropped_backends") or {}
        for name, why in dropped.items():
            out.append(f"backend {name} was asked for but did not run: {why}")
        if not sum(self.counts.get(v, 0) for v in JUDGED):
            why = ("every backend unavailable" if not self.records
                   else "every result unsupported or error")  # fmt: skip
            return [*out, f"nothing tested: no result was judged ({why})"]
        asked = run.get("asked") or {}
        for field, key in (("backends", "backend"), ("methods", "method"), ("dtypes", "dtype")):
            for name in asked.get(field, ()):
                if key == "backend" and name in dropped:
                    continue  # said above, with the reason
                judged, message, _ = self.asked.get((key, name), (0, None, None))
                if not judged:
                    reason = message if (key, name) in self.asked else "no results"
                    out.append(f"{key} {name} was asked for by name but judged nothing: {reason}")
        for name in asked.get("backends", ()):
            # a second-order run asks each named backend's autodiff for H v
            judged, results, message, _ = self.hvp.get(name, (0, 0, None, None))
            if results and not judged:
                out.append(
                    f"backend {name} was asked for by name but its second-order autodiff "
                    f"judged nothing: {message}"
                )
        return out

    def summary(self, registry=None, diagnoses=None) -> dict:
        """Every figure of summary.json that comes from the records (not "run",
        "environment", "incomplete" or "conventions", which the campaign adds)."""
        from gradxval.judge.compare import VERDICTS
        from gradxval.output.findings import findings

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
            "known_seen": dict(sorted(self.known.items(), key=lambda kv: (-kv[1], kv[0]))),
            "profiles": self.profile_figures(),
            "accuracy_outliers": self.outlier.outliers(),
            "accuracy": self.distributions(),
            "coverage": self.coverage(),
        }


def _by_dtype(cells: dict) -> list[tuple]:
    """(dtype, value) in DTYPES order."""
    from gradxval.dtypes import DTYPES

    return sorted(cells.items(), key=lambda kv: DTYPES.index(kv[0]) if kv[0] in DTYPES else 99)


class _Reversed:
    """Orders keys the other way round: the heap's top is the least bad record kept."""

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __lt__(self, other):
        return self.key > other.key


# what summary.json's "disagreements" holds of each disagree or known result
LISTED_KEYS = ("case_id", "backend", "method", "quantity", "dtype", "regime", "error_u",
               "tolerance_u", "classification", "reproduce", "message", "attribution",
               "shrunk_case", "standalone")  # fmt: skip
ERROR_KEYS = ("case_id", "backend", "method", "quantity", "message", "reproduce")
