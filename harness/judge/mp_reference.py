"""The reference of a problem with no high-precision definition: its own loss in mpmath.

A user's closed form is never the reference (issue 20): a closed form with a doubled gradient
would agree with itself on every backend and flag the correct autodiff results.  Instead the
problem's ``loss`` (written against ``xp``) runs on object arrays of mpmath numbers at 60
digits, through the small namespace below, and each gradient entry is a central difference of
that loss, Richardson-extrapolated from steps h and h/4 with h = 1e-15 max(1, |t|): at 60
digits the quotient's rounding is ~1e-45 and its truncation ~1e-30 of the scale, so the value
is good far below float64's u.  The two steps must agree to 1e-20 of the gradient's norm, or the
loss is not smooth at that scale there (a kink, a tie) and the quantity is not judged.

No backend computes any of it.  The cost is a loss evaluation per element (~1 us per
operation) and four per differentiated input entry, so gradients of large cases are left
unjudged (``Reference.missing`` says why) instead of taking minutes.
"""

from __future__ import annotations

import numpy as np
from gradxval.dtypes import info
from gradxval.errors import Unsupported
from gradxval.judge.reference import Reference

__all__ = ["multiprecision_reference", "MPNamespace", "GRADIENT_BUDGET", "LOSS_BUDGET"]

DPS = 60
LOSS_BUDGET = 100_000  # elements in one loss evaluation (with conversion ~8 us each: 0.8 s)
GRADIENT_BUDGET = 30_000  # entries x elements per quantity: four losses each, ~0.4 s
_STEP = 1e-15
_AGREE = 1e-20


def _mp():
    import mpmath

    return mpmath


class MPNamespace:
    """The array functions a loss may use, on numpy object arrays of mpmath numbers.

    numpy's own operators, matmul, sum, max, where and comparisons work on object arrays; the
    transcendental functions map each element through mpmath.  A name not here is Unsupported,
    naming it, so the case says why it was not judged."""

    def __init__(self):
        mp = _mp()
        self._mp = mp
        for name, fn in (
            ("exp", mp.exp),
            ("log", mp.log),
            ("log1p", mp.log1p),
            ("expm1", mp.expm1),
            ("sqrt", mp.sqrt),
            ("tanh", mp.tanh),
            ("sinh", mp.sinh),
            ("cosh", mp.cosh),
            ("sin", mp.sin),
            ("cos", mp.cos),
            ("tan", mp.tan),
            ("atan", mp.atan),
            ("erf", mp.erf),
            ("real", mp.re),
            ("imag", mp.im),
            ("conj", mp.conj),
            ("sign", mp.sign),
        ):
            setattr(self, name, self._elementwise(fn))

    @staticmethod
    def _elementwise(fn):
        f = np.frompyfunc(fn, 1, 1)
        return lambda a: f(np.asarray(a, dtype=object))

    def __getattr__(self, name):
        raise Unsupported(
            f"the loss uses xp.{name}, which the multiprecision reference namespace lacks"
        )

    def asarray(self, a, dtype=None):
        return np.asarray(a, dtype=object)

    def astype(self, a, dtype, copy=True):
        return a  # one precision only: 60 digits

    def abs(self, a):
        return np.abs(a)

    def square(self, a):
        return a * a

    def sum(self, a, axis=None, keepdims=False):
        return np.sum(a, axis=axis, keepdims=keepdims, initial=self._mp.mpf(0))

    def mean(self, a, axis=None, keepdims=False):
        n = np.size(a) if axis is None else np.shape(a)[axis]
        return self.sum(a, axis, keepdims) / n

    def max(self, a, axis=None, keepdims=False):
        return np.max(a, axis=axis, keepdims=keepdims)

    def min(self, a, axis=None, keepdims=False):
        return np.min(a, axis=axis, keepdims=keepdims)

    def prod(self, a, axis=None, keepdims=False):
        return np.prod(a, axis=axis, keepdims=keepdims, initial=self._mp.mpf(1))

    def maximum(self, a, b):
        return np.where(np.asarray(a >= b), a, b)

    def minimum(self, a, b):
        return np.where(np.asarray(a <= b), a, b)

    def logaddexp(self, a, b):
        hi = self.maximum(a, b)
        return hi + self.log1p(self.exp(-np.abs(np.asarray(a - b, dtype=object))))

    def where(self, c, a, b):
        return np.where(c, a, b)

    def matmul(self, a, b):
        return np.matmul(a, b)

    def reshape(self, a, shape):
        return np.reshape(a, shape)

    def zeros_like(self, a, dtype=None):
        return np.full(np.shape(a), self._mp.mpf(0), dtype=object)

    def ones_like(self, a, dtype=None):
        return np.full(np.shape(a), self._mp.mpf(1), dtype=object)


