"""Results -> verdicts, with the worst element, its error in u, and attribution."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
from gradxval.dtypes import info
from gradxval.judge.error_model import (
    _SCRATCH_MIN,
    case_tolerance,
    expected_dtype,
    measure,
    outcome_sets,
)
from gradxval.judge.reference import Reference
from gradxval.model.cases import Case

__all__ = [
    "VERDICTS",
    "Verdict",
    "judge",
    "attribute",
    "bias_u",
]

VERDICTS = ("agree", "disagree", "known", "unsupported", "error", "overflow")


@dataclass
class Verdict:
    """One verdict per case x backend x method x quantity."""

    case_id: str
    backend: str
    method: str
    quantity: str
    dtype: str
    regime: str
    verdict: str
    error_u: float | None = None
    tolerance_u: float | None = None
    worst_index: list[int] | None = None
    actual: str | None = None
    reference: str | None = None
    classification: str | None = None
    message: str = ""
    attribution: str = ""
    reproduce: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        # what asdict gives (lists, tuples and dicts copied), without its per-field recursion:
        # a default run writes ~8,000 of these; only these two fields hold containers
        d = {f: getattr(self, f) for f in _VERDICT_FIELDS}
        d["worst_index"] = _copied(self.worst_index)
        d["extra"] = _copied(self.extra)
        if d["error_u"] is not None and not np.isfinite(d["error_u"]):
            d["error_u"] = "inf"
        return d


_VERDICT_FIELDS = tuple(f.name for f in fields(Verdict))


def _copied(v):
    if isinstance(v, dict):
        return {k: _copied(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return type(v)(_copied(x) for x in v)
    return v


def judge(
    case: Case,
    backend: str,
    method: str,
    quantity: str,
    actual: np.ndarray,
    ref: Reference,
    known=None,
) -> Verdict:
    """Turn one result into a verdict: agree, overflow, known or disagree."""
    di = info(case.dtype)
    tol = case_tolerance(case, quantity)
    want = expected_dtype(case, quantity)
    ms = measure(
        actual,
        ref.values[quantity],
        ref.scale[quantity],
        ref.under[quantity],
        di,
        want,
        memo=ref.memo,
    )
    ms = outcome_sets(ms, actual, ref, quantity, di, want, tol)
    v = Verdict(
        case.id,
        backend,
        method,
        quantity,
        case.dtype,
        case.regime,
        "agree",
        error_u=ms.error_u,
        tolerance_u=round(tol, 3),
    )
    if ref.confidence != "high precision":
        v.extra["reference"] = ref.confidence
    if quantity == "grad_x" and case.regime in PROFILED and not ms.mismatch:
        prof = relerr_profile(actual, ref)
        if prof:
            v.extra["profile"] = prof
    if ms.mismatch:
        v.verdict, v.message = "disagree", f"{backend}/{method} {quantity}: {ms.mismatch}"
        entry = (
            known.match_dtype(case, backend, method, quantity, actual, ref, tol) if known else None
        )
        if entry is not None:
            v.verdict, v.classification = "known", entry.id
            v.message += f" -- known: {entry.title} ({', '.join(entry.upstream)})"
        else:
            _add_diagnoses(v, case, quantity, actual, ref, ms, tol)
        return v
    if ms.error_u <= tol:
        _fill_worst(v, ms.worst, actual, ref, quantity)
        v.verdict = "overflow" if ms.overflow else "agree"
        if ms.overflow:
            v.message = (
                f"{quantity} or an intermediate every evaluation forms (A phi(x), "
                f"A^H A phi(x)) exceeds the range of {case.dtype} (max {di.max:g})"
            )
        bias = bias_u(actual, ref.values[quantity], ref.scale[quantity], di, ref.memo, diff=ms.diff)
        ms.diff = None  # bias_u consumed it
        if bias is not None:
            v.extra["bias_u"] = round(bias, 4)
            hit = known.systematic(case, backend, method, quantity, ref) if known else None
            if hit is not None:
                model = bias_u(
                    np.asarray(hit[1]), ref.values[quantity], ref.scale[quantity], di, ref.memo
                )
                if model is not None:
                    v.extra["explained_by"] = hit[0]
                    v.extra["model_bias_u"] = round(model, 4)
        return v
    match = (
        known.match(case, backend, method, quantity, np.asarray(actual), ref, ms, tol)
        if known is not None
        else None
    )
    worst = ms.worst
    note = ""
    if match is not None and match.entries and not match.complete:
        # show the worst element that no in-scope entry explains: that is what is wrong
        e = np.where(match.explained, -np.inf, ms.e)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(e)), e.shape))
        n_ok, n_all = int(match.explained.sum()), match.explained.size
        names = "+".join(x.id for x in match.entries)
        note = (
            f"; known {names} explains {n_ok} of {n_all} elements, not this one"
            f" (error {float(ms.e[worst]):.3g} u there)"
        )
    _fill_worst(v, worst, actual, ref, quantity)
    v.verdict = "disagree"
    v.message = (
        f"{backend}/{method} {quantity} at index {worst}: actual {v.actual}, reference "
        f"{v.reference}; error {ms.error_u:.3g} u > tolerance {tol:.3g} u "
        f"(u = {di.u:.3g}, relative error {_relerr(actual, ref.values[quantity], worst)})" + note
    )
    if ref.confidence != "high precision":
        v.message += f" [reference: {ref.confidence}]"
    if match is not None and match.complete:
        v.verdict, v.classification = "known", "+".join(e.id for e in match.entries)
        for e in match.entries:
            v.message += f" -- known: {e.title} ({', '.join(e.upstream)})"
    else:
        _add_diagnoses(v, case, quantity, actual, ref, ms, tol)
    return v


def _fill_worst(v: Verdict, worst, actual, ref, quantity) -> None:
    v.worst_index = list(worst) if worst is not None else None
    if worst is not None:
        v.actual = _fmt(np.asarray(actual)[worst])
        v.reference = _fmt(np.asarray(ref.values[quantity])[worst])


def _add_diagnoses(v: Verdict, case, quantity, actual, ref, ms, tol) -> None:
    """Hints for an unexplained result: what its wrong values look like (never an excuse)."""
    from gradxval.judge.evidence import DIAGNOSES, diagnose

    names = diagnose(case, quantity, actual, ref, ms, tol)
    if names:
        v.extra["diagnosis"] = names
        v.message += " -- diagnosis (a hint, not an excuse): " + "; ".join(
            DIAGNOSES[n] for n in names
        )


# regimes whose grad_x keeps a relative-error profile against |x| (report.html plots it)
PROFILED = ("saturated", "extreme")
_BINS = np.linspace(-1.0, 3.0, 33)  # log10 |x| from 0.1 to 1000


def relerr_profile(actual, ref) -> list[list[float]]:
    """[[log10 |x| at the bin's left edge, worst relative error of grad_x in that bin], ...].

    Where the reference is 0 the relative error is 0 for a 0 result and 1 otherwise; NaN or a
    lost infinity counts as 10.  A few dozen numbers per result: where autodiff leaves the
    truth as |x| grows is a picture (report.html).
    """
    if ref.x is None:
        return []
    with np.errstate(all="ignore"):
        a = np.asarray(actual, dtype=np.float64).ravel()
        r = np.asarray(ref.values["grad_x"], dtype=np.float64).ravel()
        lx = np.log10(np.abs(np.asarray(ref.x, dtype=np.float64).ravel()))
        rel = np.where(r != 0, np.abs(a - r) / np.abs(r), np.where(a == 0, 0.0, 1.0))
        rel = np.where(np.isnan(rel) | (np.isfinite(r) & ~np.isfinite(a)), 10.0, rel)
        rel = np.minimum(rel, 10.0)
        ok = np.isfinite(lx) & np.isfinite(r) & (lx >= _BINS[0]) & (lx < _BINS[-1])
    if a.shape != r.shape or not ok.any():
        return []
    idx = np.digitize(lx[ok], _BINS) - 1
    worst = np.full(len(_BINS) - 1, -1.0)
    np.maximum.at(worst, idx, rel[ok])
    return [
        [round(float(_BINS[i]), 3), float(f"{worst[i]:.3g}")]
        for i in range(len(worst))
        if worst[i] >= 0
    ]


def bias_u(
    actual, expected, scale, di, memo: dict | None = None, diff: np.ndarray | None = None
) -> float | None:
    """Mean signed relative error, in u, over the well-conditioned elements of a result.

    A systematic relative perturbation (1 + d) of a result shows as d / u here, while honest
    rounding errors average out; the run compares it across backends on the same cases
    (accuracy.py).  Elements count when their reference is finite, non-zero and at least a
    tenth of the condition scale (little cancellation).  ``memo`` keeps which elements those
    are, and their reference values, for the next result against the same reference.
    ``diff`` is Measure.diff (actual - expected, all finite), which this divides in place.
    """
    a = np.asarray(actual)
    if not a.size:
        return None
    key = ("bias", id(expected), id(scale), di.tiny)
    with np.errstate(all="ignore"):
        if memo is not None and key in memo:
            where, r_ok = memo[key]
        else:
            r = np.asarray(expected)
            sc = np.broadcast_to(np.asarray(scale, dtype=np.float64), r.shape)
            mag = np.abs(r)
            ok = np.isfinite(r) & (mag > 0) & (mag >= 0.1 * sc) & (mag > di.tiny)
            if ok.all():
                where, r_ok = None, r.ravel()
            else:
                where = np.flatnonzero(ok)
                r_ok = r.ravel()[where]
            if memo is not None:
                memo[key] = where, r_ok
        if diff is not None and diff.shape == np.shape(expected) and r_ok.size:
            # measure()'s differences (all finite), gathered as below: the same bits
            r_sel = r_ok
            if where is None:
                rel = diff.reshape(-1)
            elif memo is not None and where.size >= _SCRATCH_MIN:  # gathered into scratch
                gkey = ("bias-scratch", where.size, diff.dtype)
                if gkey not in memo:
                    memo[gkey] = np.empty(where.size, diff.dtype)
                rel = np.take(diff.reshape(-1), where, out=memo[gkey])
            else:
                rel = diff.reshape(-1)[where]
        else:
            if a.shape != np.shape(expected):
                a_ok = a[np.isfinite(a)][:0]
            elif where is None:  # every element counts: no gather
                a_ok = a.ravel()
            else:
                a_ok = a.ravel()[where]
            fin = np.isfinite(a_ok)
            if not fin.all():
                a_ok, r_sel = a_ok[fin], r_ok[fin]
            else:
                r_sel = r_ok
            if not a_ok.size:
                return None
            rel = np.subtract(a_ok.astype(r_sel.dtype, copy=False), r_sel)
        rel /= r_sel
        val = float(np.mean(np.real(rel))) / di.u
    return val if np.isfinite(val) else None


def _fmt(x) -> str:
    x = complex(x) if np.iscomplexobj(x) else float(x)
    return repr(x)


def _relerr(actual, expected, worst) -> str:
    if worst is None:
        return "n/a"
    a, r = complex(np.asarray(actual)[worst]), complex(np.asarray(expected)[worst])
    if r == 0:
        return "inf" if a != 0 else "0"
    with np.errstate(all="ignore"):  # numpy's abs: inf where Python's complex abs raises
        return f"{float(np.abs(np.complex128(a - r)) / np.abs(np.complex128(r))):.3g}"


def attribute(
    case: Case,
    quantity: str,
    verdicts: list[Verdict],
    results: dict[tuple[str, str], np.ndarray],
    ref: Reference,
) -> None:
    """Fill in attribution for the disagreeing verdicts of one case and quantity.

    Names the outliers against the reference, and says plainly when several methods agree with
    each other but not with the reference: consensus between backends is not correctness.
    """
    bad = [v for v in verdicts if v.verdict in ("disagree", "known")]
    if not bad:
        return
    good = [f"{v.backend}/{v.method}" for v in verdicts if v.verdict in ("agree", "overflow")]
    di = info(case.dtype)
    tol = case_tolerance(case, quantity)
    want = expected_dtype(case, quantity)
    for v in bad:
        mine = results.get((v.backend, v.method))
        peers = []
        for w in bad:
            if w is v or mine is None:
                continue
            other = results.get((w.backend, w.method))
            if other is None or np.shape(other) != np.shape(mine):
                continue
            pm = measure(
                mine,
                np.asarray(other, dtype=np.asarray(ref.values[quantity]).dtype),
                ref.scale[quantity],
                ref.under[quantity],
                di,
                want,
            )
            if pm.mismatch is None and pm.error_u <= 2 * tol:
                peers.append(f"{w.backend}/{w.method}")
        who = f"{v.backend}/{v.method}"
        if peers:
            others = {p.split("/")[0] for p in peers} - {v.backend}
            if others:
                v.attribution = (
                    f"{who} agrees with {', '.join(peers)} but not with the reference: "
                    f"{len(peers) + 1} results from {len(others) + 1} backends share the error"
                )
            else:
                v.attribution = (
                    f"{who} agrees with {', '.join(peers)} but not with the reference: "
                    f"methods of {v.backend} share the error; no other backend does"
                )
        else:
            v.attribution = f"outlier: {who} against the reference"
        if good:
            v.attribution += f"; agreeing with the reference: {', '.join(good)}"
        v.attribution += _witness_note(case, quantity, v, results, ref)


def _witness_note(case, quantity, v, results, ref) -> str:
    """What the finite-difference witness says at the worst element of a disagreement."""
    from gradxval.judge.witness import partial_derivative

    if v.worst_index is None or quantity == "loss":
        return ""
    w = partial_derivative(ref, case, quantity, v.worst_index)
    if w is None:
        return ""
    idx = tuple(v.worst_index)
    di = info(case.dtype)
    under = np.broadcast_to(ref.under[quantity], np.shape(ref.values[quantity]))
    # a method's value may sit anywhere inside its own tolerance around the truth
    slack = (v.tolerance_u or 0) * (
        di.u * float(np.asarray(ref.scale[quantity])[idx]) + di.eta * float(under[idx])
    )
    sides = []
    for (b, m), arr in results.items():
        if np.shape(arr) == np.shape(ref.values[quantity]) and w.admits(
            np.asarray(arr)[idx], slack
        ):
            sides.append(f"{b}/{m}")
    ref_ok = w.admits(np.asarray(ref.values[quantity])[idx])
    if f"{v.backend}/{v.method}" in sides and ref_ok:
        return f"; numeric witness at {idx}: {w}, too coarse to take a side"
    who = ", ".join(sides) if sides else "none of the methods"
    return (
        f"; numeric witness at {idx}: {w}, siding with {who}"
        f"{' and the reference' if ref_ok else ' (and not the reference)'}"
    )
