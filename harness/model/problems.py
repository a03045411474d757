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
from gradxval.model.functions import Function, Input
from gradxval.numerics import round_to

__all__ = [
    "stable_sigmoid_pair",
    "closed_form",
    "loss_from_sigmoid",
    "QUANTITIES",
    "SECOND_ORDER",
    "ORDERS",
    "parse_order",
    "closed_form_hvp",
    "Activation",
    "Problem",
    "ActivationProblem",
    "PROBLEMS",
    "DEFAULT_PROBLEM",
    "load_problem",
    "known_problems",
    "PROBLEM_ENTRY_POINT_GROUP",
]

QUANTITIES = ("loss", "grad_x", "grad_A")  # first order
SECOND_ORDER = ("hvp_x",)  # the Hessian with respect to x applied to the case's direction v
ORDERS = {"1": QUANTITIES, "2": SECOND_ORDER, "all": QUANTITIES + SECOND_ORDER}


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
        grad_A = z[:, None] * sc[None, :]
    else:
        grad_A = _matmul(xp, z, sc.T)
    if type(grad_A) is np.ndarray:  # the same 2 * (...) in place: no second full-size array
        grad_A *= 2
    else:  # immutable arrays (jax) and autodiff tracers
        grad_A = 2 * grad_A
    return loss, grad_x, grad_A


def closed_form_hvp(A, x, v, xp, triple):
    """Return H v, the Hessian of ||A phi(x)||^2 with respect to x applied to v, in ``xp``.

    H v = 2 phi'' * Re(A^H A phi) * v + 2 phi' * Re(A^H A (phi' * v)), with
    (phi, phi', phi'') = triple(x, xp).  For a batch x (n, k) each column is its own problem.
    """
    s, sp, spp = triple(x, xp)
    cplx = _is_complex(A)

    def normal(t):  # Re(A^H A t) for real t
        if cplx:
            z = _matmul(xp, A, _cast(xp, t, A.dtype))
            return xp.real(_matmul(xp, xp.conj(A).T, z))
        return _matmul(xp, A.T, _matmul(xp, A, t))

    return 2 * spp * normal(s) * v + 2 * sp * normal(sp * v)


def parse_order(spec) -> tuple[str, ...]:
    """'1' (the default), '2' or 'all' -> the quantities to judge."""
    from gradxval.errors import expected

    key = "1" if spec is None else str(spec)
    if key not in ORDERS:
        raise expected("order", spec, list(ORDERS))
    return ORDERS[key]


# ---------------------------------------------------------------------------------------------
# Problems: f(A, x) = ||A phi(x)||^2 is one family; each member is one Activation.


@dataclass(frozen=True)
class Activation:
    """An elementwise phi with its derivative, in every form the harness needs.

    pair(x, xp)    accurate (phi, phi') in an array namespace: the closed-form method
    library(x, xp) phi as a careful user writes it from xp, where a backend has no nn_op
    plain(x)       accurate (phi, phi') in float64 numpy
    mp(t)          (phi, phi') of an mpmath number t, for the float64 reference
    at_inf         (phi(+inf), phi'(+inf), phi(-inf), phi'(-inf))
    cancelled      derivative formulas from y = fl(phi(x)) that lose accuracy (autodiff rules
                   such as sigma(1 - sigma)); the known-registry evidence tries them
    second(x, xp)  accurate phi'' in an array namespace, written without cancellation
    mp2(t)         phi'' of an mpmath number t (phi''(+-inf) is 0 for every built-in phi)
    cancelled2     second-derivative formulas from y = fl(phi(x)) that lose accuracy, as
                   (phi', phi'') pairs of functions of (y, dtype): the autodiff rules' own
    dd(x, second)  [(phi_hi, phi_lo), (phi'_hi, phi'_lo)(, phi'')] as double-doubles for a float64
                   array with |x| <= dd_range, vectorised (mp per element is the fallback)
    """

    name: str
    pair: Callable
    library: Callable
    plain: Callable
    mp: Callable
    at_inf: tuple
    cancelled: tuple = ()
    ulps: int = 2  # how far the library phi may be from correctly rounded, for the evidence
    second: Callable | None = None
    mp2: Callable | None = None
    cancelled2: tuple = ()
    dd: Callable | None = None
    dd_range: float = 0.0
    nn_op: str = ""  # the library operation of model.nn that computes phi (what autodiff sees)

    def triple(self, x, xp):
        """(phi, phi', phi'') accurate in ``xp``."""
        p, dp = self.pair(x, xp)
        return p, dp, self.second(x, xp)


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

    def hvp_closed_form(self, A, x, v, xp):
        """H v, the Hessian with respect to x applied to v (second order); None: not defined."""
        return None

    def autodiff_loss(self, nn=None):
        """The loss autodiff differentiates, fn(A, x, xp): ``loss`` here; ActivationProblem
        puts the framework's own phi in, from its ``nn`` namespace."""
        return self.loss

    # reference(case, inputs, second_order=False) -> Reference, where a problem has a
    # high-precision definition of its own; None: gradxval.judge.problem_reference decides
    # (the ||A phi(x)||^2 reference for ActivationProblem, else the problem's loss in mpmath).
    reference = None

    def tolerance_u(
        self, quantity: str, m: int, n: int, k: int | None, dtype: str | None = None
    ) -> float:
        from gradxval.model.tolerance import tolerance_u

        return tolerance_u(quantity, m, n, k, dtype)


