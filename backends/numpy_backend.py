"""numpy: the value and the closed form only (autograd is numpy's autodiff)."""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

import array_api_compat.numpy as xp
import ml_dtypes
import numpy as np
from gradxval.backends.base import Backend
from gradxval.model import nn

__all__ = ["NumpyBackend"]


def _via_float32(f):
    # scipy.special has no float16 or bfloat16 loops: it computes those in float32
    def g(x, *a, **k):
        x = np.asarray(x)
        if x.dtype in (np.float16, ml_dtypes.bfloat16):
            return np.asarray(f(x.astype(np.float32), *a, **k)).astype(x.dtype)
        return f(x, *a, **k)

    return g


@cache
def _nn():  # scipy.special is imported by declared functions only
    import scipy.special as sp

    _expit, _erf, _log_softmax = map(_via_float32, (sp.expit, sp.erf, sp.log_softmax))
    return SimpleNamespace(
        sigmoid=_expit, log_sigmoid=_via_float32(sp.log_expit),
        softplus=lambda x: np.logaddexp(np.zeros((), x.dtype), x), silu=lambda x: x * _expit(x),
        gelu=lambda x, approximate="none": nn.gelu_tanh_from(np.tanh)(x) if approximate == "tanh"
        else x * 0.5 * (1.0 + _erf(x * (0.5**0.5))),
        relu=lambda x: np.maximum(x, np.zeros((), x.dtype)), tanh=np.tanh, erf=_erf,
        expm1=np.expm1, log1p=np.log1p, logsumexp=_via_float32(sp.logsumexp),
        softmax=_via_float32(sp.softmax), log_softmax=_log_softmax,
        cross_entropy=nn.cross_entropy_from(xp, _log_softmax, np.take_along_axis),
        layer_norm=nn.layer_norm_from(xp), rms_norm=nn.rms_norm_from(xp),
        xlogy=_via_float32(sp.xlogy),
        norm=lambda x, axis=None, keepdims=False: np.linalg.norm(x, axis=axis, keepdims=keepdims),
    )  # fmt: skip


class NumpyBackend(Backend):
    name = "numpy"
    methods = ("closed_form",)
    function_methods = ("value", "formula")
    function_unsupported = {
        "bfloat16": "numpy has no bfloat16 of its own; ml_dtypes' bfloat16 matmul gives float32"
    }
    xp = xp

    def version(self) -> str:
        return np.__version__

    def nn_namespace(self):
        return _nn()
