"""One result of a declared function against its expectation: an outcome and its size.

Outcomes, in the order a summary lists them:
- ``agree``: every element within the tolerance, non-finite where the reference is;
- ``overflow``: as agree, with non-finite elements where the reference is finite but an honest
  evaluation in the dtype overflows too; or any result where an honest evaluation overflows
  inside (equally honest formulations diverge there);
- ``undefined``: the reference is NaN, or the function's value is NaN or infinite at this
  input so no derivative exists there, whatever came back;
- ``known``: a disagreement a registered library fault's model reproduces (known_functions);
- ``kink``: off the reference at a point where an honest evaluation takes another branch;
- ``disagree``: anything else: a wrong value, a wrong shape or a wrong dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gradxval.dtypes import info
from gradxval.judge.expectation import FLOOR_ULPS, NEAREST, SPREAD, Expectation

__all__ = ["Verdict", "judge", "judge_parts", "reproduces", "OUTCOMES", "FAILING"]

OUTCOMES = ("agree", "overflow", "known", "undefined", "kink", "disagree", "error", "unsupported")
FAILING = ("disagree", "error")


@dataclass
class Verdict:
    outcome: str
    ulps: float = 0.0  # worst error in units in the last place of the dtype at the reference
    rel: float = 0.0  # worst relative error
    ratio: float = 0.0  # worst error / tolerance
    index: tuple = ()
    actual: float | None = None
    expected: float | None = None
    bad: int = 0
    note: str = ""

    def as_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items() if v not in ((), None, "")}
        d["index"] = list(self.index)
        return d


def _ulp(ref: np.ndarray, dtype: str) -> np.ndarray:
    dt = info(dtype)
    with np.errstate(all="ignore"):
        mag = np.maximum(np.abs(ref), dt.tiny)
        return np.exp2(np.floor(np.log2(mag))) * (2 * dt.u)


def _elementwise(result: np.ndarray, exp: Expectation):
    """The error of every element against binary128, where each is acceptable, and where
    that is by an honest overflow."""
    r = result.astype(np.float64)
    ref = exp.ref64
    with np.errstate(all="ignore"):
        # the error measured against binary128, so that float64 results are judged exactly
        err = np.abs(r.astype(exp.ref.dtype) - exp.ref).astype(np.float64)
        nonfinite_ok = exp.overflow & ~np.isfinite(r)
        same_inf = np.isinf(ref) & (r == ref)
        within = np.isfinite(r) & np.isfinite(ref) & (err <= exp.tol)
        ok = within | same_inf | nonfinite_ok | np.isnan(ref)
        # an infinite reference reached through an honest NaN (inf - inf inside the rules)
        for h in exp.honest:
            ok |= np.isinf(ref) & np.isnan(r) & np.isnan(h)
    return err, ok, nonfinite_ok


def judge(result, exp: Expectation, dtype: str, strict: bool = False) -> Verdict:
    """Judge ``result`` (numpy, any dtype) against ``exp``.

    ``strict``: element by element only, no outcome for the whole result (undefined, an
    overflow inside, a kink): what a registered fault's model must reproduce."""
    dt = info(dtype)
    result = np.asarray(result)
    if result.shape != exp.ref64.shape:
        return Verdict("disagree", note=f"shape {result.shape}, expected {exp.ref64.shape}")
    if result.dtype != dt.np_real:
        return Verdict("disagree", note=f"dtype {result.dtype}, expected {dt.real}")
    r = result.astype(np.float64)
    ref = exp.ref64
    if not strict and (exp.undefined or (ref.size and np.all(np.isnan(ref)))):
        return Verdict("undefined")
    err, ok, nonfinite_ok = _elementwise(result, exp)
    if ok.all():
        return Verdict("overflow" if nonfinite_ok.any() else "agree", bad=0)
    bad = ~ok
    with np.errstate(all="ignore"):
        size = np.where(bad, np.where(np.isfinite(err), err, np.inf), -1.0)
        i = np.unravel_index(int(np.argmax(size)), ref.shape) if ref.ndim else ()
        e = float(err[i]) if np.isfinite(r[i]) else float("inf")
        ulps = e / float(_ulp(ref[i], dtype))
        rel = e / abs(float(ref[i])) if ref[i] != 0 else float("inf")
        ratio = e / float(exp.tol[i])
    outcome = "disagree"
    if not strict:
        outcome = "kink" if exp.kink else "overflow" if exp.range_exceeded else "disagree"
    return Verdict(
        outcome,
        ulps=ulps,
        rel=rel,
        ratio=ratio,
        index=tuple(int(j) for j in i),
        actual=float(r[i]),
        expected=float(ref[i]),
        bad=int(bad.sum()),
    )


