"""report.md: the agreement matrix, the worst cases, every disagreement with its reproducer."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from ..dtypes import DTYPES

__all__ = ["write_markdown", "matrix"]


def matrix(records: list[dict]) -> tuple[list[str], list[str], dict]:
    """(rows backend/method, dtype columns, {(row, dtype): Counter of verdicts})."""
    cells: dict = defaultdict(Counter)
    for r in records:
        cells[(f"{r['backend']}/{r['method']}", r["dtype"])][r["verdict"]] += 1
    rows = sorted({k[0] for k in cells})
    cols = [d for d in DTYPES if any(k[1] == d for k in cells)]
    return rows, cols, cells


def cell_text(c: Counter) -> str:
    if not c:
        return ""
    if c.get("unsupported", 0) == sum(c.values()):
        return "unsupported"
    judged = sum(v for k, v in c.items() if k != "unsupported")
    ok = c.get("agree", 0) + c.get("overflow", 0)
    parts = [f"{ok}/{judged}"]
    for k in ("known", "disagree", "error"):
        if c.get(k):
            parts.append(f"{k} {c[k]}")
    return " ".join(parts)


def _fmt_u(x) -> str:
    return x if isinstance(x, str) else (f"{x:.3g}" if x is not None else "")


def write_markdown(path: str | Path, records: list[dict], summary: dict, registry) -> None:
    """Write report.md for humans."""
    rows, cols, cells = matrix(records)
    env = summary["environment"]
    lines = ["# gradxval agreement report", ""]
    run = summary["run"]
    lines += [
        f"Cases: {run.get('cases')}, seed {run.get('seed')}, wall time {run.get('seconds')} s. "
        f"Verdicts: " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()) + ".",
        "",
        "Backends: "
        + ", ".join(f"{k} {v}" for k, v in env["backends"].items())
        + f"; Python {env['python']} on {env['platform']}.",
        "",
        "Complex gradients are reported in one convention: "
        + summary["conventions"]["complex_gradient"]
        + ".",
        "",
        "## Agreement matrix",
        "",
        "Each cell: results that agree with the reference (or overflow with it) / results judged,"
        " then known, disagree and error counts.",
        "",
        "| backend/method | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(cell_text(cells[(row, c)]) for c in cols) + " |")
    judged = [r for r in records if isinstance(r.get("error_u"), (int, float))]
    worst = sorted(judged, key=lambda r: -(r["error_u"] / r["tolerance_u"]))[:10]
    lines += [
        "",
        "## Worst results",
        "",
        "| case | backend/method | quantity | verdict | error (u) | tolerance (u) |",
        "|---|---|---|---|---|---|",
    ]
    for r in worst:
        lines.append(
            f"| `{r['case_id']}` | {r['backend']}/{r['method']} | {r['quantity']} | "
            f"{r['verdict']} | {_fmt_u(r['error_u'])} | {_fmt_u(r['tolerance_u'])} |"
        )
    dis = [r for r in records if r["verdict"] in ("disagree", "known", "error")]
    lines += ["", f"## Disagreements and errors ({len(dis)})", ""]
    used = Counter(r["classification"] for r in dis if r.get("classification"))
    if used:
        lines += ["Known entries seen:", ""]
        for cid, n in used.most_common():
            for part in cid.split("+"):
                e = registry.get(part)
                lines.append(
                    f"- **{part}** ({n}): {e.title}. {e.reason} "
                    + " ".join(f"<{u}>" for u in e.upstream)
                )
        lines.append("")
    unexplained = [r for r in dis if r["verdict"] != "known"]
    shown = (
        unexplained + [r for r in dis if r["verdict"] == "known"][: max(0, 50 - len(unexplained))]
    )
    for r in shown:
        lines += [
            f"### {r['verdict']}: {r['backend']}/{r['method']} {r['quantity']} on `{r['case_id']}`",
            "",
            r["message"] or "",
            "",
        ]
        if r.get("attribution"):
            lines += [f"Attribution: {r['attribution']}", ""]
        lines += [f"Reproduce: `{r['reproduce']}`", ""]
        if r.get("shrunk_case"):
            lines += [f"Shrunk case: `{r['shrunk_case']}`", ""]
        if r.get("standalone"):
            lines += [
                f"Standalone reproducer (numpy and the framework only): `{r['standalone']}`",
                "",
            ]
    if len(shown) < len(dis):
        lines += [f"... and {len(dis) - len(shown)} more known disagreements in results.jsonl.", ""]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
