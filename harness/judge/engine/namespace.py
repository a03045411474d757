"""The engine's ``xp`` (the array-API subset declared functions may use) and ``nn``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from gradxval.judge.engine import tape as t
from gradxval.judge.engine.arith import current
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
XP = SimpleNamespace(**{**vars(XP), **CXP})


def _lse(x, axis=-1, keepdims=False):
    return t.logsumexp(x, axis, keepdims)


def _log_softmax(x, axis=-1):
    return t.lift(x) - _lse(x, axis, keepdims=True)


def _softmax(x, axis=-1):
    return t.exp(_log_softmax(x, axis))


_PLAIN_LAYER_NORM = layer_norm_from(XP)
# torch's forward-mode rule: d * rsqrt(var + eps), whose derivative -rsqrt^3 / 2 overflows
# float16 when var + eps < 2.4e-3 (known_functions)
_RSQRT_LAYER_NORM = layer_norm_from(XP, lambda d, v: d * t.power(v, -0.5))


def _layer_norm(x, weight=None, bias=None, eps=1e-5):
    rsqrt = "rsqrt_layer_norm" in current().variants
    return (_RSQRT_LAYER_NORM if rsqrt else _PLAIN_LAYER_NORM)(t.lift(x), weight, bias, eps)


def _gelu(x, approximate="none"):
    x = t.lift(x)
    if approximate == "tanh":
        return gelu_tanh_from(t.tanh)(x)
    if approximate != "none":
        raise ValueError(f"approximate={approximate!r}, expected one of none, tanh")
    return x * 0.5 * (1.0 + t.erf(x * float(1 / np.sqrt(2.0))))


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


NN = SimpleNamespace(**{k: _logged(k, v) for k, v in vars(NN).items()})
