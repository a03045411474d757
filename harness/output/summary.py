"""summary.json: counts, every disagreement, and the environment (schema gradxval.summary/1)."""

from __future__ import annotations

import platform
import sys

__all__ = [
    "SCHEMA",
    "EXIT_CODES",
    "build_summary",
    "summarize",
    "environment",
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


def build_summary(records: list[dict], env: dict, run: dict) -> dict:
    """Summarise verdict records (dicts as in results.jsonl), through the streaming summary."""
    from gradxval.output.tally import tally_of

    return summarize(tally_of(records), env, run)


def summarize(tally, env: dict, run: dict, registry=None) -> dict:
    """summary.json from a streaming summary (output.tally.Tally), the run and environment."""
    from gradxval.judge.evidence import DIAGNOSES
    from gradxval.judge.known import load_registry

    s = tally.summary(registry if registry is not None else load_registry(), DIAGNOSES)
    return {
        "schema": SCHEMA,
        "counts": s["counts"],
        "unexplained": s["unexplained"],
        "findings": s["findings"],
        "disagreements": s["disagreements"],
        "disagreements_not_listed": s["disagreements_not_listed"],
        "errors": s["errors"],
        "determinism": {"mode": run.get("check_determinism", "sampled"), **s["determinism"]},
        "matrix": s["matrix"],
        "known_seen": s["known_seen"],
        "profiles": s["profiles"],
        "accuracy_outliers": s["accuracy_outliers"],
        "accuracy": s["accuracy"],
        "coverage": s["coverage"],
        "incomplete": tally.incomplete(run),
        "run": run,
        "conventions": CONVENTIONS,
        "environment": env,
    }