def seed_function(activation: Activation, complex_A: bool = False) -> Function:
    """||A phi(x)||^2 as a declared function (``gradxval check``'s sq_norm_a_<op>): its body is
    the one loss every backend differentiates, phi taken from the backend's ``nn``; its
    formula is the closed form.  The run's cases give x of shape (n,) or (n, k), and A may be
    complex in any of them; ``complex_A`` declares A complex for ``gradxval check``
    (sq_norm_complex_a_<op>, checked in complex64 and complex128)."""
    op = activation.nn_op

    def body(A, x, *, xp, nn):
        return loss_from_sigmoid(A, getattr(nn, op)(x), xp)

    def formula(A, x, *, xp, nn):
        loss, grad_x, grad_A = closed_form(A, x, xp, activation.pair)
        return {"loss": loss, "grad_A": grad_A, "grad_x": grad_x}

    doc = f"||A {op}(x)||^2, the seed family's {activation.name} member."
    body.__doc__ = formula.__doc__ = doc
    name = f"sq_norm_{'complex_' if complex_A else ''}a_{op}"
    inputs = {"A": Input("m n", complex=complex_A), "x": Input("n")}
    return Function(body, inputs, name, formula=formula)


class _CarefulNN:
    """phi from ``xp`` as a careful user writes it, for a backend with no nn of its own."""

    def __init__(self, activation: Activation, xp):
        setattr(self, activation.nn_op, lambda x: activation.library(x, xp))


class ActivationProblem(Problem):
    """f(A, x) = ||A phi(x)||^2 for an elementwise activation phi: a declared function (its
    body, ``function``) with the closed form, regimes and a double-double reference."""

    def __init__(self, activation: Activation):
        from gradxval.model.cases import REGIMES

        self.activation = activation
        self.name = activation.name
        self.regimes = REGIMES
        self.function = seed_function(activation)
        self.compile_closed_form = True  # jit-compiled where the backend compiles (jax)

    def loss(self, A, x, xp):
        return self.function.fn(A, x, xp=xp, nn=_CarefulNN(self.activation, xp))

    def closed_form(self, A, x, xp):
        return closed_form(A, x, xp, self.activation.pair)

    def hvp_closed_form(self, A, x, v, xp):
        return closed_form_hvp(A, x, v, xp, self.activation.triple)

    def autodiff_loss(self, nn=None):
        """f written with the framework's own function for phi (``nn.sigmoid``, ``nn.tanh``,
        ``nn.softplus``, ``nn.log_sigmoid`` of the backend's nn namespace), where it has one:
        that is where library derivative rules and their faults live (issue 13).  Otherwise
        phi as a careful user writes it."""
        if getattr(nn, self.activation.nn_op, None) is None:
            return self.loss
        # one function per nn: jit-compiling backends key their caches by it (nn namespaces
        # live as long as their backend module)
        cache = self.__dict__.setdefault("_losses", {})
        body = self.function.fn
        key = (id(nn), body)  # a replaced function is a new entry
        if key not in cache:
            cache[key] = lambda A, x, xp: body(A, x, xp=xp, nn=nn)
        return cache[key]

    def __repr__(self) -> str:
        return f"ActivationProblem({self.name!r})"


def _mp():
    import mpmath

    return mpmath


def _logistic_mp(t):
    mp = _mp()
    s = 1 / (1 + mp.exp(-t))
    return s, (s * (1 - s) if t < 0 else mp.exp(-t) * s * s)


def _logistic_second(x, xp):
    # sigma'' = sigma'(1 - 2 sigma) = -sigma' tanh(x/2): 1 - 2 sigma cancels near 0 and
    # sigma(1 - sigma) for |x| large; sigma(x) sigma(-x) and tanh keep full relative accuracy
    s, s_neg = stable_sigmoid_pair(x, xp)
    return -(s * s_neg) * xp.tanh(x / 2)


