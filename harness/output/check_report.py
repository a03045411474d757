"""What ``gradxval check --out DIR`` writes besides results.jsonl: one list of writers.

summary.json (counts, per-cell outcomes, the worst failures), report.md and report.html (the
same, readable without tools; report.html lists every failure, grouped by function), and with
``--baseline`` diff.md (the failures that are new against the base check).
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
from gradxval.judge.verdict import FAILING, OUTCOMES
from gradxval.output.findings import exception_name

__all__ = [
    "summarize",
    "check_findings",
    "finding_line",
    "describe",
    "new_failures",
    "read_records",
    "write_reports",
    "WRITERS",
    "REPORT_FILES",
    "plain",
]

WORST = 20  # failures listed in summary.json and report.md; report.html lists them all


def plain(o):
    """JSON for numpy scalars (and anything else as its string)."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    return str(o)


def _failures(records) -> list[dict]:
    return [r for r in records if r["outcome"] in FAILING]


def summarize(records, ok: bool, seconds: float, extra: dict | None = None) -> dict:
    """The figures every report shows, from the records alone."""
    cells: dict = {}
    counts = Counter(r["outcome"] for r in records)
    for r in records:
        cells.setdefault(f"{r['backend']}/{r['method']}/{r['dtype']}", Counter())[r["outcome"]] += 1
    failures = _failures(records)
    worst = sorted(failures, key=lambda r: -(r.get("ulps") or 0))[:WORST]
    return {
        "ok": ok,
        "counts": {o: counts[o] for o in OUTCOMES if counts[o]},
        "cells": {k: dict(v) for k, v in sorted(cells.items())},
        "failures": len(failures),
        "findings": check_findings(records),
        "worst": worst,
        "seconds": round(seconds, 2),
        **(extra or {}),
    }


def _signature(r: dict) -> str:
    """What a failing record says is wrong: a wrong dtype or shape, an exception, a value."""
    note = r.get("note") or ""
    if r["outcome"] == "error":
        return "error: " + (exception_name(note) or note.split(":")[0] or "raised")
    for kind in ("dtype", "shape"):
        if note.startswith(f"{kind} "):
            return f"wrong {kind}"
    return "wrong value"


def _case_size(case_id: str) -> int:
    sizes = [int(v) for v in re.findall(r"[A-Za-z_]+(\d+)", case_id.split("-")[2])] or [0]
    return int(np.prod(sizes))


def check_findings(records) -> list[dict]:
    """Failing records grouped by function x backend x method x quantity x signature, the
    furthest past tolerance first: each with its count, dtypes, regimes, worst error, and the
    smallest case to reproduce it with."""
    groups: dict[tuple, list[dict]] = {}
    for r in _failures(records):
        key = (r["function"], r["backend"], r["method"], r["quantity"], _signature(r))
        groups.setdefault(key, []).append(r)
    out = []
    for (fn, backend, method, quantity, sig), rs in groups.items():
        ratios = [r.get("ratio") for r in rs if isinstance(r.get("ratio"), int | float)]
        small = min(rs, key=lambda r: (_case_size(r["case"]), r["case"]))
        out.append({"function": fn, "backend": backend, "method": method, "quantity": quantity,
                    "signature": sig, "count": len(rs),
                    "dtypes": sorted({r["dtype"] for r in rs}),
                    "regimes": sorted({r["regime"] for r in rs}),
                    "worst_ulps": max((r.get("ulps") or 0 for r in rs), default=0),
                    "worst_over_tolerance": max(ratios) if ratios else None,
                    "smallest_case": small["case"], "example": small})  # fmt: skip
    out.sort(key=lambda f: (-(f["worst_over_tolerance"] or float("inf")), -f["count"]))
    return out


def finding_line(f: dict, target: str = "TARGET") -> str:
    worst = f"{f['worst_ulps']:.3g} ulp" if f["signature"] == "wrong value" else f["signature"]
    return (
        f"{f['function']}: {f['backend']}/{f['method']} {f['quantity']}: {f['signature']}, "
        f"{f['count']} result(s) in {', '.join(f['dtypes'])} ({', '.join(f['regimes'])}); "
        f"worst {worst}  [repro: gradxval check {target} --case {f['smallest_case']} "
        f"--backends {f['backend']}]"
    )


def describe(r: dict, target: str = "TARGET") -> str:
    """One line per failing record: who, what, where, by how much, and how to reproduce."""
    where = f" at {tuple(r.get('index', ()))}" if r.get("index") else ""
    size = ""
    if r.get("ulps") is not None and r["outcome"] == "disagree" and "actual" in r:
        size = (
            f": actual {r['actual']:.6g} vs reference {r['expected']:.6g}{where}, "
            f"{r['ulps']:.3g} ulp, rel {r['rel']:.2e}, {r.get('bad', 1)} element(s)"
        )
    elif r.get("note"):
        size = f": {r['note']}"
    return (
        f"{r['backend']}/{r['method']} {r['quantity']} {r['outcome']} on {r['case']}{size}"
        f"  [repro: gradxval check {target} --case {r['case']} --backends {r['backend']}]"
    )


def _key(r: dict) -> tuple:
    return (r["case"], r["backend"], r["method"], r["quantity"])


