"""A reverse-mode tape whose derivative rules are written in its own operations.

Each ``Var`` holds a value in the current arithmetic (binary128 for the reference, an emulated
dtype for the tolerance) and the rules that pull a cotangent back to its parents.  The rules
build new ``Var``s, so the gradient is itself on the tape: a Hessian-vector product is the
gradient of <gradient, v> (reverse over reverse), and the same rules run in every arithmetic.

In the emulated arithmetics derivative rules take the form libraries use (tanh' = 1 - y^2,
sigmoid' = y (1 - y), exp' = y), so that the runs show the rounding error an honest library
implementation has; in the exact ones (binary128, arb) they take a form that does not cancel.
"""

from __future__ import annotations

import math

import numpy as np
from gradxval.judge.engine.arith import current, half_precision, opmath

__all__ = ["Var", "lift", "grad", "unbroadcast"]


class Var:
    """An array on the tape."""

    __slots__ = ("value", "parents")
    __array_priority__ = 1000.0  # numpy defers binary operators to Var's reflected ones
    __array_ufunc__ = None

    def __init__(self, value, parents=()):
        if not isinstance(value, np.ndarray):  # a reduction's scalar
            if hasattr(value, "dtype"):
                value = np.asarray(value)
            else:  # an arb ball from an object-array reduction
                box = np.empty((), dtype=object)
                box[()] = value
                value = box
        self.value = value
        self.parents = parents  # ((Var, rule), ...): rule(cotangent Var) -> Var for the parent

    # shape facts
    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def size(self) -> int:
        return self.value.size

    def __len__(self) -> int:
        return len(self.value)

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def T(self) -> Var:
        return transpose(self)

    @property
    def mT(self) -> Var:
        axes = list(range(self.ndim))
        axes[-2:] = axes[-1], axes[-2]
        return transpose(self, tuple(axes))

    def reshape(self, *shape) -> Var:
        return reshape(self, shape[0] if len(shape) == 1 else shape)

    def sum(self, axis=None, keepdims=False) -> Var:
        return sum_(self, axis, keepdims)

    def __repr__(self) -> str:
        return f"Var({self.value!r})"

    # arithmetic
    def __add__(self, o):
        return NotImplemented if _complex(o) else add(self, o)

    def __radd__(self, o):
        return NotImplemented if _complex(o) else add(o, self)

    def __sub__(self, o):
        return NotImplemented if _complex(o) else sub(self, o)

    def __rsub__(self, o):
        return NotImplemented if _complex(o) else sub(o, self)

    def __mul__(self, o):
        return NotImplemented if _complex(o) else mul(self, o)

    def __rmul__(self, o):
        return NotImplemented if _complex(o) else mul(o, self)

    def __truediv__(self, o):
        return NotImplemented if _complex(o) else div(self, o)

    def __rtruediv__(self, o):
        return NotImplemented if _complex(o) else div(o, self)

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self

    def __pow__(self, o):
        return power(self, o)

    def __rpow__(self, o):
        return power(o, self)

    def __matmul__(self, o):
        return NotImplemented if _complex(o) else matmul(self, o)

    def __rmatmul__(self, o):
        return NotImplemented if _complex(o) else matmul(o, self)

    def __getitem__(self, idx):
        return getitem(self, idx)

    # comparisons decide branches: they are logged, so that a run whose rounding took another
    # branch than the reference marks the case as near a kink
    def _compare(self, o, op):
        a, b = _val(self), _val(o)
        out = op(a, b)
        current().branch(out, a == b)
        return out

    def __gt__(self, o):
        return self._compare(o, np.greater)

    def __ge__(self, o):
        return self._compare(o, np.greater_equal)

    def __lt__(self, o):
        return self._compare(o, np.less)

    def __le__(self, o):
        return self._compare(o, np.less_equal)

    __hash__ = object.__hash__


def _complex(o) -> bool:
    """A complex operand (engine.complex.CVar): Var's operators leave it to CVar's."""
    return type(o).__name__ == "CVar"


def _val(a):
    return a.value if isinstance(a, Var) else current().const(a)