def _logistic_mp2(t):
    mp = _mp()
    return -_logistic_mp(t)[1] * mp.tanh(t / 2)


def _logistic_dd(x, second=False):
    """sigma, sigma' (and sigma'') in double-double from e = exp(-|x|), with no cancellation:
    sigma(|x|) = 1 / (1 + e), sigma(-|x|) = e / (1 + e), sigma' = e / (1 + e)^2 and
    sigma'' = -sigma' sign(x) tanh(|x| / 2), tanh(|x| / 2) = -expm1(-|x|) / (1 + e)."""
    from gradxval.numerics import dd_add, dd_div, dd_exp, dd_mul

    em1, e = dd_exp(-np.abs(x))
    d = dd_add(*e, 1.0, 0.0)
    big = dd_div(1.0, 0.0, *d)
    small = dd_div(*e, *d)
    pos = x >= 0
    s = (np.where(pos, big[0], small[0]), np.where(pos, big[1], small[1]))
    sp = dd_div(*small, *d)
    out = [s, sp]
    if second:
        th = dd_div(-em1[0], -em1[1], *d)
        sign = np.where(pos, -1.0, 1.0)
        spp = dd_mul(*sp, *th)
        out.append((sign * spp[0], sign * spp[1]))
    return out


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


def _tanh_dd(x, second=False):
    """tanh and sech^2 (and -2 tanh sech^2) in double-double from e = exp(-2|x|):
    tanh |x| = -expm1(-2|x|) / (1 + e), sech^2 = 4 e / (1 + e)^2."""
    from gradxval.numerics import dd_add, dd_div, dd_exp, dd_mul

    em1, e = dd_exp(-2 * np.abs(x))
    d = dd_add(*e, 1.0, 0.0)
    th = dd_div(-em1[0], -em1[1], *d)
    sign = np.where(x >= 0, 1.0, -1.0)
    y = (sign * th[0], sign * th[1])
    sech2 = dd_div(*dd_div(4 * e[0], 4 * e[1], *d), *d)
    out = [y, sech2]
    if second:
        p = dd_mul(*y, *sech2)
        out.append((-2 * p[0], -2 * p[1]))
    return out


def _tanh_second(x, xp):
    # (sech^2)' = -2 tanh sech^2: a product, no cancellation
    y, d = _tanh_pair(x, xp)
    return -2 * y * d


def _tanh_mp2(t):
    mp = _mp()
    return -2 * mp.tanh(t) / mp.cosh(t) ** 2


def _softplus_pair(x, xp):
    s, _ = stable_sigmoid_pair(x, xp)
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow
    return xp.where(x > 0, x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x))), s


def _softplus_mp(t):
    mp = _mp()
    return mp.log1p(mp.exp(t)), 1 / (1 + mp.exp(-t))


def _softplus_second(x, xp):
    # softplus'' = sigma' = sigma(x) sigma(-x)
    s, s_neg = stable_sigmoid_pair(x, xp)
    return s * s_neg


def _logsigmoid_second(x, xp):
    # logsigmoid' = sigma(-x), so logsigmoid'' = -sigma(x) sigma(-x)
    return -_softplus_second(x, xp)


def _sigma_prime_mp(t):
    return _logistic_mp(t)[1]


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
    from gradxval.numerics import two_prod

    p, e = two_prod(y, y)
    return _round((1 - p) - e, dt)


def _z_minus_one_times_z(y, dt):
    """fl(fl(z - 1) z), z = fl(1 / fl(1 + fl(exp(-x)))) as torch's sigmoid rounds it, from
    y = logsigmoid(x) (exp(-x) = expm1(-y)); in float16 and bfloat16 torch's sigmoid computes
    in float32 and rounds once, z = fl(sigmoid(x)) = fl(exp(y)) (1 + 2.5e-4 is 1 in float16,
    but sigma(8.3) = 0.99975 rounds to 1 - 2^-11: logsigmoid:saturated-float16-m12n253k5-
    s639273, phi'' twice the truth, bit for bit on all 1,265 elements)."""
    with np.errstate(all="ignore"):
        if np.dtype(dt).itemsize == 2:
            z = _round(_round(np.exp(y), np.float32), dt)
        else:
            z = _round(1 / _round(1 + _round(np.expm1(-y), dt), dt), dt)
    return _round(_round(z - 1, dt) * z, dt)


