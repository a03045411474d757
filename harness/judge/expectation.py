"""What a correct result of a declared function is, and how far an honest one may stray.

The reference is the engine's binary128 evaluation.  The tolerance is derived from the
function at this input: ``RUNS`` evaluations in ``Emulated`` arithmetic (every operation
rounded to the dtype after a perturbation, every reduction given the error of pairwise
summation; two runs at the envelope of one-sided perturbations, the rest random) show the
spread an honest implementation in that dtype can have; the tolerance is
``SPREAD`` times the largest deviation seen (and the reference's own error, estimated the same
way in binary128), plus ``FLOOR_ULPS`` ulps of the reference and the dtype's smallest
subnormal.  ``SPREAD`` is one constant for every dtype, calibrated on the suite
(docs/functions.md).

Non-finite results are decided by the same runs: where the reference is finite but an honest
run overflowed, a non-finite result is the ``overflow`` outcome; where the reference itself is
NaN the function is undefined there; where an honest run took another branch of a comparison
(relu, max, abs, where) than the reference, or the reference sits exactly on a tie, the case is
at a kink and a result off the reference is the ``kink`` outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gradxval.dtypes import info
from gradxval.judge.engine import Emulated, Quad, evaluate
from gradxval.judge.engine.arith import QuadJitter

__all__ = ["Expectation", "expect", "RUNS", "NEAREST", "SPREAD", "FLOOR_ULPS"]

RUNS = 7
# the honest run rounded to nearest without perturbation: IEEE arithmetic's own result, which a
# library computing the same formulation in the same order returns bit for bit
NEAREST = 2
# the largest of six runs' deviations underestimates the spread of all honest evaluations;
# 8 is the smallest power of two with no false alarm on the calibration suite
# (docs/functions.md, "Calibration")
SPREAD = 8.0
# libraries' elementwise kernels are within 1-2 ulps (fused rules, other but equal formulas);
# the honest runs are one formulation, so every element gets this many ulps besides
FLOOR_ULPS = 2.0


@dataclass
class Expectation:
    """One quantity's reference (binary128), honest runs (float64) and tolerance."""

    ref: np.ndarray
    ref64: np.ndarray
    honest: list
    tol: np.ndarray
    kink: bool
    # an honest run in the dtype overflowed somewhere inside: formulations that are equally
    # honest diverge there, so a result off the reference is the overflow outcome
    range_exceeded: bool = False
    # the function is undefined at this input (its value is NaN or infinite), so is every
    # derivative
    undefined: bool = False
    used: frozenset = frozenset()  # the nn operations the function called

    @property
    def overflow(self) -> np.ndarray:
        """Where the reference is finite but some honest run is not."""
        bad = np.zeros(self.ref64.shape, dtype=bool)
        for h in self.honest:
            bad |= ~np.isfinite(h)
        return bad & np.isfinite(self.ref64)


def _same_branches(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def expect(
    function,
    arrays: dict,
    dtype: str,
    directions: dict,
    order: int,
    seed: int,
    tangents: bool = True,
    flush: bool = False,
    variants: frozenset = frozenset(),
    cotangent=None,
) -> dict[str, Expectation]:
    """The expectation of every quantity of ``function`` at ``arrays`` in ``dtype``.

    ``flush``: the honest runs flush subnormals to zero (a known fault's model)."""
    dt = info(dtype)
    kw = {"tangents": directions if tangents else None,
          "directions": directions if order >= 2 else None,
          "cotangent": cotangent}  # fmt: skip
    ref = evaluate(function.fn, arrays, function.wrt, Quad(), **kw)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    # two runs at the envelope (every rounding pushed up, then down), one rounded to nearest
    # with no perturbation (what IEEE arithmetic does: a score of 164.5 in bfloat16 is a tie
    # that random perturbations decide either way, and a library rounds it to even), the rest
    # random
    signs = (1.0, -1.0, 0.0) + (None,) * (RUNS - 3)  # signs[NEAREST] is 0.0
    runs = [evaluate(function.fn, arrays, function.wrt,
                     Emulated(dtype, rng, flush, variants, sign), **kw)
            for sign in signs]  # fmt: skip
    jitter = evaluate(function.fn, arrays, function.wrt, QuadJitter(rng), **kw)
    kink = ref.ties > 0 or any(not _same_branches(ref.branches, r.branches) for r in runs)
    # an honest run overflowed inside: in the pass that computes the quantity, or before it
    exceeded = {"": any(r.overflowed for r in runs), "jvp": any(r.jvp_overflowed for r in runs),
                "hvp": any(r.hvp_overflowed for r in runs)}  # fmt: skip
    with np.errstate(all="ignore"):
        f_undefined = not np.isfinite(np.asarray(ref["loss"]).astype(np.float64))
    wide = None  # the runs with float64's range, computed only where they are needed
    out = {}
    for q, value in ref.items():
        with np.errstate(all="ignore"):
            ref64 = np.asarray(value).astype(np.float64)
        honest = [np.asarray(r[q], dtype=np.float64) for r in runs]
        spread = honest
        with np.errstate(all="ignore"):
            blind = np.isfinite(ref64)
            for h in honest:
                blind &= ~np.isfinite(h)
        if blind.any() and dt.np_real != np.float64:
            # every run met a non-finite value here (p = 0 after an underflow, then 0 / 0 in
            # xlogy's rule), so none shows how far an honest finite result may stray: one
            # that avoids the range (a guarded rule) is judged by the dtype's rounding with
            # float64's range, the same runs, wide
            if wide is None:
                wide = [evaluate(function.fn, arrays, function.wrt,
                                 Emulated(dtype, rng, flush, variants, sign, wide=True), **kw)
                        for sign in (1.0, -1.0, None)]  # fmt: skip
            spread = [np.where(blind, np.asarray(w[q], dtype=np.float64), h)
                      for w, h in zip(wide, honest[:3], strict=True)] + honest[3:]  # fmt: skip
        with np.errstate(all="ignore"):
            dev = np.zeros(ref64.shape)
            for h in spread:
                d = np.abs(h - ref64)
                dev = np.maximum(dev, np.where(np.isfinite(d), d, 0.0))
            mag = np.abs(np.where(np.isfinite(ref64), ref64, 0.0))
            # the reference's own error, from its jittered run (binary128 cancels too)
            own = np.abs(np.asarray(jitter[q]).astype(np.float64) - ref64)
            own = np.where(np.isfinite(own), own, 0.0)
            tol = SPREAD * (dev + own) + FLOOR_ULPS * 2 * dt.u * mag + dt.eta
        out[q] = Expectation(np.asarray(value), ref64, honest, tol, kink,
                             exceeded["jvp" if q == "jvp" else "hvp" if q[:4] == "hvp_" else ""],
                             f_undefined and q != "loss", frozenset(ref.used))  # fmt: skip
    return out
