"""The engine's ``xp`` (the array-API subset declared functions may use) and ``nn``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from gradxval.judge.engine import tape as t
from gradxval.judge.engine.arith import current, half_precision, opmath
from gradxval.judge.engine.complex import CXP
from gradxval.model.nn import (
    OPS,
    cross_entropy_from,
    gelu_tanh_from,
    layer_norm_from,
    norm_from,
    rms_norm_from,
)

__all__ = ["XP", "NN"]


def _asarray(a, dtype=None, copy=None):
    return t.lift(a)


def _zeros_like(a, dtype=None):
    return t.lift(np.zeros(np.shape(a.value if isinstance(a, t.Var) else a)))


def _ones_like(a, dtype=None):
    return t.lift(np.ones(np.shape(a.value if isinstance(a, t.Var) else a)))


def _values(a):
    return a.value if isinstance(a, t.Var) else np.asarray(a)


XP = SimpleNamespace(
    asarray=_asarray,
    zeros_like=_zeros_like,
    ones_like=_ones_like,
    zeros=lambda shape, dtype=None: t.lift(np.zeros(shape)),
    ones=lambda shape, dtype=None: t.lift(np.ones(shape)),
    add=t.add,
    subtract=t.sub,
    multiply=t.mul,
    divide=t.div,
    negative=t.neg,
    pow=t.power,
    square=lambda a: t.mul(a, a),
    exp=t.exp,
    expm1=t.expm1,
    log=t.log,
    log1p=t.log1p,
    logaddexp=t.logaddexp,
    sqrt=t.sqrt,
    tanh=t.tanh,
    sin=t.sin,
    cos=t.cos,
    abs=t.abs_,
    maximum=t.maximum,
    minimum=t.minimum,
    where=t.where,
    sum=t.sum_,
    mean=t.mean,
    max=t.max_,
    min=t.min_,
    matmul=t.matmul,
    reshape=t.reshape,
    permute_dims=t.transpose,
    expand_dims=t.expand_dims,
    broadcast_to=t.broadcast_to,
    concat=t.concat,
    stack=t.stack,
    take_along_axis=t.take_along_axis,
    isfinite=lambda a: np.isfinite(_values(a).astype(np.float64)),
    isnan=lambda a: np.isnan(_values(a).astype(np.float64)),
    pi=float(np.pi),
    e=float(np.e),
)


# complex operands: these entries take CVar as well (engine/complex.py)
class _Namespace(SimpleNamespace):
    """A namespace whose missing names say what it has (a declared function's body uses
    only these: docs/functions.md)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        label = "nn" if "softmax" in vars(self) else "xp"
        have = ", ".join(sorted(k for k in vars(self) if not k.startswith("_")))
        raise AttributeError(f"{label} has no {name!r}; it has {have}")


XP = _Namespace(**{**vars(XP), **CXP})


def _lse(x, axis=-1, keepdims=False):
    return t.logsumexp(x, axis, keepdims)


def _log_softmax(x, axis=-1):
    """log_softmax as libraries compute it.  torch's kernel, jax.nn.log_softmax and
    scipy.special.log_softmax take (x - max) - log(s), s = sum exp(x - max), the max a
    constant; autograd, which has no log_softmax, takes x - logsumexp(x).  The same function,
    not the same roundings: at the largest entry x - max is exact and the result is -log(s)
    with s's rounding in it (a confident cross-entropy, -log(1.06), many ulps off), where the
    other rounds max + log(s), and its gradient's softmax is exp(x - lse) with |x| in the
    argument.  The honest runs take both (by run: the envelope pushed up and the run rounded
    to nearest the first, the envelope pushed down the second, the random runs either), so the
    tolerance covers each; the reference is exact either way."""
    x = t.lift(x)
    ax = axis % x.ndim if x.ndim else 0
    ar = current()
    if not x.ndim or not x.shape[ax] or _whole_form(ar):
        return x - _lse(x, axis, keepdims=True)
    m = np.max(x.value, axis=ax, keepdims=True)
    if ar.exact:  # as logsumexp's guard: an infinite max shifts by 0 (inf - inf is NaN anyway)
        m = np.where(np.isfinite(m.astype(np.float64)), m, ar.const(0.0))
    shifted = x - t.Var(m)
    return shifted - _lse(shifted, axis, keepdims=True)


def _whole_form(ar) -> bool:
    """Whether this honest run takes log_softmax as x - logsumexp(x) (chosen once per run)."""
    if ar.exact:
        return False
    form = getattr(ar, "whole_log_softmax", None)
    if form is None:
        sign = getattr(ar, "sign", 0.0)
        form = sign == -1.0 if sign is not None else bool(ar.rng.random() < 0.5)
        ar.whole_log_softmax = form
    return form


def _softmax(x, axis=-1):
    return t.exp(_log_softmax(x, axis))


_PLAIN_LAYER_NORM = layer_norm_from(XP)
# torch's forward-mode rule: d * rsqrt(var + eps), whose derivative -rsqrt^3 / 2 overflows
# float16 when var + eps < 2.4e-3 (known_functions)
_RSQRT_LAYER_NORM = layer_norm_from(XP, lambda d, v: d * t.power(v, -0.5))