_round = round_to  # the cancelling rules below round each operation to the dtype


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
    second=_logistic_second,
    mp2=_logistic_mp2,
    dd=_logistic_dd,
    dd_range=650.0,  # exp(-650) and its low part stay normal
    cancelled2=(
        # the derivative of the VJP rule y (1 - y): y (1 - y) (1 - 2 y)
        (
            lambda y, dt: _round(y * _round(1 - y, dt), dt),
            lambda y, dt: _round(_round(y * _round(1 - y, dt), dt) * _round(1 - 2 * y, dt), dt),
        ),
    ),
    nn_op="sigmoid",
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
    second=_tanh_second,
    mp2=_tanh_mp2,
    dd=_tanh_dd,
    dd_range=325.0,
    cancelled2=(
        (
            lambda y, dt: _round(1 - _round(y * y, dt), dt),
            lambda y, dt: _round(-2 * y * _round(1 - _round(y * y, dt), dt), dt),
        ),
    ),
    nn_op="tanh",
)
SOFTPLUS = Activation(
    "softplus",
    _softplus_pair,
    _softplus_library,
    lambda x: _softplus_pair(x, np),
    _softplus_mp,
    (np.inf, 1.0, 0.0, 0.0),
    second=_softplus_second,
    mp2=_sigma_prime_mp,
    nn_op="softplus",
)
LOGSIGMOID = Activation(
    "logsigmoid",
    _logsigmoid_pair,
    lambda x, xp: -_softplus_library(-x, xp),
    lambda x: _logsigmoid_pair(x, np),
    _logsigmoid_mp,
    (0.0, 0.0, -np.inf, 1.0),
    second=_logsigmoid_second,
    mp2=lambda t: -_sigma_prime_mp(t),
    cancelled2=(
        # torch's log_sigmoid_double_backward: (z - 1) z with z = sigmoid(x) = 1 / (1 + e),
        # e = exp(-x) = expm1(-y), after an accurate first derivative sigma(-x) = -expm1(y)
        # (pytorch issue 195530)
        (lambda y, dt: _round(-np.expm1(y), dt), lambda y, dt: _z_minus_one_times_z(y, dt)),
    ),
    nn_op="log_sigmoid",
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

    from gradxval.errors import UsageError, expected

    if name in PROBLEMS:
        return PROBLEMS[name]
    target = _problem_plugins().get(name, name if ":" in name else None)
    if target is None:
        raise expected("problem", name, [*known_problems(), "module:attribute"])
    module, _, attr = target.partition(":")
    try:
        if module.endswith(".py"):  # a case id names its problem: it must import by name
            from pathlib import Path

            path = Path(module)
            if not path.is_file():
                raise UsageError(f"problem {name!r}: no file {module}")
            raise UsageError(
                f"problem {name!r}: give a module, not a file: PYTHONPATH={path.parent} "
                f"gradxval run --problems {path.stem}:{attr}"
            )
        mod = importlib.import_module(module)
        obj = getattr(mod, attr)
    except UsageError:
        raise
    except SyntaxError as exc:
        raise UsageError(
            f"problem {name!r}: syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}"
        ) from None
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"problem {name!r}: no module {exc.name!r} on the path "
            "(PYTHONPATH, or give FILE.py:NAME)"
        ) from None
    except AttributeError:
        raise UsageError(f"problem {name!r}: {module} has no attribute {attr!r}") from None
    except Exception as exc:
        raise UsageError(
            f"problem {name!r}: importing {module} raised {type(exc).__name__}: {exc}"
        ) from None
    return obj() if isinstance(obj, type) else obj


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


def domains(problems, dtypes, regimes) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """problem -> (dtypes, regimes) to sample it in: what it declares (Problem.dtypes and
    Problem.regimes; none declared is every one), narrowed by what was asked for.  A problem
    left with none is a usage error naming what it declares."""
    from gradxval.errors import UsageError
    from gradxval.model.cases import REGIMES

    out = {}
    for name in problems:
        p = load_problem(name)
        own_d = tuple(getattr(p, "dtypes", ()) or dtypes)
        own_r = tuple(getattr(p, "regimes", ()) or REGIMES)
        ds = tuple(d for d in dtypes if d in own_d)
        rs = tuple(r for r in regimes if r in own_r)
        for what, got, declared, asked in (
            ("dtypes", ds, own_d, dtypes),
            ("regimes", rs, own_r, regimes),
        ):
            if not got:
                raise UsageError(
                    f"problem {name} declares {what} {', '.join(declared)}; none of "
                    f"{', '.join(asked)} asked for"
                )
        out[name] = (ds, rs)
    return out
