"""Compare two runs: what a PR, an upgrade or a new plug-in changed (``gradxval diff``).

Results are matched by case id x backend x method x quantity, on the cases both runs judged
(runs of other case sets compare on their intersection).  Categories:

- **new**: a result that is `disagree` or `error` in NEW and was not in BASE, including results
  on cases BASE never judged, and accuracy outliers NEW has and BASE had not;
- **fixed**: the reverse;
- **label changes**: results whose known label (classification) changed, neither new nor fixed;
- **regressions**: results that agree in both runs but whose error_u grew by more than
  ``factor`` (and is above 1 u in NEW: growth among exact results is noise);
- **versions**: every backend whose framework version differs;
- **findings** (summary.json's): new ones, ones gone, and ones with more results than before,
  matched by backend x method x quantity x signature.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["RunDiff", "diff_runs", "diff_records", "REGRESSION_FACTOR"]

REGRESSION_FACTOR = 4.0
_BAD = ("disagree", "error")
_OK = ("agree", "overflow")


@dataclass
class RunDiff:
    base: str
    new: str
    compared_cases: int = 0
    only_in_base: int = 0
    only_in_new: int = 0
    new_problems: list[dict] = field(default_factory=list)
    fixed: list[dict] = field(default_factory=list)
    label_changes: list[dict] = field(default_factory=list)
    regressions: list[dict] = field(default_factory=list)
    new_outliers: list[dict] = field(default_factory=list)
    fixed_outliers: list[dict] = field(default_factory=list)
    # findings (summary.json), matched by backend x method x quantity x signature
    new_findings: list[dict] = field(default_factory=list)
    gone_findings: list[dict] = field(default_factory=list)
    grown_findings: list[dict] = field(default_factory=list)  # more results than before
    versions: dict = field(default_factory=dict)  # backend -> [base, new]
    added: dict = field(default_factory=dict)  # backend/method -> verdict counts, NEW only
    removed: dict = field(default_factory=dict)  # backend/method -> verdict counts, BASE only
    factor: float = REGRESSION_FACTOR

    @property
    def has_new(self) -> bool:
        return bool(self.new_problems or self.new_outliers)

    def to_json(self) -> dict:
        return asdict(self) | {"has_new": self.has_new}

    def text(self) -> str:
        return "\n".join(self._lines(md=False)) + "\n"

    def markdown(self) -> str:
        return "\n".join(self._lines(md=True)) + "\n"

    def _lines(self, md: bool) -> list[str]:
        h = "### " if md else ""
        code = (lambda s: f"`{s}`") if md else (lambda s: s)
        out = [
            f"{'## ' if md else ''}gradxval diff: {code(self.base)} -> {code(self.new)}",
            "",
            f"{self.compared_cases} cases compared; {self.only_in_base} only in the base and "
            f"{self.only_in_new} only in the new run (not comparable).",
            "",
        ]
        if self.versions:
            out.append(f"{h}Version changes")
            out += [f"- {b}: {v[0]} -> {v[1]}" for b, v in self.versions.items()]
            out.append("")
        for title, rows in (
            ("Results only in the new run", self.added),
            ("Results only in the base run", self.removed),
        ):
            if rows:
                out.append(f"{h}{title} (on the cases compared)")
                out += [
                    f"- {who}: " + ", ".join(f"{k} {n}" for k, n in sorted(c.items()))
                    for who, c in rows.items()
                ]
                out.append("")
        sections = [
            ("New findings", self.new_findings, _finding),
            ("Findings that grew", self.grown_findings, _finding),
            ("Findings gone", self.gone_findings, _finding),
            ("New disagreements and errors", self.new_problems, _problem),
            ("New accuracy outliers", self.new_outliers, lambda o: o["message"]),
            ("Fixed", self.fixed, _problem),
            ("Accuracy outliers gone", self.fixed_outliers, lambda o: o["message"]),
            ("Label changes", self.label_changes, _label),
            (f"Regressions (error_u grew more than {self.factor:g}x)", self.regressions, _regr),
        ]
        for title, items, fmt in sections:
            out.append(f"{h}{title} ({len(items)})")
            out += [f"- {fmt(x)}" for x in items[:100]]
            if len(items) > 100:
                out.append(f"- ... and {len(items) - 100} more (see the JSON)")
            out.append("")
        out.append("Something is new: exit 1." if self.has_new else "Nothing new: exit 0.")
        return out


def _who(r: dict) -> str:
    return f"{r['backend']}/{r['method']} {r['quantity']} on {r['case_id']}"


def _problem(x: dict) -> str:
    return f"{_who(x)}: {x['before']} -> {x['after']}" + (
        f" ({x['message']})" if x.get("message") else ""
    )


def _finding(f: dict) -> str:
    grew = f" (was {f['before']})" if "before" in f else ""
    return (
        f"{f['backend']}/{f['method']} {f['quantity']}: {f['signature']}, {f['count']} "
        f"result(s){grew} in {', '.join(f['dtypes'])}; smallest case {f['smallest_case']}"
    )


def _label(x: dict) -> str:
    return f"{_who(x)}: {x['before']} -> {x['after']}"


def _regr(x: dict) -> str:
    return f"{_who(x)}: error {x['before']} u -> {x['after']} u"


def _key(r: dict) -> tuple:
    return (r["case_id"], r["backend"], r["method"], r["quantity"])


def _err(r: dict) -> float:
    e = r.get("error_u")
    return float("inf") if e == "inf" else float(e or 0.0)


def _state(r: dict | None) -> str:
    if r is None:
        return "absent"
    return f"known {r['classification']}" if r["verdict"] == "known" else r["verdict"]


def diff_records(
    base: list[dict],
    new: list[dict],
    *,
    base_summary: dict | None = None,
    new_summary: dict | None = None,
    names: tuple[str, str] = ("BASE", "NEW"),
    factor: float = REGRESSION_FACTOR,
    cases: tuple[set, set] | None = None,
) -> RunDiff:
    """Diff two lists of verdict records (and, when given, their summaries).  ``cases``: the
    case ids each run judged, where the records are only those that can differ (a store's
    diff, ``_candidates``)."""
    d = RunDiff(names[0], names[1], factor=factor)
    if cases is None:
        cases = {r["case_id"] for r in base}, {r["case_id"] for r in new}
    cb, cn = cases
    common = cb & cn
    d.compared_cases, d.only_in_base, d.only_in_new = len(common), len(cb - cn), len(cn - cb)
    b = {_key(r): r for r in base if r["case_id"] in common}
    n = {_key(r): r for r in new if r["case_id"] in common}
    # a disagreement on a case the base never judged is new: nothing excuses it
    for r in new:
        if r["case_id"] not in common and r["verdict"] in _BAD:
            d.new_problems.append(
                {
                    "case_id": r["case_id"],
                    "backend": r["backend"],
                    "method": r["method"],
                    "quantity": r["quantity"],
                    "before": "not in the base run",
                    "after": _state(r),
                    "message": r.get("message", ""),
                }
            )
    for key in sorted(set(b) | set(n)):
        rb, rn = b.get(key), n.get(key)
        bad_b = rb is not None and rb["verdict"] in _BAD
        bad_n = rn is not None and rn["verdict"] in _BAD
        item = {
            "case_id": key[0],
            "backend": key[1],
            "method": key[2],
            "quantity": key[3],
            "before": _state(rb),
            "after": _state(rn),
        }
        if rb is None or rn is None:
            side = d.added if rb is None else d.removed
            cell = side.setdefault(f"{key[1]}/{key[2]}", {})
            v = (rn or rb)["verdict"]
            cell[v] = cell.get(v, 0) + 1
        if bad_n and not bad_b:
            d.new_problems.append(item | {"message": rn.get("message", "")})
        elif bad_b and not bad_n:
            d.fixed.append(item)
        elif (
            rb is not None
            and rn is not None
            and rb.get("classification") != rn.get("classification")
        ):
            d.label_changes.append(item)
        elif (
            rb is not None
            and rn is not None
            and rb["verdict"] in _OK
            and rn["verdict"] in _OK
            and _err(rn) > 1.0
            and _err(rn) > factor * max(_err(rb), 1e-3)
        ):
            d.regressions.append(item | {"before": rb.get("error_u"), "after": rn.get("error_u")})
    if base_summary is not None and new_summary is not None:
        d.versions = {
            k: [v, new_summary["environment"]["backends"].get(k)]
            for k, v in base_summary["environment"]["backends"].items()
            if k in new_summary["environment"]["backends"]
            and new_summary["environment"]["backends"][k] != v
        }

        def groups(s):
            return {
                (o["backend"], o["method"], o["dtype"], o["quantity"]): o
                for o in s.get("accuracy_outliers", [])
                if not o.get("known")
            }

        gb, gn = groups(base_summary), groups(new_summary)
        d.new_outliers = [gn[k] for k in sorted(set(gn) - set(gb))]
        d.fixed_outliers = [gb[k] for k in sorted(set(gb) - set(gn))]
        _diff_findings(d, base_summary.get("findings", []), new_summary.get("findings", []))
    return d


def _diff_findings(d: RunDiff, base: list[dict], new: list[dict]) -> None:
    from gradxval.output.findings import finding_key

    def brief(f: dict) -> dict:
        return {k: f.get(k) for k in ("backend", "method", "quantity", "signature", "count",
                                      "dtypes", "smallest_case")}  # fmt: skip

    fb = {finding_key(f): f for f in base}
    fn = {finding_key(f): f for f in new}
    d.new_findings = [brief(fn[k]) for k in sorted(set(fn) - set(fb))]
    d.gone_findings = [brief(fb[k]) for k in sorted(set(fb) - set(fn))]
    d.grown_findings = [
        brief(fn[k]) | {"before": fb[k]["count"]}
        for k in sorted(set(fn) & set(fb))
        if fn[k]["count"] > fb[k]["count"]
    ]


def _load(path: Path) -> tuple[list[dict], dict]:
    from gradxval.errors import UsageError
    from gradxval.output.rundir import RunDir

    if not path.is_dir():
        raise UsageError(f"diff: {path} is not a run directory")
    records, _ = RunDir(path).completed()
    summary_path = path / "summary.json"
    if not records or not summary_path.exists():
        raise UsageError(f"diff: {path} holds no results.jsonl and summary.json of a run")
    return records, json.loads(summary_path.read_text(encoding="utf-8"))


def diff_runs(base: str | Path, new: str | Path, factor: float = REGRESSION_FACTOR) -> RunDiff:
    """Diff two run directories.  Where either keeps a columnar store, the records are matched
    in Arrow, one dtype at a time, and only those that can differ become dicts: memory follows
    one dtype's key columns, not the campaign."""
    from gradxval.output.rundir import RunDir

    base, new = Path(base), Path(new)
    names = (str(base), str(new))
    if "parquet" not in (RunDir(base).results, RunDir(new).results):
        rb, sb = _load(base)
        rn, sn = _load(new)
        return diff_records(rb, rn, base_summary=sb, new_summary=sn, names=names, factor=factor)
    from gradxval.errors import UsageError

    summaries = []
    for path in (base, new):
        if not (path / "summary.json").exists():
            raise UsageError(f"diff: {path} holds no summary.json of a run")
        summaries.append(json.loads((path / "summary.json").read_text(encoding="utf-8")))
    rb, rn, cases = _candidates(RunDir(base), RunDir(new), factor, summaries)
    return diff_records(rb, rn, base_summary=summaries[0], new_summary=summaries[1],
                        names=names, factor=factor, cases=cases)  # fmt: skip