def lift(a) -> Var:
    """A constant (number, numpy array, or Var) as a Var of the current arithmetic."""
    if isinstance(a, Var):
        return a
    if _complex(a) or isinstance(a, complex) or np.iscomplexobj(a):
        raise TypeError(
            "this operation takes real arrays only; complex ones support "
            "+ - * / @, conj, real, imag, abs, sum, reshape, permute_dims, astype (engine.complex)"
        )
    return Var(current().const(a))


def _make(value, *pairs) -> Var:
    return Var(current().op(value), tuple((p, r) for p, r in pairs if isinstance(p, Var)))


def unbroadcast(g: Var, shape: tuple[int, ...]) -> Var:
    """Sum ``g`` down to ``shape`` (the adjoint of broadcasting)."""
    if g.shape == tuple(shape):
        return g
    ar = current()
    ar.in_transpose = True  # a variant may accumulate these sums differently (known_functions)
    try:
        lead = g.ndim - len(shape)
        if lead:
            g = sum_(g, tuple(range(lead)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        if axes:
            g = sum_(g, axes, keepdims=True)
    finally:
        ar.in_transpose = False
    return g


# ---------------------------------------------------------------- elementwise


def add(a, b) -> Var:
    a, b = lift(a), lift(b)
    return _make(
        a.value + b.value,
        (a, lambda g: unbroadcast(g, a.shape)),
        (b, lambda g: unbroadcast(g, b.shape)),
    )


def sub(a, b) -> Var:
    a, b = lift(a), lift(b)
    return _make(
        a.value - b.value,
        (a, lambda g: unbroadcast(g, a.shape)),
        (b, lambda g: unbroadcast(-g, b.shape)),
    )


def mul(a, b) -> Var:
    a, b = lift(a), lift(b)
    return _make(
        a.value * b.value,
        (a, lambda g: unbroadcast(g * b, a.shape)),
        (b, lambda g: unbroadcast(g * a, b.shape)),
    )


def fma(a, b, c) -> Var:
    """a * b + c rounded once: a fused multiply-add, as vectorized CPU kernels compute it."""
    a, b, c = lift(a), lift(b), lift(c)
    fused = getattr(current(), "fused", None)  # float64 storage: the product in binary128
    return _make(
        fused(a.value, b.value, c.value) if fused else a.value * b.value + c.value,
        (a, lambda g: unbroadcast(g * b, a.shape)),
        (b, lambda g: unbroadcast(g * a, b.shape)),
        (c, lambda g: unbroadcast(g, c.shape)),
    )


def div(a, b) -> Var:
    a, b = lift(a), lift(b)
    out = _make(a.value / b.value)
    if "jax_div_rule" in current().variants:
        # jax's JVP for the divisor is (-t * a) * integer_pow(b, -2), which XLA lowers as
        # 1 / (b * b): b * b overflows float16 where the quotient's derivative is in range.
        # jax's VJP is that rule transposed, -((g * b**-2) * a); written so, this rule run
        # transposed (the engine's forward mode) is the JVP's order again, where -t * a can
        # overflow before the product with 1 / inf = 0 makes it NaN
        rule_b = lambda g: unbroadcast(-((g * (1.0 / (b * b))) * a), b.shape)  # noqa: E731
    elif "autograd_div_rule" in current().variants:
        # autograd's VJP for the divisor, -g * x / y**2: g * x and y**2 overflow (or y**2
        # underflows) where the quotient's derivative is in range (known_functions)
        rule_b = lambda g: unbroadcast(-(g * a) / (b * b), b.shape)  # noqa: E731
    else:
        rule_b = lambda g: unbroadcast(-(g * out) / b, b.shape)  # noqa: E731
    out.parents = ((a, lambda g: unbroadcast(g / b, a.shape)), (b, rule_b))
    return out


def xlogy(a, b) -> Var:
    """x log y, 0 where x == 0; derivatives log y and x / y, as libraries define them (so
    where y underflows to 0 an honest evaluation meets the singularity they meet)."""
    a, b = lift(a), lift(b)
    zero = current().const(0.0)
    safe = np.where(a.value == zero, current().const(1.0), b.value)
    value = np.where(a.value == zero, zero, a.value * np.log(safe))
    if "jax_xlogy_rule" in current().variants:
        # jax's JVP in y is (y_dot * x) / y; its transpose divides the cotangent by y first,
        # (g / y) * x, and g / y overflows float16 for y < 1.5e-5 where x / y is 1
        rule_b = lambda g: unbroadcast((g / b) * a, b.shape)  # noqa: E731
    else:
        rule_b = lambda g: unbroadcast(g * a / b, b.shape)  # noqa: E731
    return _make(value, (a, lambda g: unbroadcast(g * log(b), a.shape)), (b, rule_b))


def neg(a) -> Var:
    a = lift(a)
    return Var(-a.value, ((a, lambda g: -g),))


def power(a, b) -> Var:
    if not isinstance(b, Var) and np.ndim(b) == 0:  # x ** c: the common case
        c = float(b)
        a = lift(a)
        if c == 2.0:
            return mul(a, a)
        return _make(a.value ** current().const(c), (a, lambda g: g * (c * a ** (c - 1.0))))
    a, b = lift(a), lift(b)
    out = _make(a.value**b.value)
    out.parents = (
        (a, lambda g: unbroadcast(g * b * a ** (b - 1.0), a.shape)),
        (b, lambda g: unbroadcast(g * out * log(a), b.shape)),
    )
    return out


def _unary(value, a: Var, rule) -> Var:
    out = _make(value)
    out.parents = ((a, lambda g: rule(g, out)),)
    return out


def exp(a) -> Var:
    a = lift(a)
    return _unary(np.exp(a.value), a, lambda g, y: g * y)


def expm1(a) -> Var:
    a = lift(a)
    if current().exact:  # y + 1 cancels for x < -78 in binary128; exp(x) does not
        return _unary(np.expm1(a.value), a, lambda g, y: g * exp(a))
    return _unary(np.expm1(a.value), a, lambda g, y: g * (y + 1.0))


def log(a) -> Var:
    a = lift(a)
    return _unary(np.log(a.value), a, lambda g, y: g / a)


def log1p(a) -> Var:
    a = lift(a)
    return _unary(np.log1p(a.value), a, lambda g, y: g / (a + 1.0))


def sqrt(a) -> Var:
    a = lift(a)
    return _unary(np.sqrt(a.value), a, lambda g, y: g / (y * 2.0))


def tanh(a) -> Var:
    a = lift(a)
    if current().exact:
        # the reference: 1 - y^2 cancels to 0 where tanh rounds to +-1 (|x| > 40 in binary128),
        # 1 / cosh^2 does not
        return _unary(np.tanh(a.value), a, lambda g, y: g / (cosh(a) * cosh(a)))
    if "jax_tanh_rule" in current().variants:
        # jax's transposed JVP (g + g y)(1 - y): u = g (1 - y) and u y are added to the input's
        # cotangent one after the other, so they absorb what else it holds (known_functions)
        out = _make(np.tanh(a.value))
        u = {}

        def first(g):
            u[id(g)] = g * (1.0 - out)
            return u[id(g)]

        def second(g):
            return u.pop(id(g)) * out

        # jax computes tanh before what follows it, so its transpose reaches these two terms
        # last: they are added after the input's other cotangents (grad's "late" rules)
        first.late = second.late = True
        out.parents = ((a, first), (a, second))
        return out
    return _unary(np.tanh(a.value), a, lambda g, y: g * (1.0 - y * y))


def cosh(a) -> Var:
    a = lift(a)
    return _unary(np.cosh(a.value), a, lambda g, y: g * sinh(a))


def sinh(a) -> Var:
    a = lift(a)
    return _unary(np.sinh(a.value), a, lambda g, y: g * cosh(a))


def sin(a) -> Var:
    a = lift(a)
    return _unary(np.sin(a.value), a, lambda g, y: g * cos(a))


def cos(a) -> Var:
    a = lift(a)
    return _unary(np.cos(a.value), a, lambda g, y: -(g * sin(a)))


def sigmoid(a) -> Var:
    a = lift(a)
    one = current().const(1.0)
    # 1 / (1 + exp(-x)) is accurate in binary128 everywhere but where exp(-x) overflows it
    # (x < -11355), and there it gives the right 0
    if current().exact:
        # the reference: sigma(x) sigma(-x), where y (1 - y) cancels for x > 78 in binary128
        return _unary(one / (one + np.exp(-a.value)), a, lambda g, y: g * (y * sigmoid(-a)))
    e = np.exp(-a.value)
    if "sigmoid_exp_overflow_in_dtype" in current().variants:
        # jax's float16 logistic: exp(-x) in float16, which overflows below x = -11.1, and
        # sigma is 1 / inf = 0 where it is a representable subnormal
        e = current().op(e)
    elif "sigmoid_exp_overflow" in current().variants:
        # torch's and scipy's kernels: exp(-x) rounded to the type they compute in (float32
        # for float16 and bfloat16) first: 0 below x = -88.7 in float32
        with opmath():
            e = current().op(e)
    return _unary(one / (one + e), a, lambda g, y: g * (y * (1.0 - y)))


def softplus(a) -> Var:
    """log(1 + exp(x)), by logaddexp(0, x)."""
    a = lift(a)
    zero = current().const(0.0)
    if "softplus_threshold" in current().variants:
        # torch's softplus (threshold=20): x itself, derivative 1, where x > 20
        big = a.value > current().const(20.0)
        soft = _unary(current().logaddexp(zero, a.value), a, lambda g, y: g * sigmoid(a))
        return where(big, a, soft)
    if "logaddexp_rule" in current().variants:
        # the rule jax and autograd take (softplus = logaddexp(x, 0)): g * exp(x - y), where
        # x - y cancels for large x
        return _unary(current().logaddexp(zero, a.value), a, lambda g, y: g * exp(a - y))
    return _unary(current().logaddexp(zero, a.value), a, lambda g, y: g * sigmoid(a))


def logaddexp(a, b) -> Var:
    a, b = lift(a), lift(b)
    out = _make(current().logaddexp(a.value, b.value))
    out.parents = (
        (a, lambda g: unbroadcast(g * exp(a - out), a.shape)),
        (b, lambda g: unbroadcast(g * exp(b - out), b.shape)),
    )
    return out


def erf(a) -> Var:
    from gradxval.judge.engine.special import erf_values, two_over_sqrt_pi

    a = lift(a)
    return _unary(
        erf_values(a.value, current()), a, lambda g, y: g * (two_over_sqrt_pi() * exp(-(a * a)))
    )


def abs_(a) -> Var:
    a = lift(a)
    zero = current().const(0.0)
    s = a.value >= zero
    current().branch(s, a.value == zero)
    sign = current().const(np.where(s, 1.0, -1.0))
    return Var(np.abs(a.value), ((a, lambda g: g * sign),))


def maximum(a, b) -> Var:
    a, b = lift(a), lift(b)
    m = a.value >= b.value
    current().branch(m, a.value == b.value)
    return where(m, a, b)


def minimum(a, b) -> Var:
    a, b = lift(a), lift(b)
    m = a.value <= b.value
    current().branch(m, a.value == b.value)
    return where(m, a, b)


def where(cond, a, b) -> Var:
    cond = np.asarray(cond.value if isinstance(cond, Var) else cond, dtype=bool)
    a, b = lift(a), lift(b)
    zero = current().const(0.0)
    return Var(
        np.where(cond, a.value, b.value),
        (
            (a, lambda g: unbroadcast(where(cond, g, zero), a.shape)),
            (b, lambda g: unbroadcast(where(cond, zero, g), b.shape)),
        ),
    )


# ---------------------------------------------------------------- reductions and products


def _axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(ax % ndim for ax in axes)) if ndim else ()


def _expand_back(g: Var, shape, axes, keepdims: bool) -> Var:
    if not keepdims:
        kept = list(g.shape)
        for ax in axes:
            kept.insert(ax, 1)
        g = reshape(g, tuple(kept))
    return broadcast_to(g, shape)


def _overflow_inside(ar, absval, *operands) -> None:
    """A sum or product of finite operands whose terms leave the range: the result can be
    inf - inf = NaN, which the rounding's own inf check does not see (a float64 matmul of
    1e300-scale entries), so the run is marked as having overflowed here."""
    if ar.overflowed:
        return
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(absval)) and all(np.all(np.isfinite(o)) for o in operands):
            ar.overflowed = True


