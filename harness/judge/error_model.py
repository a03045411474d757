"""The error model: how far a result is from what it is judged against, in units of roundoff.

An element's error is |result - expected| / (u * scale + eta * under), where u is the dtype's unit
roundoff, eta its smallest subnormal, and scale and under the reference's first-order bounds of
the rounding errors (Reference.scale, Reference.under).  A result passes where that is at most
the tolerance its problem declares (Problem.tolerance_u; for the ||A phi(x)||^2 family the
derivation is in gradxval.model.tolerance).  Declared functions derive theirs from the function
instead (gradxval.judge.expectation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from gradxval.dtypes import DtypeInfo, info
from gradxval.judge.reference import Reference
from gradxval.model.cases import Case

__all__ = ["Measure", "measure", "outcome_sets", "expected_dtype", "case_tolerance"]


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


def case_tolerance(case: Case, quantity: str) -> float:
    """The tolerance in u for one quantity of a case: its problem's own (Problem.tolerance_u)."""
    import inspect

    from gradxval.model.problems import load_problem

    fn = load_problem(case.problem).tolerance_u
    if "dtype" in inspect.signature(fn).parameters:  # plug-ins written before dtypes mattered
        return fn(quantity, case.m, case.n, case.k, dtype=case.dtype)
    return fn(quantity, case.m, case.n, case.k)


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
    # a non-finite result accepted where the reference is finite, or where an intermediate
    # overflows the dtype (NaN for +inf): an overflow; complex infinities of another form are
    # the conventions of complex arithmetic, and agree
    r, a = np.asarray(ref.values[quantity]), np.asarray(actual)
    overflowing = ref.overflowing.get(quantity, False)
    with np.errstate(all="ignore"):
        other = np.isfinite(r) | (overflowing & ~((a == r) | (np.isnan(a) & np.isnan(r))))
        if quantity in ref.conventions:
            other = other & ~ref.conventions[quantity]
    over = bool(np.any(mask & ~np.isfinite(a) & other & (e == 0)))
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