def _to_mp(a: np.ndarray) -> np.ndarray:
    mp = _mp()
    if np.iscomplexobj(a):
        conv = np.frompyfunc(lambda z: mp.mpc(z.real, z.imag), 1, 1)
        return conv(np.asarray(a, dtype=np.complex128)).astype(object)
    return np.frompyfunc(mp.mpf, 1, 1)(np.asarray(a, dtype=np.float64)).astype(object)


def _loss(problem, A, x, xp):
    out = problem.loss(A, x, xp)
    out = np.asarray(out, dtype=object)
    if out.shape != ():
        raise Unsupported(f"the loss of problem {problem.name} has shape {out.shape}, not ()")
    v = out[()]
    return _mp().re(v)


def _gradient(problem, A, x, xp, target, part):
    """(values, worst disagreement of the two steps) of d loss / d target, float64."""
    mp = _mp()
    arr = x if target == "x" else A
    out = np.zeros(arr.shape)
    worst = 0.0
    for idx in np.ndindex(*arr.shape):
        t0 = arr[idx]
        h = mp.mpf(_STEP) * max(1, abs(mp.re(t0) if part == "re" else mp.im(t0)))
        unit = 1 if part == "re" else mp.mpc(0, 1)

        def d(s, idx=idx, t0=t0, unit=unit):  # bound now: called within this iteration only
            B = arr.copy()
            B[idx] = t0 + unit * s
            hi = _loss(problem, *((A, B) if target == "x" else (B, x)), xp)
            B[idx] = t0 - unit * s
            lo = _loss(problem, *((A, B) if target == "x" else (B, x)), xp)
            return (hi - lo) / (2 * s)

        d1, d4 = d(h), d(h / 4)
        value = (16 * d4 - d1) / 15
        out[idx] = float(value)
        worst = max(worst, float(abs(d1 - d4)))
    return out, worst


def multiprecision_reference(problem, case, inputs):
    """The Reference of a problem without one of its own (see the module docstring)."""

    mp = _mp()
    di = info(case.dtype)
    if case.dtype not in problem.dtypes:
        raise Unsupported(f"problem {problem.name} is defined for {', '.join(problem.dtypes)}")
    if not (np.all(np.isfinite(inputs.A)) and np.all(np.isfinite(inputs.x))):
        raise Unsupported(
            f"problem {problem.name} has no reference of its own, and the multiprecision one "
            "is not defined at non-finite inputs"
        )
    size = int(np.size(inputs.A) + np.size(inputs.x))
    if size > LOSS_BUDGET:
        raise Unsupported(
            f"problem {problem.name} has no reference of its own; {size} input elements are "
            f"more than its multiprecision loss takes ({LOSS_BUDGET})"
        )
    xp = MPNamespace()
    values, missing = {}, {}
    with mp.workdps(DPS), np.errstate(all="ignore"):
        A, x = _to_mp(inputs.A), _to_mp(inputs.x)
        values["loss"] = np.float64(float(_loss(problem, A, x, xp)))
        a_parts = ("re", "im") if di.is_complex else ("re",)
        parts = {"grad_x": ("x", ("re",)), "grad_A": ("A", a_parts)}
        for q, (target, pieces) in parts.items():
            n_entries = int(np.size(inputs.x if target == "x" else inputs.A)) * len(pieces)
            if n_entries * max(size, 1) > GRADIENT_BUDGET:
                missing[q] = (
                    f"problem {problem.name} has no reference of its own, and {q} of a case this "
                    f"size ({n_entries} entries x {size} elements) is beyond the difference-"
                    f"quotient budget ({GRADIENT_BUDGET}); give the problem a reference"
                )
                continue
            got = [_gradient(problem, A, x, xp, target, p) for p in pieces]
            g = got[0][0] if len(got) == 1 else got[0][0] + 1j * got[1][0]
            norm = float(np.max(np.abs(g), initial=0.0))
            if max(w for _, w in got) > _AGREE * max(norm, abs(values["loss"]), 1e-300):
                missing[q] = (
                    f"the loss of problem {problem.name} is not smooth at the scale of the "
                    f"difference quotient here, so {q} has no reference"
                )
                continue
            values[q] = g
    scale = {q: np.full(np.shape(v), np.max(np.abs(v), initial=0.0)) for q, v in values.items()}
    under = {q: np.ones(np.shape(v)) for q, v in values.items()}
    return Reference(
        values=values,
        scale=scale,
        under=under,
        sigma=None,
        sigma_prime=None,
        back=None,
        back_abs=None,
        x=np.asarray(inputs.x, dtype=np.float64),
        confidence=f"mpmath at {DPS} digits: the problem's loss, gradients by differences of it",
        missing=missing,
    )