def sum_(a, axis=None, keepdims=False) -> Var:
    a = lift(a)
    axes = _axes(axis, a.ndim)
    n = math.prod(a.shape[ax] for ax in axes)
    ar = current()
    if a.value.size == 0:  # binary128's add has no identity for numpy: an empty sum is 0
        shape = np.sum(np.zeros(a.shape), axis=axes, keepdims=keepdims).shape
        return Var(
            ar.const(np.zeros(shape)), ((a, lambda g: _expand_back(g, a.shape, axes, keepdims)),)
        )
    value = np.sum(a.value, axis=axes, keepdims=keepdims)
    if not ar.exact and (n > 1 or "no_exact_ops" in ar.variants):
        absval = np.sum(np.abs(a.value), axis=axes, keepdims=keepdims)
        _overflow_inside(ar, absval, a.value)
        value = ar.reduced(value, n, absval, (a.value, axes))
    if not isinstance(value, np.ndarray):
        value = np.asarray(value, dtype=a.value.dtype)
    return Var(value, ((a, lambda g: _expand_back(g, a.shape, axes, keepdims)),))


def logsumexp(a, axis=-1, keepdims=False) -> Var:
    """log(sum(exp(a))) along ``axis``, one operation with the rule libraries use:
    g * exp(a - out), whose error grows with |out| (torch, jax and scipy all take it)."""
    a = lift(a)
    ar = current()
    axes = _axes(axis, a.ndim)
    if all(a.shape[i] for i in axes):
        m = np.max(a.value, axis=axes, keepdims=True)
    else:  # no terms: log 0 = -inf (softmax of nothing is nothing), with no max to shift by
        kept_shape = tuple(1 if i in axes else n for i, n in enumerate(a.shape))
        m = np.broadcast_to(ar.const(-np.inf), kept_shape).copy()
    if ar.exact:
        # the reference guards an infinite shift (the limit: +inf for an entry of +inf); the
        # honest runs do not, as log_softmax and cross_entropy kernels do not: x - max is
        # inf - inf = NaN there, an outcome an honest library may return
        m = np.where(np.isfinite(m.astype(np.float64)), m, ar.const(0.0))
    # the exact arithmetics, and float16 and bfloat16: the libraries compute those in float32
    # and round once (torch's and scipy's kernels; XLA keeps its upcast ops' excess precision),
    # which one faithful rounding of the whole models: float32's steps are far below half
    # precision's ulp, and rounding each of them would move an exact max + log(1) = max off
    # the grid
    whole = ar.exact or half_precision(ar) or not a.value.size
    if whole:
        if a.value.size:
            total = np.sum(np.exp(a.value - m), axis=axes, keepdims=True)
        else:  # binary128's add has no identity for numpy (sum_)
            total = np.broadcast_to(ar.const(0.0), m.shape).copy()
        kept = np.log(total) + m
    else:
        # float32 and float64: an honest run rounds each step as the libraries' kernels do
        # (x - max, exp, the sum, log, + max): the sum s's rounding is an absolute error of
        # about u in log(s), which a result much smaller than 1 (a confident cross-entropy,
        # log(1.06)) feels as many ulps; one faithful rounding of the whole showed no spread
        # there (a false alarm on torch's cross_entropy, 8.5 ulps against 7.8)
        terms = ar.op(np.exp(ar.op(a.value - m)))
        n = math.prod(a.shape[i] for i in axes)
        total = np.sum(terms, axis=axes, keepdims=True)
        if n > 1:
            total = ar.reduced(total, n, total, (terms, axes))  # terms >= 0: |sum| = sum
        kept = ar.op(ar.op(np.log(total)) + m)
    value = kept if keepdims else kept.reshape(np.squeeze(kept, axis=axes).shape)
    out = _make(np.asarray(value)) if whole else Var(np.asarray(value))
    out.parents = (
        (a, lambda g: _expand_back(g, a.shape, axes, keepdims)
         * exp(a - _expand_back(out, a.shape, axes, keepdims))),
    )  # fmt: skip
    return out