_COLUMNS = ("case_id", "backend", "method", "quantity", "verdict", "classification", "error_u",
            "message")  # fmt: skip
_KEY = ["case_id", "backend", "method", "quantity"]


def _table(rd, dtype: str, cache: dict):
    """One dtype's records of a run as an Arrow table of _COLUMNS (error_u a float); a
    results.jsonl is read once (``cache``) and filtered per dtype."""
    import pyarrow.compute as pc
    from gradxval.output.store import iter_dtype, table_of

    if rd.results == "parquet":
        return iter_dtype(rd.path, dtype, list(_COLUMNS))
    if rd.path not in cache:
        cache[rd.path] = table_of(list(rd.records())).select([*_COLUMNS, "dtype"])
    t = cache[rd.path]
    return t.filter(pc.equal(t["dtype"], dtype)).select(list(_COLUMNS))


def _candidates(rb, rn, factor: float, summaries) -> tuple[list, list, tuple[set, set]]:
    """The records of two runs that can make a difference in a diff (one side missing, either
    bad, other labels, or a regression), and each run's case ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cb, cn = rb.done(), rn.done()
    common = pa.array(sorted(cb & cn))
    dtypes = sorted({d for s in summaries for row in s["matrix"].values() for d in row})
    base_out, new_out, cache = [], [], {}
    for dtype in dtypes:
        tb, tn = _table(rb, dtype, cache), _table(rn, dtype, cache)
        # a bad result on a case the base never judged is new whatever else
        only_new = tn.filter(pc.and_(pc.invert(pc.is_in(tn["case_id"], common)),
                                     pc.is_in(tn["verdict"], pa.array(_BAD))))  # fmt: skip
        new_out += only_new.to_pylist()
        tb = tb.filter(pc.is_in(tb["case_id"], common))
        tn = tn.filter(pc.is_in(tn["case_id"], common))
        j = tb.join(tn, _KEY, join_type="full outer", left_suffix="_b", right_suffix="_n",
                    coalesce_keys=True)  # fmt: skip
        vb, vn = j["verdict_b"], j["verdict_n"]
        bad = pa.array(_BAD)
        lb, ln = (pc.fill_null(j[f"classification{s}"], "") for s in ("_b", "_n"))
        labels = pc.fill_null(pc.not_equal(lb, ln), False)
        eb, en = pc.fill_null(j["error_u_b"], 0.0), pc.fill_null(j["error_u_n"], 0.0)
        floor = pc.multiply(pc.max_element_wise(eb, 1e-3), factor)
        grew = pc.and_(pc.greater(en, 1.0), pc.greater(en, floor))  # diff_records checks the rest
        mask = pc.or_(pc.or_(pc.is_null(vb), pc.is_null(vn)),
                      pc.or_(pc.or_(pc.is_in(vb, bad), pc.is_in(vn, bad)),
                             pc.or_(labels, grew)))  # fmt: skip
        for row in j.filter(pc.fill_null(mask, True)).to_pylist():
            for side, out in (("_b", base_out), ("_n", new_out)):
                if row["verdict" + side] is not None:
                    rec = {k: row[k] for k in _KEY}
                    rec.update({k: row[k + side] for k in _COLUMNS if k not in _KEY})
                    out.append(rec)
    return base_out, new_out, (cb, cn)
