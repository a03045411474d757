"""The library operations a declared function may call through ``nn``, and their meaning.

Each backend maps these names to its framework's **own** implementation (torch.nn.functional,
jax.nn and jax.scipy.special, autograd.scipy.special, scipy.special): library derivative rules
are where real faults live.  Where a framework has no such operation, the backend composes it
from ``xp`` with the builders below, and says so in ``COMPOSED``.

    sigmoid(x)  log_sigmoid(x)  softplus(x)  silu(x)  relu(x)  tanh(x)  erf(x)  expm1(x)
    log1p(x)    gelu(x, approximate="none"|"tanh")
    logsumexp(x, axis=-1, keepdims=False)  softmax(x, axis=-1)  log_softmax(x, axis=-1)
    cross_entropy(logits (N, C), labels (N,), label_smoothing=0.0)   mean over rows
    layer_norm(x, weight=None, bias=None, eps=1e-5)   over the last axis, biased variance
    rms_norm(x, weight=None, eps=1e-6)                over the last axis
    xlogy(x, y)   0 where x == 0          norm(x, axis=None, keepdims=False)   L2
"""

from __future__ import annotations

import math

__all__ = [
    "OPS",
    "cross_entropy_from",
    "layer_norm_from",
    "rms_norm_from",
    "gelu_tanh_from",
    "xlogy_from",
    "norm_from",
]

OPS = (
    "sigmoid", "log_sigmoid", "softplus", "silu", "gelu", "relu", "tanh", "erf", "expm1",
    "log1p", "logsumexp", "softmax", "log_softmax", "cross_entropy", "layer_norm", "rms_norm",
    "xlogy", "norm",
)  # fmt: skip


def cross_entropy_from(xp, log_softmax, take_along_axis):
    """cross_entropy for a framework without one: mean of -log_softmax(logits)[label]."""

    def cross_entropy(logits, labels, label_smoothing=0.0):
        logp = log_softmax(logits, -1)
        loss = -take_along_axis(logp, labels[:, None], 1)[:, 0]
        if label_smoothing:
            eps = float(label_smoothing)
            loss = loss * (1.0 - eps) - xp.mean(logp, axis=-1) * eps
        return xp.mean(loss)

    return cross_entropy


def _divide_by_sqrt(xp):
    return lambda d, v: d / xp.sqrt(v)


def layer_norm_from(xp, normalize=None):
    """``normalize(d, v)``: d scaled by v ** -0.5 (default d / sqrt(v))."""
    normalize = normalize or _divide_by_sqrt(xp)

    def layer_norm(x, weight=None, bias=None, eps=1e-5):
        d = x - xp.mean(x, axis=-1, keepdims=True)
        y = normalize(d, xp.mean(d * d, axis=-1, keepdims=True) + eps)
        y = y if weight is None else y * weight
        return y if bias is None else y + bias

    return layer_norm


def rms_norm_from(xp):
    def rms_norm(x, weight=None, eps=1e-6):
        y = x / xp.sqrt(xp.mean(x * x, axis=-1, keepdims=True) + eps)
        return y if weight is None else y * weight

    return rms_norm


def xlogy_from(xp):
    """x log y, 0 where x == 0, by the double where (no NaN from log 0 in either branch)."""

    def xlogy(x, y):
        return xp.where(x == 0, 0.0, x * xp.log(xp.where(x == 0, 1.0, y)))

    return xlogy


def norm_from(xp):
    def norm(x, axis=None, keepdims=False):
        return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims))

    return norm


_C = math.sqrt(2.0 / math.pi)


def gelu_tanh_from(tanh):
    """GELU's tanh approximation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def gelu(x):
        return x * 0.5 * (1.0 + tanh((x + x * x * x * 0.044715) * _C))

    return gelu