def mean(a, axis=None, keepdims=False) -> Var:
    a = lift(a)
    n = math.prod(a.shape[ax] for ax in _axes(axis, a.ndim))
    s = sum_(a, axis, keepdims)
    return s if n == 1 and "no_exact_ops" not in current().variants else s / float(n)


def max_(a, axis=None, keepdims=False) -> Var:
    a = lift(a)
    axes = _axes(axis, a.ndim)
    m = np.max(a.value, axis=axes, keepdims=True)
    hit = a.value == m
    count = np.sum(hit, axis=axes, keepdims=True)
    current().branch(np.argmax(hit.reshape(-1)) if not axes else hit, count > 1)
    weight = current().const(hit / count)  # ties share the cotangent (a kink, logged above)
    value = m if keepdims else np.squeeze(m, axis=axes) if axes else m.reshape(())
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
    return Var(value, ((a, lambda g: _expand_back(g, a.shape, axes, keepdims) * weight),))


def min_(a, axis=None, keepdims=False) -> Var:
    return -max_(-lift(a), axis, keepdims)


def _mm(x, y):
    """x @ y for 1-D or 2-D operands (quaddtype: contiguous 2-D copies only)."""
    xm = x.reshape(1, -1) if x.ndim == 1 else x
    ym = y.reshape(-1, 1) if y.ndim == 1 else y
    if 0 in xm.shape or 0 in ym.shape:  # quaddtype's BLAS fails on empty operands
        out = np.zeros((xm.shape[0], ym.shape[1]), dtype=np.float64).astype(x.dtype)
    else:
        out = np.matmul(np.ascontiguousarray(xm), np.ascontiguousarray(ym))
    if x.ndim == 1:
        out = out[0]
    if y.ndim == 1:
        out = out[..., 0]
    return out