def judge_parts(result, exps: dict, quantity: str, dtype: str, strict: bool = False) -> Verdict:
    """Judge a complex quantity by its real and imaginary parts, each against its own
    expectation (``QUANTITY.re``, ``QUANTITY.im``): the worse part's verdict, naming it."""
    dt = info(dtype)
    result = np.asarray(result)
    if result.dtype != dt.np:
        return Verdict("disagree", note=f"dtype {result.dtype}, expected {dtype}")
    verdicts = [
        (judge(np.array(part), exps[f"{quantity}.{key}"], dtype, strict), name)
        for part, key, name in ((result.real, "re", "real"), (result.imag, "im", "imaginary"))
    ]
    v, name = max(verdicts, key=lambda p: (OUTCOMES.index(p[0].outcome), p[0].ratio))
    if v.outcome != "agree":
        v.note = f"{name} part" + (f"; {v.note}" if v.note else "")
    return v


# how close a result must be to a fault model's run rounded to nearest: ulps of the sums'
# accumulator for their order (torch's LayerNorm weight.grad sums 23 rows' residues 3 ulps
# from the model's in float64), besides FLOOR_ULPS of the dtype
NEAREST_ULPS = 16.0


def reproduces(result, plain: Expectation, model: Expectation, dtype: str,
               specific: bool = True) -> bool:  # fmt: skip
    """Whether a fault's model explains every element of ``result`` that ``plain`` does not
    accept.

    The model's runs (the library's rule in the dtype, perturbed as the honest runs are) give
    its prediction at each element: their midpoint, with ``SPREAD`` times their half-range as
    the tolerance; or its run rounded to nearest, within ``NEAREST_ULPS`` (the library's
    formulation in IEEE order: a cancellation residue reproduced to the bit).  An element is
    explained only where a prediction is specific: finite and clear of the correct result's
    own tolerance (a model whose runs scatter around the reference claims nothing there), or
    every run non-finite where the result is.

    ``specific=False``: whether the model merely admits the result, each wrong element inside
    its runs' band (their midpoint, widened by ``SPREAD`` times their half-range) or
    non-finite where a run is: a hint for a note, never a label."""
    dt = info(dtype)
    result = np.asarray(result)
    if result.shape != plain.ref64.shape or result.dtype != dt.np_real:
        return False
    _, ok, _ = _elementwise(result, plain)
    if ok.all():
        return True
    r = result.astype(np.float64)
    runs = np.stack([np.broadcast_to(h, r.shape) for h in model.honest])
    with np.errstate(all="ignore"):
        finite = np.isfinite(runs).all(axis=0)
        lo, hi = runs.min(axis=0), runs.max(axis=0)
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        tol = SPREAD * half + FLOOR_ULPS * 2 * dt.u * np.abs(mid) + dt.eta
        if not specific:
            inside = finite & np.isfinite(r) & (np.abs(r - mid) <= tol)
            some = ~np.isfinite(runs).all(axis=0) & ~np.isfinite(r)
            return bool((ok | inside | some).all())
        clear = np.abs(mid - plain.ref64) > tol + plain.tol
        near = finite & clear & np.isfinite(r) & (np.abs(r - mid) <= tol)
        # the run rounded to nearest, where the perturbed runs scatter (a residue)
        ieee = runs[NEAREST]
        # a sum's order in its accumulator (float32 for half precision), a rounding or two
        u_acc = min(dt.u, info("float32").u)
        tol = (NEAREST_ULPS * u_acc + FLOOR_ULPS * dt.u) * 2 * np.abs(ieee) + dt.eta
        clear = np.abs(ieee - plain.ref64) > plain.tol  # the run itself is a wrong result
        near |= np.isfinite(ieee) & clear & np.isfinite(r) & (np.abs(r - ieee) <= tol)
        nonfinite = ~np.isfinite(runs).any(axis=0) & ~np.isfinite(r)
        nonfinite &= np.where(np.isnan(r), np.isnan(runs).any(axis=0), (runs == r).any(axis=0))
    return bool((ok | near | nonfinite).all())


def reproduces_parts(result, plain: dict, model: dict, quantity: str, dtype: str,
                     specific: bool = True) -> bool:  # fmt: skip
    """``reproduces`` for a complex quantity, part by part."""
    result = np.asarray(result)
    if result.dtype != info(dtype).np:
        return False
    return all(
        reproduces(
            np.array(part),  # a copy of the part, 0-d kept 0-d
            plain[f"{quantity}.{k}"],
            model[f"{quantity}.{k}"],
            dtype,
            specific,
        )  # fmt: skip
        for part, k in ((result.real, "re"), (result.imag, "im"))
    )
