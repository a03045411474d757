"""report.md: the agreement matrix, the worst cases, every disagreement with its reproducer."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from gradxval.dtypes import DTYPES

__all__ = ["write_markdown", "render_markdown", "summary_matrix"]


def summary_matrix(summary: dict) -> tuple[list[str], list[str], dict]:
    """(rows backend/method, dtype columns, {(row, dtype): Counter of verdicts}) from
    summary.json's "matrix"."""
    cells: dict = defaultdict(Counter)
    for row, by_dtype in summary["matrix"].items():
        for d, c in by_dtype.items():
            cells[(row, d)].update(c)
    rows = sorted(summary["matrix"])
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


def write_markdown(path: str | Path, tally, summary: dict, registry) -> None:
    """Write report.md for humans."""
    Path(path).write_text(render_markdown(tally, summary, registry), encoding="utf-8")


def render_markdown(tally, summary: dict, registry) -> str:
    """report.md's text, from the streaming summary (output.tally.Tally) and summary.json."""
    rows, cols, cells = summary_matrix(summary)
    env = summary["environment"]
    run = summary["run"]
    counts = summary["counts"]
    lines = ["# gradxval agreement report", ""]
    if run.get("interrupted"):
        lines += [
            f"**Interrupted**: {run.get('cases')} of {run.get('planned_cases')} cases judged; "
            "resume with `gradxval run --resume DIR`.",
            "",
        ]
    for why in summary.get("incomplete", []):
        lines += [f"**Incomplete**: {why}", ""]
    lines += [
        f"Cases: {run.get('cases')}, seed {run.get('seed')}, wall time {run.get('seconds')} s. "
        f"Verdicts: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".",
        "",
        "Backends: "
        + ", ".join(f"{k} {v}" for k, v in env["backends"].items())
        + f"; Python {env['python']} on {env['platform']}.",
        "",
        "Complex gradients are reported in one convention: "
        + summary["conventions"]["complex_gradient"]
        + ".",
        "",
        *_findings(summary),
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
    lines += _outliers(summary)
    lines += _worst(tally.worst())
    lines += _coverage(summary)
    unexplained = tally.flagged
    lines += ["", f"## Unexplained disagreements and errors ({len(unexplained)})", ""]
    if not unexplained:
        lines += ["None.", ""]
    for r in unexplained[:50]:
        lines += _card(r)
    if len(unexplained) > 50:
        lines += [f"... and {len(unexplained) - 50} more in results.jsonl.", ""]
    lines += ["", f"## Known disagreements ({counts.get('known', 0)})", ""]
    for part, n in summary["known_seen"].items():
        try:
            e = registry.get(part)
        except Exception:  # an entry gone from the registry since the run
            lines.append(f"- **{part}** ({n}): no longer in the registry")
            continue
        scope = "; ".join(sc.text() for sc in e.scopes)
        lines.append(
            f"- **{part}** ({n} results; {scope}): {e.title}. {e.reason} "
            + " ".join(f"<{u}>" for u in e.upstream)
        )
    lines.append("")
    lines += _accuracy(summary)
    return "\n".join(lines) + "\n"


def finding_lines(f: dict, md: bool = True) -> list[str]:
    """A finding in a few lines: who, what, how much, where, and how to reproduce it."""
    code = (lambda t: f"`{t}`") if md else (lambda t: t)
    worst = f["worst_over_tolerance"]
    worst = (
        "non-finite or of the wrong dtype" if worst in ("inf", None) else f"{worst:.3g} x tolerance"
    )
    out = [
        f"{f['id']} {f['backend']}/{f['method']} {f['quantity']}: {f['signature']}, "
        f"{f['count']} result(s) in {', '.join(f['dtypes'])} ({', '.join(f['regimes'])}); "
        f"worst {worst}"
    ]
    for d in f["diagnoses"]:
        if d["reproduces"] == d["of"]:
            out.append(f"  diagnosis: {d['text']}")
        else:
            out.append(f"  partly ({d['reproduces']} of {d['of']} results): {d['text']}")
    out += [
        f"  same signature as registered fault {s['id']} of {', '.join(s['libraries'])}"
        for s in f["same_as"]
    ]
    small = f"  smallest case {code(f['smallest_case'])}"
    if f["shrunk_case"]:
        small += f", shrunk to {code(f['shrunk_case'])}"
    out.append(small + f"; reproduce: {code(f['reproduce'])}")
    if f["standalone"]:
        out.append(f"  standalone reproducer: {code(f['standalone'])}")
    return out


def _findings(summary: dict) -> list[str]:
    found = summary.get("findings", [])
    lines = []
    conformance = summary["run"].get("conformance")
    if conformance is not None:  # check-backend
        lines += [f"## Conformance ({len(conformance)})", ""]
        lines += [f"- {p}" for p in conformance] or ["No problem."]
        lines.append("")
    lines += [f"## Findings ({len(found)})", ""]
    if not found:
        return lines + ["None: every flagged result is a registered fault.", ""]
    for f in found:
        first, *rest = finding_lines(f)
        lines += [f"- {first}", *(f"  {r.strip()}" for r in rest)]
    return lines + [""]


def _card(r: dict) -> list[str]:
    label = (r.get("extra") or {}).get("backend_name")
    who = f"{r['backend']} ({label})" if label else r["backend"]
    out = [
        f"### {r['verdict']}: {who}/{r['method']} {r['quantity']} on `{r['case_id']}`",
        "",
        r["message"] or "",
        "",
    ]
    if r.get("attribution"):
        out += [f"Attribution: {r['attribution']}", ""]
    out += [f"Reproduce: `{r['reproduce']}`", ""]
    if r.get("shrunk_case"):
        out += [f"Shrunk case: `{r['shrunk_case']}`", ""]
    if r.get("standalone"):
        out += [f"Standalone reproducer (numpy and the framework only): `{r['standalone']}`", ""]
    return out


def _worst(judged: list[dict]) -> list[str]:
    """Unexplained first, then by error over tolerance (the streaming summary keeps them in
    that order); one row per case x quantity x value."""
    rows: dict = {}
    for r in judged:
        key = (r["case_id"], r["quantity"], r["verdict"], r.get("actual"), r["error_u"])
        rows.setdefault(key, []).append(f"{r['backend']}/{r['method']}")
        if len(rows) >= 10:
            break
    out = [
        "",
        "## Worst results",
        "",
        "| case | quantity | verdict | backend/method | error (u) | tolerance (u) |",
        "|---|---|---|---|---|---|",
    ]
    tol = {(r["case_id"], r["quantity"]): r["tolerance_u"] for r in judged}
    for (cid, q, verdict, _, err), who in rows.items():
        out.append(
            f"| `{cid}` | {q} | {verdict} | {', '.join(who)} | {_fmt_u(err)} | "
            f"{_fmt_u(tol[(cid, q)])} |"
        )
    return out


def _outliers(summary: dict) -> list[str]:
    found = summary.get("accuracy_outliers", [])
    out = ["", f"## Accuracy outliers ({len(found)})", ""]
    if not found:
        return out + [
            "None: no backend x method x dtype x quantity is systematically less accurate than "
            "the honest closed forms on the same cases (sign test, see gradxval/accuracy.py).",
            "",
        ]
    return (
        out
        + [f"- {'known: ' if o.get('known') else ''}{o['message']}" for o in found]
        + [
            "",
            "A known one is reproduced by a registered systematic fault; it does not fail the run.",
            "",
        ]
    )


def _coverage(summary: dict) -> list[str]:
    cov = summary.get("coverage") or {}
    shapes = cov.get("shape_classes") or {}
    if not shapes:
        return []
    classes = list(next(iter(shapes.values())))
    out = [
        "",
        "## Coverage",
        "",
        "Judged cases per dtype and shape class:",
        "",
        "| dtype | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for d in DTYPES:
        if d in shapes:
            out.append(f"| {d} | " + " | ".join(str(shapes[d][c]) for c in classes) + " |")
    regimes = cov.get("regimes") or {}
    names = sorted({r for v in regimes.values() for r in v})
    out += ["", "Judged cases per dtype and regime:", ""]
    out += ["| dtype | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for d in DTYPES:
        if d in regimes:
            out.append(f"| {d} | " + " | ".join(str(regimes[d].get(r, 0)) for r in names) + " |")
    problems = cov.get("problems") or {}
    pnames = sorted({p for v in problems.values() for p in v})
    if len(pnames) > 1:
        out += ["", "Judged cases per dtype and problem:", ""]
        out += ["| dtype | " + " | ".join(pnames) + " |", "|---|" + "---|" * len(pnames)]
        for d in DTYPES:
            if d in problems:
                out.append(
                    f"| {d} | " + " | ".join(str(problems[d].get(p, 0)) for p in pnames) + " |"
                )
    return out


def _accuracy(summary: dict) -> list[str]:
    acc = summary.get("accuracy") or {}
    if not acc:
        return []
    out = [
        "## Error distribution",
        "",
        "error_u of every judged result, per backend/method and dtype.",
        "",
        "| backend/method dtype | results | median (u) | p99 (u) | max (u) |",
        "|---|---|---|---|---|",
    ]
    for key, d in acc.items():
        out.append(
            f"| {key} | {d['results']} | {_fmt_u(d['median_u'])} | {_fmt_u(d['p99_u'])} | "
            f"{_fmt_u(d['max_u'])} |"
        )
    return out + [""]