def _matmul_value(x, y):
    if x.ndim <= 2 and y.ndim <= 2:
        return _mm(x, y)
    shape = np.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    xb = np.broadcast_to(x, shape + x.shape[-2:])
    yb = np.broadcast_to(y, shape + y.shape[-2:])
    out = [_mm(xb[i], yb[i]) for i in np.ndindex(*shape)]
    res = np.empty(shape + out[0].shape if out else shape + (x.shape[-2], y.shape[-1]), x.dtype)
    for i, o in zip(np.ndindex(*shape), out, strict=True):
        res[i] = o
    return res


def matmul(a, b) -> Var:
    a, b = lift(a), lift(b)
    ar = current()
    value = _matmul_value(a.value, b.value)
    n = a.shape[-1] if a.ndim else 1
    if not ar.exact:
        absval = _matmul_value(np.abs(a.value), np.abs(b.value))
        _overflow_inside(ar, absval, a.value, b.value)
        value = ar.reduced(value, n, absval)
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)

    def rule_a(g):
        if b.ndim == 1:
            ga = g[..., None] * b if a.ndim > 1 else g * b
        else:
            ga = (
                matmul(g if a.ndim > 1 else reshape(g, (1,) + g.shape), b.mT)
                if g.ndim >= 1
                else g * b
            )
            if a.ndim == 1:
                ga = (
                    reshape(ga, ga.shape[-1:])
                    if ga.ndim == 2
                    else sum_(ga, tuple(range(ga.ndim - 1)))
                )
        return unbroadcast(ga, a.shape)

    def rule_b(g):
        if a.ndim == 1:
            gb = a[:, None] * (g if b.ndim == 1 else g[..., None, :]) if b.ndim > 1 else g * a
        else:
            gg = g if b.ndim > 1 else g[..., None]
            gb = matmul(a.mT, gg)
            if b.ndim == 1:
                gb = gb[..., 0]
        return unbroadcast(gb, b.shape)

    return Var(value, ((a, rule_a), (b, rule_b)))


