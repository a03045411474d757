"""summary.json: counts, every disagreement, and the environment (schema gradxval.summary/1)."""

from __future__ import annotations

import platform
import sys
from collections import Counter

from ..compare import VERDICTS

__all__ = ["SCHEMA", "build_summary", "environment", "CONVENTIONS"]

SCHEMA = "gradxval.summary/1"

CONVENTIONS = {
    "complex_gradient": (
        "dL/dA = dL/dRe(A) + i dL/dIm(A) (torch's convention); jax.grad and autograd return "
        "its conjugate and were conjugated to it"
    ),
    "error_u": "worst |actual - reference| / (u * condition scale + eta * underflow weight)",
}


def environment(backend_infos) -> dict:
    """Python, platform, gradxval and each backend's framework version and precision flags."""
    from .. import __version__

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "gradxval": __version__,
        "backends": {b.name: b.version for b in backend_infos},
        "flags": {b.name: b.flags for b in backend_infos},
    }


def build_summary(records: list[dict], env: dict, run: dict) -> dict:
    """Summarise verdict records (dicts as in results.jsonl)."""
    counts = Counter(r["verdict"] for r in records)
    disagreements = [
        {
            k: r.get(k)
            for k in (
                "case_id",
                "backend",
                "method",
                "quantity",
                "dtype",
                "regime",
                "error_u",
                "tolerance_u",
                "classification",
                "reproduce",
                "message",
                "attribution",
                "shrunk_case",
                "standalone",
            )
        }
        for r in records
        if r["verdict"] in ("disagree", "known")
    ]
    return {
        "schema": SCHEMA,
        "counts": {v: counts.get(v, 0) for v in VERDICTS},
        "unexplained": counts.get("disagree", 0),
        "disagreements": disagreements,
        "errors": [
            {
                k: r.get(k)
                for k in ("case_id", "backend", "method", "quantity", "message", "reproduce")
            }
            for r in records
            if r["verdict"] == "error"
        ],
        "run": run,
        "conventions": CONVENTIONS,
        "environment": env,
    }
