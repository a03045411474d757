"""The loss f(A, x) = sum |A sigma(x)|^2 and its closed-form gradients, for any array namespace.

Written once against the array API (numpy, torch and jax namespaces via array-api-compat, or
autograd.numpy) so that every backend evaluates the closed form with its own ops.

Complex convention: A may be complex, x is real.  Gradients follow torch's convention,
dL/dA = dL/dRe(A) + i dL/dIm(A), the direction of steepest ascent; for this loss it is
2 (A s) s^T.  jax.grad and autograd return its conjugate; backends conjugate to this convention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

__all__ = [
    "stable_sigmoid_pair",
    "closed_form",
    "loss_from_sigmoid",
    "QUANTITIES",
    "Activation",
    "Problem",
    "ActivationProblem",
    "PROBLEMS",
    "DEFAULT_PROBLEM",
    "load_problem",
    "known_problems",
    "PROBLEM_ENTRY_POINT_GROUP",
    "reference_for",
]

QUANTITIES = ("loss", "grad_x", "grad_A")


def _is_complex(a) -> bool:
    return "complex" in str(a.dtype)


def _cast(xp, a, dtype):
    if a.dtype == dtype:
        return a
    return xp.astype(a, dtype) if hasattr(xp, "astype") else a.astype(dtype)


def _matmul(xp, a, b):
    # ml_dtypes' bfloat16 matmul returns float32 (accumulated in float32); keep the case dtype
    return _cast(xp, a @ b, a.dtype)


def stable_sigmoid_pair(x, xp):
    """Return (sigma(x), sigma(-x)) without overflow; their product is sigma', accurate.

    sigma(x)(1 - sigma(x)) cancels to 0 for x > ~17 (float32) where the true value is ~exp(-x).
    """
    e = xp.exp(-xp.abs(x))
    d = 1 + e
    big, small = 1 / d, e / d
    pos = x >= 0
    return xp.where(pos, big, small), xp.where(pos, small, big)


def loss_from_sigmoid(A, s, xp):
    """sum |A s|^2 for a precomputed s = sigma(x); autodiff-friendly (no abs at 0)."""
    if _is_complex(A):
        z = _matmul(xp, A, _cast(xp, s, A.dtype))
        return xp.sum(xp.real(z * xp.conj(z)))
    z = _matmul(xp, A, s)
    return xp.sum(z * z)


def _logistic_pair(x, xp):
    s, s_neg = stable_sigmoid_pair(x, xp)
    return s, s * s_neg


def closed_form(A, x, xp, pair=_logistic_pair):
    """Return (loss, grad_x, grad_A) by the closed forms, in the namespace ``xp``.

    grad_x = 2 phi'(x) * Re(A^H A phi(x)),  grad_A = 2 (A phi(x)) phi(x)^T, with
    (phi, phi') = pair(x, xp); the logistic sigma and sigma(x) sigma(-x) by default.
    """
    s, sp = pair(x, xp)
    cplx = _is_complex(A)
    sc = _cast(xp, s, A.dtype) if cplx else s
    z = _matmul(xp, A, sc)
    if cplx:
        loss = xp.sum(xp.real(z * xp.conj(z)))
        back = xp.real(_matmul(xp, xp.conj(A).T, z))
    else:
        loss = xp.sum(z * z)
        back = _matmul(xp, A.T, z)
    grad_x = 2 * sp * back
    if x.ndim == 1:
        grad_A = 2 * (z[:, None] * sc[None, :])
    else:
        grad_A = 2 * _matmul(xp, z, sc.T)
    return loss, grad_x, grad_A


# ---------------------------------------------------------------------------------------------
# Problems: f(A, x) = ||A phi(x)||^2 is one family; each member is one Activation.


@dataclass(frozen=True)
class Activation:
    """An elementwise phi with its derivative, in every form the harness needs.

    pair(x, xp)    accurate (phi, phi') in an array namespace: the closed-form method
    library(x, xp) phi as a careful user writes it with library functions: what autodiff sees
    plain(x)       accurate (phi, phi') in float64 numpy
    mp(t)          (phi, phi') of an mpmath number t, for the float64 reference
    at_inf         (phi(+inf), phi'(+inf), phi(-inf), phi'(-inf))
    cancelled      derivative formulas from y = fl(phi(x)) that lose accuracy (autodiff rules
                   such as sigma(1 - sigma)); the known-registry evidence tries them
    """

    name: str
    pair: Callable
    library: Callable
    plain: Callable
    mp: Callable
    at_inf: tuple
    cancelled: tuple = ()
    ulps: int = 2  # how far the library phi may be from correctly rounded, for the evidence


class Problem:
    """A loss with its closed-form gradients, inputs, regimes, reference and tolerance.

    Subclasses implement ``loss`` (written with the array namespace ``xp``, differentiable in
    every framework) and ``closed_form``; ``reference`` and ``tolerance_u`` default to the
    ||A phi(x)||^2 machinery only in ActivationProblem.
    """

    name: str = ""
    regimes: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = (
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )

    def loss(self, A, x, xp):
        raise NotImplementedError

    def closed_form(self, A, x, xp):
        raise NotImplementedError

    def reference(self, case, inputs):
        """Without a high-precision definition: the float64 closed form, checked by the
        finite-difference witness and marked as lower confidence (see reference.py)."""
        from .reference import float64_reference

        return float64_reference(self, case, inputs)

    def tolerance_u(self, quantity: str, m: int, n: int, k: int | None) -> float:
        from .tolerance import tolerance_u

        return tolerance_u(quantity, m, n, k)


class ActivationProblem(Problem):
    """f(A, x) = ||A phi(x)||^2 for an elementwise activation phi."""

    def __init__(self, activation: Activation):
        from .cases import REGIMES

        self.activation = activation
        self.name = activation.name
        self.regimes = REGIMES

    def loss(self, A, x, xp):
        return loss_from_sigmoid(A, self.activation.library(x, xp), xp)

    def closed_form(self, A, x, xp):
        return closed_form(A, x, xp, self.activation.pair)

    def reference(self, case, inputs):
        from .reference import compute_reference

        return compute_reference(case, inputs, self.activation)

    def __repr__(self) -> str:
        return f"ActivationProblem({self.name!r})"


def _mp():
    import mpmath

    return mpmath


def _logistic_mp(t):
    mp = _mp()
    s = 1 / (1 + mp.exp(-t))
    return s, (s * (1 - s) if t < 0 else mp.exp(-t) * s * s)


def _logistic_plain(x):
    return _logistic_pair(x, np)


def _tanh_pair(x, xp):
    # sech^2 = 4 e / (1 + e)^2 with e = exp(-2|x|): no cancellation, no overflow
    e = xp.exp(-2 * xp.abs(x))
    d = 1 + e
    return xp.tanh(x), 4 * e / (d * d)


def _tanh_mp(t):
    mp = _mp()
    return mp.tanh(t), 1 / mp.cosh(t) ** 2


def _softplus_pair(x, xp):
    s, _ = stable_sigmoid_pair(x, xp)
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow
    return xp.where(x > 0, x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x))), s


def _softplus_mp(t):
    mp = _mp()
    return mp.log1p(mp.exp(t)), 1 / (1 + mp.exp(-t))


def _logsigmoid_pair(x, xp):
    _, s_neg = stable_sigmoid_pair(x, xp)
    return xp.where(x < 0, x, xp.zeros_like(x)) - xp.log1p(xp.exp(-xp.abs(x))), s_neg


def _logsigmoid_mp(t):
    mp = _mp()
    return -mp.log1p(mp.exp(-t)), 1 / (1 + mp.exp(t))


def _softplus_library(x, xp):
    return xp.logaddexp(x, xp.zeros_like(x))


def _one_minus_square_fused(y, dt):
    """1 - y^2 rounded once, as an fma computes it (y^2 split exactly by Dekker's product)."""
    from .numerics import two_prod

    p, e = two_prod(y, y)
    return _round((1 - p) - e, dt)


def _round(v, dt):
    with np.errstate(all="ignore"):
        return np.asarray(v).astype(dt).astype(np.float64)


LOGISTIC = Activation(
    "logistic",
    _logistic_pair,
    lambda x, xp: _library_sigmoid(x, xp),
    _logistic_plain,
    _logistic_mp,
    (1.0, 0.0, 0.0, 0.0),
    cancelled=(
        lambda y, dt: _round(y * _round(1 - y, dt), dt),  # y (1 - y)
        lambda y, dt: _round(y - _round(y * y, dt), dt),
    ),  # y - y^2
)
TANH = Activation(
    "tanh",
    _tanh_pair,
    lambda x, xp: xp.tanh(x),
    lambda x: _tanh_pair(x, np),
    _tanh_mp,
    (1.0, 0.0, -1.0, 0.0),
    cancelled=(
        lambda y, dt: _round(1 - _round(y * y, dt), dt),  # 1 - y*y
        lambda y, dt: _round(_round(1 - y, dt) * _round(1 + y, dt), dt),  # (1 - y)(1 + y)
        _one_minus_square_fused,  # fma(-y, y, 1): one rounding
    ),
    ulps=8,  # XLA's float64 tanh is 7 ulps below 1 at x = 19
)
SOFTPLUS = Activation(
    "softplus",
    _softplus_pair,
    _softplus_library,
    lambda x: _softplus_pair(x, np),
    _softplus_mp,
    (np.inf, 1.0, 0.0, 0.0),
)
LOGSIGMOID = Activation(
    "logsigmoid",
    _logsigmoid_pair,
    lambda x, xp: -_softplus_library(-x, xp),
    lambda x: _logsigmoid_pair(x, np),
    _logsigmoid_mp,
    (0.0, 0.0, -np.inf, 1.0),
)


def _library_sigmoid(x, xp):
    return 1 / (1 + xp.exp(-x))


DEFAULT_PROBLEM = "logistic"
PROBLEMS = {a.name: ActivationProblem(a) for a in (LOGISTIC, TANH, SOFTPLUS, LOGSIGMOID)}
PROBLEM_ENTRY_POINT_GROUP = "gradxval.problems"


@lru_cache(maxsize=1)
def _problem_plugins() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=PROBLEM_ENTRY_POINT_GROUP)}


def known_problems() -> list[str]:
    return [*PROBLEMS, *(n for n in _problem_plugins() if n not in PROBLEMS)]


@cache
def load_problem(name: str) -> Problem:
    """A built-in problem, a plug-in from the gradxval.problems group, or module:attribute."""
    import importlib

    from .errors import expected

    if name in PROBLEMS:
        return PROBLEMS[name]
    target = _problem_plugins().get(name, name if ":" in name else None)
    if target is None:
        raise expected("problem", name, [*known_problems(), "module:attribute"])
    module, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    return obj() if isinstance(obj, type) else obj


def reference_for(case, inputs):
    """The reference a case is judged against, from its problem (an unknown name lists the
    known ones)."""
    return load_problem(case.problem).reference(case, inputs)


def parse_problems(spec: str | None) -> tuple[str, ...]:
    """Parse 'tanh,softplus', 'module:attr' or 'all' (default: the seed problem); each name is
    loaded, so an unknown one is a usage error listing the known ones."""
    if not spec:
        return (DEFAULT_PROBLEM,)
    if spec == "all":
        names = tuple(known_problems())
    else:
        names = tuple(p.strip() for p in spec.split(",") if p.strip())
    for n in names:
        load_problem(n)
    return names or (DEFAULT_PROBLEM,)
