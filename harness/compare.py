"""Results -> verdicts, with the worst element, its error in u, and attribution."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .cases import Case
from .dtypes import DtypeInfo, info
from .reference import Reference

__all__ = [
    "VERDICTS",
    "Verdict",
    "Measure",
    "measure",
    "judge",
    "outcome_sets",
    "attribute",
    "expected_dtype",
    "case_tolerance",
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


@dataclass
class Measure:
    """Per-element errors in u of one result against one set of expected values."""

    e: np.ndarray  # error / (u * scale + eta * under), inf where the pattern of NaN/inf differs
    overflow: bool  # the reference overflows the dtype there and the result is non-finite
    mismatch: str | None  # shape or dtype problem: nothing else can be compared
    top: int | None = None  # flat index of the first largest error, once known
    # actual - expected, kept where both are finite everywhere: bias_u divides it in place
    diff: np.ndarray | None = field(default=None, repr=False, compare=False)

    def _top(self) -> int:
        if self.top is None:
            self.top = int(np.argmax(self.e))
        return self.top

    @property
    def error_u(self) -> float:
        return float(self.e.flat[self._top()]) if self.e.size else 0.0

    @property
    def worst(self) -> tuple[int, ...] | None:
        if not self.e.size:
            return None
        return tuple(int(i) for i in np.unravel_index(self._top(), self.e.shape))


def expected_dtype(case: Case, quantity: str) -> str:
    di = info(case.dtype)
    return case.dtype if quantity == "grad_A" else di.real


def _parts(a: np.ndarray) -> np.ndarray:
    return np.stack([a.real, a.imag]) if np.iscomplexobj(a) else a[None]


_SCRATCH_MIN = 1 << 16  # elements: below this a fresh array costs less than the bookkeeping


_BLOCK = 1 << 15  # elements: a block of each operand stays in cache


def _finite_in_blocks(a, r, denom, diff_buf, err_buf) -> int | None:
    """measure()'s common case for a large result, block by block: fill diff_buf with a - r
    and err_buf with |a - r| / denom, and return the flat index of the first largest error; or
    None (buffers half-filled) where an error is not finite or the layouts do not allow it.

    The same operations as on whole arrays, element by element, so the same bits; but each
    block's difference, error and argmax stay in cache (the whole-array form made nine passes
    over the result, this five).
    """
    if not (
        denom.shape == a.shape
        and a.flags.c_contiguous
        and r.flags.c_contiguous
        and denom.flags.c_contiguous
    ):
        return None
    af, rf, df = a.reshape(-1), r.reshape(-1), denom.reshape(-1)
    dfl, efl = diff_buf.reshape(-1), err_buf.reshape(-1)
    best, top = -1.0, None
    for i in range(0, af.size, _BLOCK):
        j = slice(i, i + _BLOCK)
        e = np.abs(np.subtract(af[j], rf[j], out=dfl[j]), out=efl[j])
        e /= df[j]
        k = int(np.argmax(e))  # the first NaN, inf or largest value of the block
        v = float(e[k])
        if not np.isfinite(v):
            return None
        if v > best:  # strictly: the first of equal maxima, as np.argmax over the whole
            best, top = v, i + k
    return top


def measure(
    actual: np.ndarray,
    expected: np.ndarray,
    scale: np.ndarray,
    under: np.ndarray,
    di: DtypeInfo,
    want_dtype: str,
    eta: float | None = None,
    memo: dict | None = None,
) -> Measure:
    """Compare one result to expected values under the condition-scaled error model.

    ``memo`` (a reference's own dict) keeps what depends on the reference alone (the
    denominator, whether it is all finite) for the next result judged against it, and two
    scratch arrays the size of the result: a Measure made with a memo holds them, and is valid
    until the next measure() with that memo (judge uses one, then the next).
    """
    actual = np.asarray(actual)
    if actual.shape != np.shape(expected):
        return Measure(
            np.array([np.inf]), False, f"shape {actual.shape}, expected {np.shape(expected)}"
        )
    got = actual.dtype.name
    if got != want_dtype:
        return Measure(np.array([np.inf]), False, f"dtype {got}, expected {want_dtype}")
    eta = di.eta if eta is None else eta
    a = np.asarray(actual, dtype=np.complex128 if np.iscomplexobj(actual) else np.float64)
    r = np.asarray(expected)
    key = (id(expected), id(scale), id(under), di.u, eta)
    if memo is not None and key in memo:
        denom, r_finite = memo[key]
    else:
        with np.errstate(all="ignore"):
            denom = di.u * np.asarray(scale) + eta * np.asarray(under)
            r_finite = bool(np.isfinite(r).all())
        if memo is not None:
            memo[key] = denom, r_finite
    with np.errstate(all="ignore"):
        diff_t = np.result_type(a, r)
        if memo is not None and a.ndim and a.size >= _SCRATCH_MIN:
            # a result as large as A: fresh arrays for each of a case's results would cost
            # their page faults again each time (a plain process returns them to the kernel)
            skey = ("scratch", a.shape, diff_t)
            if skey not in memo:
                memo[skey] = np.empty(a.shape, diff_t), np.empty(a.shape, np.float64)
            diff_buf, err_buf = memo[skey]
            top = _finite_in_blocks(a, r, denom, diff_buf, err_buf) if r_finite else None
            if top is not None:
                return Measure(err_buf, False, None, top, diff_buf)
            diff = np.subtract(a, r, out=diff_buf)
            err = np.abs(diff, out=err_buf)
        else:
            diff = np.subtract(a, r)
            err = np.abs(diff)
        err /= denom  # in place: the difference kept for bias_u
        if r_finite:
            # the common case: finite reference, finite errors, told by one argmax (the first
            # NaN or inf wins it); what follows gives exactly this there (no NaN/inf pattern to
            # compare, no overflow), and the argmax is the worst element's
            err = np.asarray(err, dtype=np.float64)
            top = int(np.argmax(err)) if err.size else None
            if top is None or np.isfinite(err.flat[top]):
                kept = diff if isinstance(diff, np.ndarray) and diff.ndim else None
                return Measure(err, False, None, top, kept)
        ap, rp = _parts(a), _parts(r)
        r_bad = ~np.isfinite(rp)
        a_bad = ~np.isfinite(ap)
        same_nonfinite = (np.isnan(ap) == np.isnan(rp)) & ((ap == rp) | np.isnan(rp))
        pattern_ok = np.where(r_bad, same_nonfinite, True).all(axis=0)
        over = (np.isfinite(rp) & (np.abs(rp) > di.max) & a_bad).any(axis=0)
        finite_both = ~(r_bad | a_bad).any(axis=0)
        err = np.where(np.isnan(err) & finite_both, np.inf, err)  # inf scale with finite values
        e = np.where(finite_both, err, 0.0)
        e = np.where(~finite_both & ~r_bad.any(axis=0) & ~over, np.inf, e)  # lost finiteness
        e = np.where(pattern_ok, e, np.inf)
    e = np.nan_to_num(np.asarray(e, dtype=np.float64), nan=np.inf, posinf=np.inf)
    return Measure(e, bool(np.any(over & (e == 0))), None)


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


def outcome_sets(ms: Measure, actual, ref: Reference, quantity: str, di, want, tol) -> Measure:
    """The measure once the outcomes an IEEE-correct evaluation may give besides the
    reference's are allowed (docs/tolerance.md, "Outcome sets"); ``ms`` itself where nothing
    fails or nothing else applies.  judge and the promoted-dtype evidence both go through it."""
    if ms.mismatch or ms.error_u <= tol:
        return ms
    if quantity in ref.honest:
        ms = _honest_outcomes(ms, actual, ref, quantity, di, want)
        if ms.error_u <= tol:
            return ms
    return _overflow_within_tolerance(ms, actual, ref, quantity, di, tol)


def _honest_outcomes(ms: Measure, actual, ref: Reference, quantity: str, di, want) -> Measure:
    """The error per element against the nearest of the outcomes an IEEE-correct evaluation
    may give there (reference.py: _complex_outcomes); elsewhere the reference's alone."""
    mask, alts = ref.honest[quantity]
    e = np.array(ms.e, dtype=np.float64, copy=True)
    for alt in alts:
        other = measure(actual, alt, ref.scale[quantity], ref.under[quantity], di, want)
        if not other.mismatch:
            e = np.where(mask, np.minimum(e, other.e), e)
    # a non-finite result accepted where the reference is finite: an intermediate overflowed
    r = np.asarray(ref.values[quantity])
    over = bool(np.any(mask & ~np.isfinite(np.asarray(actual)) & np.isfinite(r) & (e == 0)))
    return Measure(e, ms.overflow or over, None)