def _torch_layer_norm_backward(x, weight, bias, eps):
    """LayerNorm whose reverse-mode rules are torch's CPU kernel's (layer_norm_kernel.cpp,
    layer_norm_backward_frame): the forward value as usual (its statistics are exact where
    the formula is), but the backward recomputes the normalized input as a * x + b with
    a = rstd and b = -a * mean, fused (the product a * x unrounded), rather than
    (x - mean) * rstd; and dx = a * dy * w + B * x + C with B = (db * mean - ds) a^3 / N,
    C = -B * mean - db * a / N.  Where x equals its mean (width 1) the exact normalized input
    is 0 and these leave a rounding residue, times dy (pytorch#188375: weight.grad 1.1e20 for
    an exact 0).  float16 and bfloat16 compute all of it in float32 and round the outputs."""
    low = half_precision()
    y = _PLAIN_LAYER_NORM(x, weight, bias, eps)
    n = x.shape[-1]
    w = t.lift(1.0) if weight is None else t.lift(weight)
    with opmath():
        mean = t.mean(x, -1, keepdims=True)
        d = x - mean
        a = 1.0 / t.sqrt(t.mean(d * d, -1, keepdims=True) + eps)
        # vectorized: fmadd(x, a, b), the product x * a unrounded; with b = -a * mean rounded,
        # x = mean leaves exactly that rounding error (the residue pytorch#188375 shows)
        xhat = t.fma(a, x, -(a * mean))
        if low:
            # float16 and bfloat16 (layer_norm_kernel_mixed_type): the forward too normalizes
            # this way, then rounds y to the dtype
            fwd = xhat if weight is None else xhat * w
            fwd = fwd if bias is None else fwd + bias
    if low:
        y = fwd * 1.0

    def rounded(rule):
        """``rule`` computed in the kernel's precision, its output rounded to the dtype."""

        def run(g):
            with opmath():
                out = rule(g)
            return out * 1.0 if low else out

        return run

    def rule_x(g):
        target = getattr(current(), "target", None)  # None: an exact arithmetic
        if target is not None and n < _TORCH_LANES.get(np.dtype(target), 0):
            # narrower than one vector (width 1 above all, where the exact result is 0 and the
            # residue is everything): the kernel's own order (layer_norm_backward_frame,
            # measured bit for bit per dtype on 2,000 extreme width-1 rows and 400 random
            # cases): sequential sums ds = sum (dy x) w, db = sum dy w; B = fma(db, mean, -ds)
            # a a a / N; C = fma(-B, mean, -((db a) / N)); dx = fma(B, x, (a dy) w) + C
            ds, db = _sequential((g * x) * w), _sequential(g * w)
            scale = 1.0 / n
            big_b = t.fma(db, mean, -ds) * a * a * a
            big_b = big_b if n == 1 else big_b * scale
            big_c = t.fma(-big_b, mean, -(db * a if n == 1 else (db * a) * scale))
            return t.fma(big_b, x, (a * g) * w) + big_c
        dyw = g * w
        ds = t.sum_(dyw * x, -1, keepdims=True)
        db = t.sum_(dyw, -1, keepdims=True)
        big_b = (db * mean - ds) * a * a * a * (1.0 / n)
        big_c = -(big_b * mean) - db * a * (1.0 / n)
        return a * g * w + big_b * x + big_c

    half_sums = low and "torch_layer_norm_half_sums" in current().variants
    dtype = current().target  # the input's: the rules below run in float32 (opmath)

    def param_grad(g, terms, shape):
        """A parameter's gradient, the sum of ``terms`` over the rows: in the kernel's float32,
        or (``half_sums``) as torch accumulates it for float16 and bfloat16 inputs."""
        total = t.unbroadcast(terms, shape)
        if not half_sums or total.shape == terms.shape:
            return total
        exact = terms.value if g is None else g.value * xhat.value  # dy * xhat: fused, exact
        return t.Var(_torch_half_row_sums(exact, dtype), total.parents)

    parents = [(x, rounded(rule_x))]
    if weight is not None:
        parents.append((w, rounded(lambda g: param_grad(g, g * xhat, w.shape))))
    if bias is not None:
        b = t.lift(bias)
        parents.append((b, rounded(lambda g: param_grad(None, g, b.shape))))
    return t.Var(y.value, tuple((p, r) for p, r in parents if isinstance(p, t.Var)))


# the float lanes of torch's CPU vectors as its LayerNorm kernel runs here (the AVX2 build,
# also on AVX-512 machines): rows narrower than this are summed one element after another
_TORCH_LANES = {np.dtype(np.float64): 4, np.dtype(np.float32): 8}


def _sequential(p):
    """The sum of ``p`` over its last axis one element after another, each add rounded."""
    total = p[..., 0:1]
    for j in range(1, p.shape[-1]):
        total = total + p[..., j : j + 1]
    return total


