"""summary.json: counts, every disagreement, and the environment (schema gradxval.summary/1)."""

from __future__ import annotations

import platform
import sys
from collections import Counter

from gradxval.judge.compare import VERDICTS

__all__ = [
    "SCHEMA",
    "EXIT_CODES",
    "build_summary",
    "environment",
    "coverage",
    "run_status",
    "CONVENTIONS",
]

SCHEMA = "gradxval.summary/2"

# the exit status of every command; documented in --help and README
EXIT_CODES = {
    0: "every requested backend, method and dtype was judged and nothing is unexplained",
    1: "a wrong gradient: an unexplained disagreement, an error verdict or an accuracy outlier "
    "(with --baseline, and for diff: something new)",
    2: "usage: a bad option or argument",
    3: "gradxval itself failed (the traceback is in a log file whose path is printed)",
    4: "incomplete: nothing was judged, or a backend, method or dtype asked for was not",
    130: "interrupted (SIGINT)",
    143: "terminated (SIGTERM)",
    141: "the output pipe was closed by its reader (as with `| head`)",
}
JUDGED = ("agree", "overflow", "disagree", "known")

CONVENTIONS = {
    "complex_gradient": (
        "dL/dA = dL/dRe(A) + i dL/dIm(A) (torch's convention); jax.grad and autograd return "
        "its conjugate and were conjugated to it"
    ),
    "error_u": "worst |actual - reference| / (u * condition scale + eta * underflow weight)",
}


def environment(backend_infos) -> dict:
    """Python, platform, gradxval and each backend's framework version and precision flags."""
    from gradxval.version import __version__

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "gradxval": __version__,
        "backends": {b.name: b.version for b in backend_infos},
        "flags": {b.name: b.flags for b in backend_infos},
    }


def coverage(records: list[dict]) -> dict:
    """What was judged: cases per dtype x shape class, dtype x regime and dtype x problem."""
    from gradxval.model.cases import SHAPE_CLASSES, Case, shape_classes

    judged = {r["case_id"] for r in records if r["verdict"] in JUDGED}
    shapes: dict = {}
    regimes: dict = {}
    problems: dict = {}
    for cid in sorted(judged):
        c = Case.from_id(cid)
        row = shapes.setdefault(c.dtype, dict.fromkeys(SHAPE_CLASSES, 0))
        for k in shape_classes(c):
            row[k] += 1
        regimes.setdefault(c.dtype, Counter())[c.regime] += 1
        problems.setdefault(c.dtype, Counter())[c.problem] += 1
    return {
        "judged_cases": len(judged),
        "shape_classes": shapes,
        "regimes": {d: dict(v) for d, v in regimes.items()},
        "problems": {d: dict(v) for d, v in problems.items()},
    }


def matrix_counts(records: list[dict]) -> dict:
    """{backend/method: {dtype: {verdict: count}}}: the agreement matrix, as numbers."""
    from gradxval.output.markdown import matrix

    rows, cols, cells = matrix(records)
    return {row: {d: dict(cells[(row, d)]) for d in cols if (row, d) in cells} for row in rows}


def known_seen(records: list[dict]) -> dict:
    """{entry id: results it explains}; a result explained by two entries counts for both."""
    seen: Counter = Counter()
    for r in records:
        if r["verdict"] == "known":
            for part in (r.get("classification") or "").split("+"):
                if part:
                    seen[part] += 1
    return dict(seen.most_common())


def profiles(records: list[dict]) -> dict:
    """{dtype: {backend/method: [[log10 |x|, worst relative error of grad_x], ...]}} over the
    saturated and extreme cases (compare.relerr_profile), worst over cases per bin."""
    out: dict = {}
    for r in records:
        prof = (r.get("extra") or {}).get("profile")
        if not prof:
            continue
        row = out.setdefault(r["dtype"], {}).setdefault(f"{r['backend']}/{r['method']}", {})
        for b, rel in prof:
            row[b] = max(row.get(b, 0.0), rel)
    return {
        d: {who: sorted([b, v] for b, v in bins.items()) for who, bins in sorted(rows.items())}
        for d, rows in out.items()
    }


