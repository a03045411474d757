"""Findings: flagged results grouped by what is wrong, for an author to act on.

A finding is one backend x method x quantity x signature, where the signature is what the
evidence says the wrong computation is: a diagnosis whose model reproduces every element of
each of its results (evidence.diagnose), a wrong dtype or shape, an error, or "unexplained".
Where several models fit, the one reproducing the most results of that backend x method x
quantity takes them, so that one fault is one finding.  A finding spans dtypes and regimes and
carries its count, worst and median error, the smallest case, a shrunk case and a standalone
reproducer where the follow-up wrote them, every diagnosis with the share of its results it
reproduces, and "same signature as" the registered faults of other libraries whose evidence is
a diagnosis reproducing all of them.

Ranked by severity: unexplained results and errors first (nothing says what is wrong), then
diagnosed ones; within each, by how far past the tolerance the worst result is, then by count.
"""

from __future__ import annotations

import math
import re
import statistics

from gradxval.model.cases import size_order

__all__ = ["findings", "finding_key", "exception_name", "KINDS"]

# the kinds of finding; report.html colours them apart
KINDS = ("unexplained", "error", "dtype", "shape", "diagnosed")


def _kind(r: dict) -> str | None:
    """The kind of a flagged record that no diagnosis decides: error, dtype, shape; or None."""
    message = r.get("message") or ""
    if r["verdict"] == "error":
        return "error"
    if re.search(r": dtype \w+, expected \w+", message):
        return "dtype"
    if re.search(r": shape .*, expected", message):
        return "shape"
    return None


def exception_name(text: str) -> str | None:
    """The exception a failure message names (ValueError, ...), or None."""
    m = re.search(r"\b([A-Z]\w*(?:Error|Exception|Exit|Interrupt))\b", text or "")
    return m.group(1) if m else None


def _error_signature(r: dict) -> str:
    return f"error: {exception_name(r.get('message')) or 'raised or timed out'}"


def _diagnoses(r: dict) -> list[str]:
    return list((r.get("extra") or {}).get("diagnosis") or [])


def _assign(rs: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """Split one backend x method x quantity's flagged records into (kind, signature, records):
    errors by exception; then, greedily, the diagnosis that reproduces the most records takes
    them (so one fault is one finding even where a second model fits some of its results);
    the rest are a wrong dtype, a wrong shape, or unexplained."""
    out: dict[tuple[str, str], list[dict]] = {}
    left = []
    for r in rs:
        if _kind(r) == "error":
            out.setdefault(("error", _error_signature(r)), []).append(r)
        else:
            left.append(r)
    while True:
        votes: dict[str, int] = {}
        for r in left:
            for d in _diagnoses(r):
                votes[d] = votes.get(d, 0) + 1
        if not votes:
            break
        best = max(votes, key=lambda d: (votes[d], d))
        taken = [r for r in left if best in _diagnoses(r)]
        left = [r for r in left if best not in _diagnoses(r)]
        kind = _kind(taken[0]) or "diagnosed"
        out.setdefault((kind, ("wrong dtype: " if kind == "dtype" else "") + best), []).extend(
            taken
        )
    for r in left:
        kind = _kind(r) or "unexplained"
        sig = {"dtype": "wrong dtype", "shape": "wrong shape"}.get(kind, "unexplained")
        out.setdefault((kind, sig), []).append(r)
    return [(k, sig, group) for (k, sig), group in out.items()]


def finding_key(f: dict) -> tuple:
    """What identifies a finding across runs (gradxval diff)."""
    return (f["backend"], f["method"], f["quantity"], f["signature"])


def _ratio(r: dict) -> float:
    e, t = r.get("error_u"), r.get("tolerance_u")
    if e in (None, "inf") or not t:
        return math.inf if e == "inf" or r["verdict"] != "disagree" else 0.0
    return float(e) / float(t)


def _same_as(diagnoses, backend: str, quantity: str, registry) -> list[dict]:
    """Registered faults of other libraries whose evidence is one of these diagnoses, for this
    quantity."""
    if registry is None or not diagnoses:
        return []
    out = []
    for e in registry.entries:
        owners = sorted({b for s in e.scopes for b in s.backends})
        if e.evidence in diagnoses and quantity in e.quantities and backend not in owners:
            out.append({"id": e.id, "libraries": owners, "title": e.title})
    return out


def findings(records: list[dict], registry=None, diagnoses_text: dict | None = None) -> list:
    """Group disagreements and errors into findings, most severe first."""
    cells: dict[tuple, list[dict]] = {}
    for r in records:
        if r["verdict"] in ("disagree", "error"):
            cells.setdefault((r["backend"], r["method"], r["quantity"]), []).append(r)
    out = []
    for (backend, method, quantity), flagged in cells.items():
        for kind, sig, rs in _assign(flagged):
            out.append(_finding(backend, method, quantity, kind, sig, rs, registry,
                                diagnoses_text))  # fmt: skip
    # nothing says what is wrong before a diagnosis does; then the furthest past tolerance
    out.sort(key=lambda f: (f["kind"] == "diagnosed", -_finite(f["worst_over_tolerance"]),
                            -f["count"], finding_key(f)))  # fmt: skip
    for i, f in enumerate(out, 1):
        f["id"] = f"F{i}"
        for k in ("worst_over_tolerance", "median_over_tolerance"):
            if f[k] is not None and not math.isfinite(f[k]):
                f[k] = "inf"  # as error_u is written: JSON has no infinity
    return out


def _finding(backend, method, quantity, kind, sig, rs, registry, diagnoses_text) -> dict:
    ratios = [_ratio(r) for r in rs]
    finite = [x for x in ratios if math.isfinite(x)]
    by_size = sorted(rs, key=lambda r: size_order(r["case_id"]))
    worst = rs[max(range(len(rs)), key=lambda i: ratios[i])]
    shrunk = {r["shrunk_case"] for r in rs if r.get("shrunk_case")}
    shrunk = sorted((c for c in shrunk if not c.startswith("not shrunk")), key=size_order)
    scripts = [r for r in by_size if r.get("standalone")]
    # each diagnosis with the share of the finding's results its model reproduces, most first;
    # only those reproducing every result say what the finding is (and whom it resembles)
    shares: dict[str, int] = {}
    for r in rs:
        for d in _diagnoses(r):
            shares[d] = shares.get(d, 0) + 1
    ranked = sorted(shares, key=lambda d: (-shares[d], d))
    complete = [d for d in ranked if shares[d] == len(rs)]
    return {
        "backend": backend,
        "method": method,
        "quantity": quantity,
        "signature": sig,
        "kind": kind,
        "count": len(rs),
        "dtypes": sorted({r["dtype"] for r in rs}),
        "regimes": sorted({r["regime"] for r in rs}),
        "worst_over_tolerance": max(ratios),
        "median_over_tolerance": statistics.median(finite) if finite else None,
        "worst_case": worst["case_id"],
        "worst_message": worst.get("message", ""),
        "smallest_case": by_size[0]["case_id"],
        "shrunk_case": shrunk[0] if shrunk else None,
        "reproduce": by_size[0].get("reproduce", ""),
        "standalone": scripts[0]["standalone"] if scripts else None,
        "diagnoses": [
            {
                "name": d,
                "text": (diagnoses_text or {}).get(d, d),
                "reproduces": shares[d],
                "of": len(rs),
            }  # fmt: skip
            for d in ranked
        ],
        "same_as": _same_as(complete, backend, quantity, registry),
    }


def _finite(x: float) -> float:
    return 1e300 if not math.isfinite(x) else x