# ---------------------------------------------------------------- shapes and indexing


def reshape(a, shape) -> Var:
    a = lift(a)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return Var(a.value.reshape(shape), ((a, lambda g: reshape(g, a.shape)),))


def transpose(a, axes=None) -> Var:
    a = lift(a)
    axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(ax % a.ndim for ax in axes)
    inverse = tuple(np.argsort(axes))
    return Var(np.transpose(a.value, axes), ((a, lambda g: transpose(g, inverse)),))


def broadcast_to(a, shape) -> Var:
    a = lift(a)
    shape = tuple(shape)
    if a.shape == shape:
        return a
    return Var(np.broadcast_to(a.value, shape), ((a, lambda g: unbroadcast(g, a.shape)),))


def expand_dims(a, axis: int) -> Var:
    a = lift(a)
    return reshape(a, np.expand_dims(a.value, axis).shape)


def _plain_index(idx):
    if isinstance(idx, tuple):
        return tuple(_plain_index(i) for i in idx)
    if isinstance(idx, Var):
        raise TypeError("an index must be integers or slices, not a differentiable array")
    return idx


def getitem(a, idx) -> Var:
    a = lift(a)
    idx = _plain_index(idx)
    return Var(np.asarray(a.value[idx]), ((a, lambda g: scatter(g, idx, a.shape)),))


