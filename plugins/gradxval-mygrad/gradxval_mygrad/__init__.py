"""gradxval backend for MyGrad (https://github.com/rsokl/MyGrad).

MyGrad mirrors numpy's API on its Tensor and differentiates in reverse mode.  It is pure
Python on top of numpy, so it installs in seconds: the proof that a backend can live in its
own package and register through the ``gradxval.backends`` entry-point group.
"""

from __future__ import annotations

from functools import cache

import mygrad as mg
import numpy as np
from gradxval.backends.base import Backend
from gradxval.errors import Unsupported
from gradxval.model.problems import closed_form, loss_from_sigmoid
from mygrad.nnet.activations import logsoftmax, relu, sigmoid, softmax

__all__ = ["MygradBackend"]


def _missing(name):
    def op(*args, **kwargs):
        raise Unsupported(f"mygrad has no {name}")

    return op


@cache
def _nn():
    from types import SimpleNamespace

    from gradxval.model.nn import (
        cross_entropy_from,
        layer_norm_from,
        norm_from,
        rms_norm_from,
        xlogy_from,
    )

    def lse(x, axis=-1, keepdims=False):
        m = mg.max(x, axis=axis, keepdims=True, constant=True)  # a shift: no derivative
        out = mg.log(mg.sum(mg.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keepdims else mg.squeeze(out, axis=axis)

    def take_along_axis(a, idx, axis):
        return a[np.arange(a.shape[0])[:, None], idx] if axis == 1 else _missing("take")()

    # mygrad.nnet has sigmoid, relu, softmax and logsoftmax; the rest composed from mygrad
    return SimpleNamespace(
        sigmoid=sigmoid,
        log_sigmoid=lambda x: -mg.logaddexp(0.0, -x),
        softplus=lambda x: mg.logaddexp(0.0, x),
        silu=lambda x: x * sigmoid(x),
        gelu=_missing("erf or gelu"),
        relu=relu,
        tanh=mg.tanh,
        erf=_missing("erf"),
        expm1=mg.expm1,
        log1p=mg.log1p,
        logsumexp=lse,
        softmax=lambda x, axis=-1: softmax(x, axis=axis),
        log_softmax=lambda x, axis=-1: logsoftmax(x, axis=axis),
        cross_entropy=cross_entropy_from(mg, logsoftmax, take_along_axis),
        layer_norm=layer_norm_from(mg),
        rms_norm=rms_norm_from(mg),
        xlogy=xlogy_from(mg),
        norm=norm_from(mg),
    )


class MygradBackend(Backend):
    name = "mygrad"
    methods = ("autodiff", "closed_form")
    supported = ("float16", "float32", "float64")
    unsupported_reasons = {
        "bfloat16": "mygrad tensors take numpy's own floating dtypes only",
        "complex64": "mygrad tensors are real (floating, integer or boolean)",
        "complex128": "mygrad tensors are real (floating, integer or boolean)",
    }

    # the standalone reproducers gradxval writes for its findings and known faults (mygrad and
    # numpy only): setup, and each method's (loss, grad_x, grad_A) of the seed problem
    repro_recipe = (
        """
import mygrad as mg
from mygrad.nnet.activations import sigmoid
xp = mg
COMPLEX = ()


def cast(a, dtype):
    return a.astype(dtype)


def to_backend(a):
    return mg.tensor(a)


def autodiff(A, x):
    with np.errstate(all="ignore"):
        loss = loss_of(A, sigmoid(x))
        loss.backward()
    gx = x.grad if x.grad is not None else np.zeros(x.shape, x.dtype)
    gA = A.grad if A.grad is not None else np.zeros(A.shape, A.dtype)
    return loss, np.asarray(gx).astype(x.dtype), np.asarray(gA).astype(A.dtype)
""",
        {"autodiff": "autodiff(A, x)", "closed_form": "closed_form(A, x)"},
    )

    # declared functions (gradxval check): reverse mode only
    function_methods = ("autodiff",)

    def nn_namespace(self):
        return _nn()

    def _differentiate(self, method, f, args, wrt, extra):
        leaves = {k: mg.tensor(args[k]) for k in wrt}
        with np.errstate(all="ignore"):
            loss = f(**{**args, **leaves})
            loss.backward()
        out = {"loss": loss}
        for k, t in leaves.items():
            out[f"grad_{k}"] = t.grad if t.grad is not None else np.zeros_like(args[k])
        return out

    def version(self) -> str:
        return mg.__version__

    def formula_namespace(self):
        return mg, mg.tensor, _np, lambda dtype: np.errstate(all="ignore")

    def autodiff(self, fn, A, x, dtype):
        tA, tx = mg.tensor(A), mg.tensor(x)
        with np.errstate(all="ignore"):
            loss = fn(tA, tx, mg)
            loss.backward()
        gA = tA.grad if tA.grad is not None else np.zeros_like(A)
        gx = tx.grad if tx.grad is not None else np.zeros_like(x)
        return {"loss": _np(loss), "grad_x": _np(gx, x.dtype), "grad_A": _np(gA, A.dtype)}

    def _evaluate(self, method, A, x, dtype):
        with np.errstate(all="ignore"):
            if method == "closed_form":
                loss, gx, gA = closed_form(mg.tensor(A), mg.tensor(x), mg)
                return {"loss": _np(loss), "grad_x": _np(gx), "grad_A": _np(gA)}
            tA, tx = mg.tensor(A), mg.tensor(x)
            loss = loss_from_sigmoid(tA, sigmoid(tx), mg)
            loss.backward()
            gA = tA.grad if tA.grad is not None else np.zeros_like(A)
            gx = tx.grad if tx.grad is not None else np.zeros_like(x)
            return {"loss": _np(loss), "grad_x": _np(gx, x.dtype), "grad_A": _np(gA, A.dtype)}


def _np(t, dtype=None) -> np.ndarray:
    a = np.array(t.data if isinstance(t, mg.Tensor) else t, copy=True)
    return a if dtype is None else a.astype(dtype, copy=False)
