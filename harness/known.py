"""The known-disagreement registry: entries from known.toml, each matched on evidence."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cases import Case
from .dtypes import info
from .errors import GradxvalError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["KnownEntry", "Registry", "load_registry", "EVIDENCE"]


@dataclass(frozen=True)
class KnownEntry:
    id: str
    title: str
    reason: str
    evidence: str
    quantities: tuple[str, ...]
    upstream: tuple[str, ...]
    problems: tuple[str, ...] = ()  # the problems the evidence applies to; () means all


def _round_to(values: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(values).astype(dtype).astype(np.float64)


def _derivative_cancellation(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """The result equals 2 d(y) * Re(A^H A phi(x)), y = phi(x) rounded to the dtype and d one of
    the activation's cancelling derivative rules (sigma: y (1 - y) or y - y^2; tanh: 1 - y^2).

    Library functions are not correctly rounded (torch's sigmoid is 1 ulp off at x = 12.84 in
    float32; XLA's float64 tanh is 7 ulps below 1 at x = 19), so y is tried at its rounded value
    and up to Activation.ulps ulps either side (2 for sigma, 8 for tanh); an element matches
    if any candidate explains it.
    """
    from .compare import expected_dtype, measure

    forms = getattr(ref.activation, "cancelled", ())
    if not forms or ref.sigma is None:
        return None
    di = info(case.dtype)
    dt = di.np_real
    with np.errstate(all="ignore"):
        y0 = np.asarray(ref.sigma).astype(dt)
        candidates = [y0]
        for target in (-np.inf, np.inf):
            y = y0
            for _ in range(getattr(ref.activation, "ulps", 2)):
                y = np.nextafter(y, np.asarray(target, dtype=dt))
                candidates.append(y)
    best = None
    for y, form in ((y, f) for y in candidates for f in forms):
        y = y.astype(np.float64)
        sp = form(y, dt)
        alt = 2 * sp * ref.back
        scale = 2 * np.abs(sp) * ref.back_abs
        m = measure(actual, alt, scale, ref.under[quantity], di, expected_dtype(case, quantity))
        if m.mismatch:
            return None
        best = m.e if best is None else np.minimum(best, m.e)
    return best <= tol


def _flush(a: np.ndarray, below: float, where_zero: np.ndarray | None = None) -> np.ndarray:
    """Zero the real and imaginary components of magnitude below ``below`` (only those that
    are zero in ``where_zero``, when it is given)."""
    a = np.array(a, copy=True)
    parts = (a.real, a.imag) if np.iscomplexobj(a) else (a,)
    if where_zero is None:
        refs = (None,) * len(parts)
    else:
        refs = (where_zero.real, where_zero.imag) if np.iscomplexobj(where_zero) else (where_zero,)
    for part, ref in zip(parts, refs, strict=True):
        mask = np.abs(part) < below
        if ref is not None:
            mask &= np.asarray(ref) == 0
        part[mask] = 0
    return a


def _subnormal_flush(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """Elements that equal the reference recomputed with subnormals flushed to zero (XLA CPU's
    FTZ/DAZ; torch's exp overflowing to 0 in sigma).

    Flushed are: sigma and sigma' below the smallest normal number, and those result components
    below twice it that the result has as zero -- the closed forms end in an exact doubling,
    2 * (z s), so a subnormal z s is flushed before it is doubled into the normal range.  Or, for
    grad_x, the result agrees once each subnormal product sigma'_j A_ij inside the sum may be lost
    (it is at most the smallest normal number times |z_i|).
    """
    from .compare import expected_dtype, measure
    from .reference import evaluate_plain

    if ref.embedding is None or ref.sigma is None:
        return None
    di = info(case.dtype)
    with np.errstate(all="ignore"):
        s = _flush(ref.sigma, di.tiny)
        sp = _flush(ref.sigma_prime, di.tiny)
        alt = evaluate_plain(ref.embedding, s, sp, case.m, di.is_complex)[quantity]
        alt = _flush(alt, 2 * di.tiny, where_zero=np.asarray(actual))
        m = measure(
            actual,
            alt,
            ref.scale[quantity],
            ref.under[quantity],
            di,
            expected_dtype(case, quantity),
        )
        if m.mismatch:
            return None
        # forward mode forms sigma'_j A_ij before multiplying by z_i: where that product is
        # subnormal it is flushed, and the sum loses at most tiny |z_i| for each such term
        inside = None
        if quantity == "grad_x":
            R = np.abs(ref.embedding)
            S = ref.sigma.reshape(case.n, case.k or 1)
            SP = np.abs(ref.sigma_prime.reshape(case.n, case.k or 1))
            Z = np.abs(ref.embedding @ S)
            lost = np.zeros_like(SP)
            for c in range(SP.shape[1]):
                flushed = (SP[None, :, c] * R) < di.tiny  # (M, n)
                lost[:, c] = 2 * di.tiny * (flushed.T.astype(float) @ Z[:, c])
            under = np.asarray(ref.under[quantity]) + lost.reshape(case.x_shape) / di.eta
            inside = measure(
                actual,
                ref.values[quantity],
                ref.scale[quantity],
                under,
                di,
                expected_dtype(case, quantity),
            ).e
    return (m.e <= tol) if inside is None else (m.e <= tol) | (inside <= tol)


def _sequential_sum_in_dtype(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """The loss equals sum(z * z) accumulated one term at a time in the case's (real) dtype,
    z = A sigma(x) rounded to the dtype: a reduction with no wider accumulator."""
    from .compare import expected_dtype, measure

    di = info(case.dtype)
    if di.is_complex or quantity != "loss" or ref.embedding is None or ref.sigma is None:
        return None
    dt = di.np
    S = ref.sigma.reshape(case.n, case.k or 1)
    with np.errstate(all="ignore"):
        z = (ref.embedding @ S).astype(dt)
        squares = (z * z).astype(dt).ravel()
        acc = np.zeros((), dtype=dt)
        for term in squares:
            acc = (acc + term).astype(dt)
    m = measure(
        actual,
        np.float64(acc),
        ref.scale[quantity],
        ref.under[quantity],
        di,
        expected_dtype(case, quantity),
    )
    return None if m.mismatch else m.e <= tol


def _nan_from_nonfinite_input(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """NaN elements of a result whose inputs hold an infinity: forward mode multiplies the zero
    tangents of other entries by inf primals, and 0 * inf is NaN."""
    if ref.embedding is None or np.isfinite(ref.embedding).all():
        return None
    with np.errstate(all="ignore"):
        a = np.asarray(actual).astype(np.complex128)
    return np.isnan(a.real) | np.isnan(a.imag)


def _promoted_dtype(case, quantity, actual, ref, tol) -> bool:
    """The result came back in a wider float dtype (float64 for a float32 case), and rounded
    to the case's dtype it agrees with the reference: a Python scalar promoted the array."""
    from .compare import expected_dtype, measure

    di = info(case.dtype)
    want = expected_dtype(case, quantity)
    actual = np.asarray(actual)
    if actual.dtype.kind not in "fc" or actual.dtype.itemsize <= info(want).np.itemsize:
        return False
    with np.errstate(all="ignore"):
        rounded = actual.astype(info(want).np)
    m = measure(rounded, ref.values[quantity], ref.scale[quantity], ref.under[quantity], di, want)
    return m.mismatch is None and m.error_u <= tol


# evidence for results of the wrong dtype: (case, quantity, actual, ref, tol) -> bool
DTYPE_EVIDENCE: dict[str, Callable] = {"promoted_dtype": _promoted_dtype}


def _nan_where_x_is_infinite(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """grad_x elements that are NaN exactly where x is infinite: a VJP of the form
    g * exp(x - ans) evaluates exp(inf - inf)."""
    if quantity != "grad_x" or ref.x is None:
        return None
    with np.errstate(all="ignore"):
        return np.isnan(np.asarray(actual, dtype=np.float64)) & np.isinf(ref.x)


def _all_zero_gradient(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """Every element of the gradient is exactly zero while the reference is not all zero: the
    autodiff graph was cut somewhere between the inputs and the loss."""
    a = np.asarray(actual)
    if quantity == "loss" or not a.size or np.any(a != 0):
        return None
    if not np.any(np.asarray(ref.values[quantity]) != 0):
        return None
    return np.ones(a.shape, dtype=bool)


EVIDENCE: dict[str, Callable] = {
    "all_zero_gradient": _all_zero_gradient,
    "nan_where_x_is_infinite": _nan_where_x_is_infinite,
    "nan_from_nonfinite_input": _nan_from_nonfinite_input,
    "sequential_sum_in_dtype": _sequential_sum_in_dtype,
    "derivative_cancellation": _derivative_cancellation,
    "subnormal_flush": _subnormal_flush,
}


class Registry:
    """The loaded entries.  Each evidence says which elements of a result it explains."""

    def __init__(self, entries: list[KnownEntry]):
        self.entries = entries

    def match(self, case: Case, quantity: str, actual, ref, ms, tol) -> list[KnownEntry]:
        """Return the entries that together explain every failing element, or [] if none do.

        A result can carry two known faults at once (a saturated x cancels in sigma(1 - sigma)
        while a very negative one underflows), so explanations combine element by element.
        """
        failing = ms.e > tol
        unexplained = failing.copy()
        used = []
        for entry in self.entries:
            if (
                quantity not in entry.quantities
                or not unexplained.any()
                or entry.evidence not in EVIDENCE
                or (entry.problems and case.problem not in entry.problems)
            ):
                continue
            explained = EVIDENCE[entry.evidence](case, quantity, actual, ref, ms, tol)
            if explained is None or not (explained & unexplained).any():
                continue
            unexplained &= ~explained
            used.append(entry)
        return used if failing.any() and not unexplained.any() else []

    def match_dtype(self, case: Case, quantity: str, actual, ref, tol) -> KnownEntry | None:
        """The entry whose evidence explains a result of the wrong dtype, if any."""
        for entry in self.entries:
            if entry.evidence in DTYPE_EVIDENCE and quantity in entry.quantities:
                if DTYPE_EVIDENCE[entry.evidence](case, quantity, actual, ref, tol):
                    return entry
        return None

    def get(self, entry_id: str) -> KnownEntry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise GradxvalError(f"known entry {entry_id!r} not in registry")


def load_registry(path: str | Path | None = None) -> Registry:
    """Load known.toml (the packaged one by default) and check each entry's evidence name."""
    path = Path(path) if path else Path(__file__).with_name("known.toml")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = []
    for raw in data.get("entry", []):
        if raw["evidence"] not in EVIDENCE and raw["evidence"] not in DTYPE_EVIDENCE:
            raise GradxvalError(
                f"{path}: entry {raw['id']!r} has evidence={raw['evidence']!r}, "
                f"expected one of {', '.join([*EVIDENCE, *DTYPE_EVIDENCE])}"
            )
        entries.append(
            KnownEntry(
                id=raw["id"],
                title=raw["title"],
                reason=" ".join(raw["reason"].split()),
                evidence=raw["evidence"],
                quantities=tuple(raw["quantities"]),
                upstream=tuple(raw.get("upstream", ())),
                problems=tuple(raw.get("problems", ())),
            )
        )
    return Registry(entries)