def new_failures(records, base_records) -> list[dict]:
    """Failing records whose (case, backend, method, quantity) did not fail in the base."""
    failed_before = {_key(r) for r in _failures(base_records)}
    return [r for r in _failures(records) if _key(r) not in failed_before]


def read_records(path: Path) -> list[dict]:
    """results.jsonl's records; a last line cut short by a crash is left out."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _summary_json(out: Path, summary: dict, records, target: str) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=plain) + "\n")


def _markdown(out: Path, summary: dict, records, target: str) -> None:
    counts = ", ".join(f"{o} {n}" for o, n in summary["counts"].items()) or "nothing judged"
    lines = [f"# gradxval check {target}".rstrip(), "",
             f"{'OK' if summary['ok'] else 'FAILED'}: {counts}", ""]  # fmt: skip
    if "baseline" in summary:
        b = summary["baseline"]
        lines += [f"Against {b['dir']}: {b['new']} new failure(s) (diff.md).", ""]
    lines += ["| backend/method/dtype | " + " | ".join(OUTCOMES) + " |",
              "|---|" + "---|" * len(OUTCOMES)]  # fmt: skip
    for k, v in summary["cells"].items():
        lines.append(f"| {k} | " + " | ".join(str(v.get(o, "")) for o in OUTCOMES) + " |")
    if summary["findings"]:
        lines += ["", f"## Findings ({len(summary['findings'])})", ""]
        lines += [f"- {finding_line(f, target)}" for f in summary["findings"]]
    if summary["worst"]:
        lines += ["", "## Failures (worst first)", ""]
        lines += [f"- {describe(r, target)}" for r in summary["worst"]]
        rest = summary["failures"] - len(summary["worst"])
        if rest > 0:
            lines.append(f"- ... and {rest} more (report.html lists every one)")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


_COLOURS = {"agree": "#d9f2d9", "overflow": "#e6f0ff", "undefined": "#eeeeee", "kink": "#eeeeee",
            "known": "#fff2cc", "unsupported": "#f4f4f4", "disagree": "#f8cbcb",
            "error": "#f4b183"}  # fmt: skip


def _html(out: Path, summary: dict, records, target: str) -> None:
    e = html.escape
    counts = ", ".join(f"{o} {n}" for o, n in summary["counts"].items()) or "nothing judged"
    head = ["<th>backend/method/dtype</th>"] + [f"<th>{o}</th>" for o in OUTCOMES]
    rows = []
    for k, v in summary["cells"].items():
        worst = next((o for o in reversed(OUTCOMES) if v.get(o) and o in FAILING), None)
        style = f' style="background:{_COLOURS[worst]}"' if worst else ""
        anchor = f'<a href="#{e(k)}">{e(k)}</a>' if worst else e(k)
        rows.append(f"<tr{style}><td>{anchor}</td>"
                    + "".join(f"<td>{v.get(o, '')}</td>" for o in OUTCOMES) + "</tr>")  # fmt: skip
    by_cell: dict = {}
    for r in sorted(_failures(records), key=lambda r: -(r.get("ulps") or 0)):
        by_cell.setdefault(f"{r['backend']}/{r['method']}/{r['dtype']}", []).append(r)
    sections = []
    for cell, rs in by_cell.items():
        items = "".join(
            f'<li style="background:{_COLOURS[r["outcome"]]}">{e(describe(r, target))}</li>'
            for r in rs
        )
        sections.append(f'<details id="{e(cell)}" open><summary>{e(cell)}: {len(rs)} '
                        f"failure(s)</summary><ul>{items}</ul></details>")  # fmt: skip
    findings = "".join(f"<li>{e(finding_line(f, target))}</li>" for f in summary["findings"])
    findings = f"<ul>{findings}</ul>" if findings else "<p>none</p>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gradxval check {e(target)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}} td:first-child{{text-align:left}}
li{{margin:2px 0;padding:2px 4px;font-family:monospace;list-style:none}}</style></head>
<body><h1>gradxval check {e(target)}</h1>
<p><b>{"OK" if summary["ok"] else "FAILED"}</b>: {e(counts)} ({summary["seconds"]} s)</p>
<h2>Findings</h2>{findings}
<h2>Failures</h2>{"".join(sections) or "<p>none</p>"}
<h2>Outcomes per backend, method and dtype</h2>
<table><tr>{"".join(head)}</tr>{"".join(rows)}</table>
</body></html>
"""
    (out / "report.html").write_text(page, encoding="utf-8")


def _diff(out: Path, summary: dict, records, target: str) -> None:
    if "baseline" not in summary:
        (out / "diff.md").unlink(missing_ok=True)  # an earlier check's, against its baseline
        return
    b = summary["baseline"]
    lines = [f"# New failures against {b['dir']}", ""]
    lines += [f"- {describe(r, target)}" for r in b["new_records"]] or ["none"]
    (out / "diff.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# every file a check writes at its end, in order; results.jsonl is written as it goes
WRITERS = (
    ("summary.json", _summary_json),
    ("report.md", _markdown),
    ("report.html", _html),
    ("diff.md", _diff),
)


REPORT_FILES = tuple(name for name, _ in WRITERS)


def write_reports(out: Path, summary: dict, records, target: str) -> None:
    for _, writer in WRITERS:
        writer(out, summary, records, target)