def scatter(g, idx, shape) -> Var:
    """Zeros of ``shape`` with ``g`` added at ``idx`` (repeated indices accumulate)."""
    g = lift(g)
    ar = current()
    out = np.zeros(shape, dtype=g.value.dtype) if ar.exact else np.zeros(shape)
    if ar.exact:
        out = ar.const(out)
    np.add.at(out, idx, g.value)
    return Var(out, ((g, lambda h: getitem(h, idx)),))


def take_along_axis(a, indices, axis: int) -> Var:
    a = lift(a)
    indices = np.asarray(indices)
    axis = axis % a.ndim
    idx = tuple(
        indices
        if d == axis
        else np.arange(a.shape[d]).reshape([-1 if k == d else 1 for k in range(a.ndim)])
        for d in range(a.ndim)
    )
    return getitem(a, idx)


def concat(arrays, axis: int = 0) -> Var:
    arrays = [lift(x) for x in arrays]
    value = np.concatenate([x.value for x in arrays], axis=axis)
    bounds = np.cumsum([0] + [x.shape[axis] for x in arrays])
    pairs = []
    for x, lo, hi in zip(arrays, bounds[:-1], bounds[1:], strict=True):
        sl = tuple(
            slice(lo, hi) if d == axis % value.ndim else slice(None) for d in range(value.ndim)
        )
        pairs.append((x, lambda g, sl=sl: getitem(g, sl)))
    return Var(value, tuple(pairs))


def stack(arrays, axis: int = 0) -> Var:
    return concat([expand_dims(lift(x), axis) for x in arrays], axis)


# ---------------------------------------------------------------- differentiation


def _order(out: Var) -> list[Var]:
    seen: set[int] = set()
    order: list[Var] = []
    stack_ = [(out, False)]
    while stack_:
        v, done = stack_.pop()
        if done:
            order.append(v)
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        stack_.append((v, True))
        for p, _ in v.parents:
            if id(p) not in seen:
                stack_.append((p, False))
    return order


def grad(out: Var, leaves: dict[str, Var], cotangent=None) -> dict[str, Var]:
    """The gradient of ``out`` (a scalar, or contracted with ``cotangent``) for each leaf, as
    Vars on the tape (so that it can be differentiated again)."""
    adj: dict[int, Var] = {id(out): lift(1.0 if cotangent is None else cotangent)}
    if out.shape and cotangent is None:
        raise ValueError(f"the function returned shape {out.shape}; a scalar is needed")
    late: dict[int, list] = {}  # contributions added after the others (a library's order)

    def fold(key):
        for c in late.pop(key, ()):
            prev = adj.get(key)
            adj[key] = c if prev is None else add(prev, c)
        return adj.get(key)

    for v in reversed(_order(out)):
        g = fold(id(v))
        if g is None:
            continue
        for p, rule in v.parents:
            c = rule(g)
            if getattr(rule, "late", False):
                late.setdefault(id(p), []).append(c)
                continue
            prev = adj.get(id(p))
            adj[id(p)] = c if prev is None else add(prev, c)
    for leaf in leaves.values():
        fold(id(leaf))
    zero = current().const(0.0)
    return {
        name: adj[id(leaf)] if id(leaf) in adj else Var(np.broadcast_to(zero, leaf.shape).copy())
        for name, leaf in leaves.items()
    }
