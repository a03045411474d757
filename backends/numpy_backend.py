"""numpy: the closed form only (autograd is numpy's autodiff)."""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

import array_api_compat.numpy as xp
import numpy as np
from gradxval.backends.base import Backend
from gradxval.model.problems import closed_form

__all__ = ["NumpyBackend"]


@cache
def _nn():
    import ml_dtypes
    import scipy.special as sp
    from gradxval.model.nn import (
        cross_entropy_from,
        gelu_tanh_from,
        layer_norm_from,
        rms_norm_from,
    )

    def via_float32(f):
        # scipy.special has no float16 or bfloat16 loops: it computes those in float32
        def g(x, *a, **k):
            x = np.asarray(x)
            if x.dtype in (np.float16, ml_dtypes.bfloat16):
                return np.asarray(f(x.astype(np.float32), *a, **k)).astype(x.dtype)
            return f(x, *a, **k)

        return g

    expit, log_softmax = via_float32(sp.expit), via_float32(sp.log_softmax)
    erf = via_float32(sp.erf)
    return SimpleNamespace(
        sigmoid=expit,
        log_sigmoid=via_float32(sp.log_expit),
        softplus=lambda x: np.logaddexp(np.zeros((), x.dtype), x),
        silu=lambda x: x * expit(x),
        gelu=lambda x, approximate="none": (
            gelu_tanh_from(np.tanh)(x)
            if approximate == "tanh"
            else x * 0.5 * (1.0 + erf(x * (0.5**0.5)))
        ),
        relu=lambda x: np.maximum(x, np.zeros((), x.dtype)),
        tanh=np.tanh,
        erf=erf,
        expm1=np.expm1,
        log1p=np.log1p,
        logsumexp=via_float32(sp.logsumexp),
        softmax=via_float32(sp.softmax),
        log_softmax=log_softmax,
        cross_entropy=cross_entropy_from(xp, log_softmax, np.take_along_axis),
        layer_norm=layer_norm_from(xp),
        rms_norm=rms_norm_from(xp),
        xlogy=via_float32(sp.xlogy),
        norm=lambda x, axis=None, keepdims=False: np.linalg.norm(x, axis=axis, keepdims=keepdims),
    )


class NumpyBackend(Backend):
    name = "numpy"
    methods = ("closed_form",)
    function_methods = ("value", "formula")
    function_unsupported = {
        "bfloat16": "numpy has no bfloat16 of its own; ml_dtypes' bfloat16 matmul gives float32"
    }

    def nn_namespace(self):
        return _nn()

    def version(self) -> str:
        return np.__version__

    def formula_namespace(self):
        return xp, np.asarray, np.asarray, lambda dtype: np.errstate(all="ignore")

    def _evaluate(self, method, A, x, dtype):
        with np.errstate(all="ignore"):
            loss, gx, gA = closed_form(A, x, xp)
        return {"loss": np.asarray(loss), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}