def _torch_threads() -> int:
    """torch's intra-op thread count where torch is loaded (it is, in the process that ran it:
    a declared function's check calls backends in-process), else 1; never imports torch."""
    import sys

    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else 1


def _torch_half_row_sums(terms: np.ndarray, dtype) -> np.ndarray:
    """Column sums of ``terms`` (rows leading) as torch's CPU LayerNorm backward forms
    weight.grad and bias.grad for float16 and bfloat16 inputs (layer_norm_kernel.cpp): the rows
    split into one consecutive chunk per thread, each chunk accumulated row by row in a buffer
    of the input's dtype (every partial sum rounded to it: a float32 add, then a store), and
    the chunks' buffers added in float32.  Matched bit for bit on 6,400 random cases at 1, 2,
    3 and 5 threads (float16 and bfloat16; a float32 sum matches 12-15 %)."""
    rows = np.asarray(terms, dtype=np.float64).reshape(-1, terms.shape[-1])
    m = rows.shape[0]
    if m == 0 or rows.shape[1] == 0:  # no rows: nothing summed
        return np.zeros(terms.shape[-1:])
    threads = min(_torch_threads(), m)
    chunk = -(-m // max(threads, 1))
    total = np.zeros(rows.shape[1], dtype=np.float32)
    for start in range(0, m, chunk):
        acc = np.zeros(rows.shape[1], dtype=np.float64)
        for row in rows[start : start + chunk]:
            # the float32 add (dy * xhat fused into it), then the store in the dtype
            acc = (acc + row).astype(np.float32).astype(dtype).astype(np.float64)
        total = (total + acc.astype(np.float32)).astype(np.float32)
    return total.astype(np.float64).reshape(terms.shape[-1:])


def _layer_norm(x, weight=None, bias=None, eps=1e-5):
    variants = current().variants
    if "torch_layer_norm_squares" in variants:
        # torch's CPU row statistics square x itself: where x * x overflows the dtype the
        # row's rstd is NaN, though x - mean does not overflow (0 at width 1); 0 * sum(x^2)
        # is 0 where x^2 is finite, NaN where it overflowed (known_functions)
        x = t.lift(x)
        with opmath():  # float16 and bfloat16 square in float32
            x = x + t.sum_(x * x, -1, keepdims=True) * 0.0
        if "torch_layer_norm_backward" in variants:
            return _torch_layer_norm_backward(x, weight, bias, eps)
        return _PLAIN_LAYER_NORM(x, weight, bias, eps)
    if "torch_layer_norm_backward" in variants:
        return _torch_layer_norm_backward(t.lift(x), weight, bias, eps)
    rsqrt = "rsqrt_layer_norm" in variants
    return (_RSQRT_LAYER_NORM if rsqrt else _PLAIN_LAYER_NORM)(t.lift(x), weight, bias, eps)


def _gelu(x, approximate="none"):
    x = t.lift(x)
    if approximate == "tanh":
        return gelu_tanh_from(t.tanh)(x)
    if approximate != "none":
        raise ValueError(f"approximate={approximate!r}, expected one of none, tanh")
    y = x * 0.5 * (1.0 + t.erf(x * float(1 / np.sqrt(2.0))))
    if "torch_gelu_rule" not in current().variants:
        return y

    def rule(g):
        # torch's vectorized CPU GELU backward (float32, and bfloat16 and float16 through
        # float32): (0.5 + x pdf) + 0.5 erf(x / sqrt 2), two terms near 0.5 that cancel, so
        # the derivative is a multiple of 2^-25 and 0 for x < -6.1 (known_functions)
        pdf = t.exp(-0.5 * (x * x)) * float(1 / np.sqrt(2 * np.pi))
        return g * ((0.5 + x * pdf) + 0.5 * t.erf(x * float(1 / np.sqrt(2.0))))

    return t.Var(y.value, ((x, rule),))


NN = SimpleNamespace(
    sigmoid=t.sigmoid,
    log_sigmoid=lambda x: -t.softplus(-t.lift(x)),
    softplus=t.softplus,
    silu=lambda x: t.lift(x) * t.sigmoid(x),
    gelu=_gelu,
    relu=lambda x: t.maximum(x, 0.0),
    tanh=t.tanh,
    erf=t.erf,
    expm1=t.expm1,
    log1p=t.log1p,
    logsumexp=_lse,
    softmax=_softmax,
    log_softmax=_log_softmax,
    cross_entropy=cross_entropy_from(XP, _log_softmax, t.take_along_axis),
    layer_norm=lambda *a, **k: _layer_norm(*a, **k),
    rms_norm=rms_norm_from(XP),
    xlogy=t.xlogy,
    norm=norm_from(XP),
)

assert set(vars(NN)) == set(OPS), "the engine's nn must define exactly model.nn.OPS"


def _logged(name, op):
    def run(*args, **kwargs):
        current().used.add(name)  # a registered fault may be scoped to the operations used
        return op(*args, **kwargs)

    return run


NN = _Namespace(**{k: _logged(k, v) for k, v in vars(NN).items()})