def run_status(summary: dict) -> tuple[int, list[str]]:
    """The exit status of a finished run and the lines that say why (0, 1 or 4)."""
    counts, run = summary["counts"], summary["run"]
    outliers = summary.get("accuracy_outliers", [])
    wrong = counts["disagree"] + counts["error"]
    if not run.get("allow_accuracy_outliers"):
        wrong += sum(1 for o in outliers if not o.get("known") or run.get("strict"))
    if run.get("strict"):
        wrong += counts["known"]
    why = list(summary.get("incomplete", []))
    if wrong:
        return 1, why
    return (4, why) if why else (0, [])


def _incomplete(records: list[dict], run: dict) -> list[str]:
    """Why a run judged less than it was asked to judge; [] when it judged everything."""
    if not run.get("cases"):
        return ["nothing tested: the run had 0 cases"]
    judged = [r for r in records if r["verdict"] in JUDGED]
    out = []
    for name, why in (run.get("dropped_backends") or {}).items():
        out.append(f"backend {name} was asked for but did not run: {why}")
    if not judged:
        why = "every backend unavailable" if not records else "every result unsupported or error"
        return [*out, f"nothing tested: no result was judged ({why})"]
    asked = run.get("asked") or {}
    dropped = run.get("dropped_backends") or {}
    for field, key in (("backends", "backend"), ("methods", "method"), ("dtypes", "dtype")):
        for name in asked.get(field, ()):
            if key == "backend" and name in dropped:
                continue  # said above, with the reason
            if not any(r[key] == name for r in judged):
                seen = [r for r in records if r[key] == name]
                reason = seen[0]["message"] if seen else "no results"
                out.append(f"{key} {name} was asked for by name but judged nothing: {reason}")
    for name in asked.get("backends", ()):
        # a second-order run asks each named backend's autodiff for H v
        hvp = [r for r in records if r["backend"] == name and r["quantity"] == "hvp_x"]
        auto = [r for r in hvp if r["method"] != "closed_form"]
        if auto and not any(r["verdict"] in JUDGED for r in auto):
            out.append(
                f"backend {name} was asked for by name but its second-order autodiff judged "
                f"nothing: {auto[0]['message']}"
            )
    return out


# what summary.json's "disagreements" holds of each disagree or known result
LISTED_KEYS = ("case_id", "backend", "method", "quantity", "dtype", "regime", "error_u",
               "tolerance_u", "classification", "reproduce", "message", "attribution",
               "shrunk_case", "standalone")  # fmt: skip


def build_summary(records: list[dict], env: dict, run: dict) -> dict:
    """Summarise verdict records (dicts as in results.jsonl)."""
    from gradxval.judge.accuracy import accuracy_outliers, distributions

    counts = Counter(r["verdict"] for r in records)
    disagreements = [
        {k: r.get(k) for k in LISTED_KEYS} for r in records if r["verdict"] in ("disagree", "known")
    ]
    from gradxval.judge.evidence import DIAGNOSES
    from gradxval.judge.known import load_registry
    from gradxval.output.findings import findings

    return {
        "schema": SCHEMA,
        "counts": {v: counts.get(v, 0) for v in VERDICTS},
        "unexplained": counts.get("disagree", 0),
        "findings": findings(records, load_registry(), DIAGNOSES),
        "disagreements": disagreements,
        "errors": [
            {
                k: r.get(k)
                for k in ("case_id", "backend", "method", "quantity", "message", "reproduce")
            }
            for r in records
            if r["verdict"] == "error"
        ],
        "determinism": {
            "mode": run.get("check_determinism", "sampled"),
            "results": sum(1 for r in records if r["verdict"] in JUDGED),
            "repeat_checked": sum(
                1 for r in records if (r.get("extra") or {}).get("repeat_checked")
            ),
        },
        "matrix": matrix_counts(records),
        "known_seen": known_seen(records),
        "profiles": profiles(records),
        "accuracy_outliers": accuracy_outliers(records),
        "accuracy": distributions(records),
        "coverage": coverage(records),
        "incomplete": _incomplete(records, run),
        "run": run,
        "conventions": CONVENTIONS,
        "environment": env,
    }
