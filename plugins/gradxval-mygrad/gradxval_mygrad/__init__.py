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
        # logaddexp with an array zero: a Python 0.0 makes mygrad compute in float64
        log_sigmoid=lambda x: -mg.logaddexp(-x, mg.zeros_like(x)),
        softplus=lambda x: mg.logaddexp(x, mg.zeros_like(x)),
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

    # the adapter: mygrad's tensors, its nn, and reverse mode by Tensor.backward (no forward
    # mode, no second order)
    xp = mg
    function_methods = ("autodiff",)

    def to_backend(self, a):
        return mg.tensor(a)

    def to_numpy(self, t):
        return _np(t)

    def nn_namespace(self):
        return _nn()

    def value_and_grad(self, f, argnums):
        def run(*primals):
            leaves = {i: mg.tensor(primals[i]) for i in argnums}
            loss = f(*(leaves.get(i, p) for i, p in enumerate(primals)))
            loss.backward()
            grads = tuple(
                t.grad if t.grad is not None else np.zeros(t.shape, t.dtype)
                for t in leaves.values()
            )
            return loss, grads

        return run

    def version(self) -> str:
        return mg.__version__


def _np(t, dtype=None) -> np.ndarray:
    a = np.array(t.data if isinstance(t, mg.Tensor) else t, copy=True)
    return a if dtype is None else a.astype(dtype, copy=False)