def _overflow_within_tolerance(ms: Measure, actual, ref: Reference, quantity, di, tol):
    """An infinity of the reference's sign is honest where the tolerance band around a finite
    reference reaches the dtype's overflow threshold, max + ulp(max) / 2: a value a correct
    evaluation may round to just above max rounds to inf (softplus:saturated-float16-m303n958k2-
    s397245: grad_A 65503.3 exactly, inf from every library)."""
    r = np.asarray(ref.values[quantity])
    a = np.asarray(actual)
    if np.iscomplexobj(r) or np.iscomplexobj(a) or not np.isinf(a).any():
        return ms
    with np.errstate(all="ignore"):
        threshold = di.max * (1 + di.u / 2)  # round to nearest: max + half an ulp of max
        band = tol * (
            di.u * np.asarray(ref.scale[quantity]) + di.eta * np.asarray(ref.under[quantity])
        )
        near = np.isfinite(r) & (np.abs(r) + band >= threshold)
        ok = near & np.isinf(a) & (np.sign(a) == np.sign(r))
    if not ok.any():
        return ms
    return Measure(np.where(ok, 0.0, ms.e), True, None)


def _fill_worst(v: Verdict, worst, actual, ref, quantity) -> None:
    v.worst_index = list(worst) if worst is not None else None
    if worst is not None:
        v.actual = _fmt(np.asarray(actual)[worst])
        v.reference = _fmt(np.asarray(ref.values[quantity])[worst])


def _add_diagnoses(v: Verdict, case, quantity, actual, ref, ms, tol) -> None:
    """Hints for an unexplained result: what its wrong values look like (never an excuse)."""
    from .evidence import DIAGNOSES, diagnose

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


def case_tolerance(case: Case, quantity: str) -> float:
    """The tolerance in u for one quantity of a case: its problem's own (Problem.tolerance_u)."""
    import inspect

    from .problems import load_problem

    fn = load_problem(case.problem).tolerance_u
    if "dtype" in inspect.signature(fn).parameters:  # plug-ins written before dtypes mattered
        return fn(quantity, case.m, case.n, case.k, dtype=case.dtype)
    return fn(quantity, case.m, case.n, case.k)


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
    from .witness import partial_derivative

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
