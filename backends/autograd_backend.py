"""HIPS autograd: reverse mode over numpy, library sigmoid = autograd.scipy.special.expit.

autograd has no softplus or log-sigmoid function (autograd.scipy.special offers expit and
logsumexp, no log_expit): those problems differentiate the composite -logaddexp(-x, 0).
"""

from __future__ import annotations

import warnings
from functools import cache

import array_api_compat.numpy as xp_np
import autograd
import autograd.numpy as anp
import numpy as np
from autograd.scipy.special import expit
from gradxval.backends.base import Backend
from gradxval.errors import Unsupported
from gradxval.model.problems import closed_form, loss_from_sigmoid

__all__ = ["AutogradBackend"]


def _loss(A, x):
    return loss_from_sigmoid(A, expit(x), anp)


_value_and_grad_A = autograd.value_and_grad(_loss, 0)
_grad_x = autograd.grad(_loss, 1)


# forward mode pushes one tangent at a time: only for inputs this small
_FORWARD_MAX = 256


def _forward(A, x):
    """Gradient by forward mode: one make_jvp per entry (real entries only)."""

    def partials(f, v):
        out = np.zeros(
            v.shape, dtype=np.result_type(v, np.float32) if v.dtype.kind == "f" else v.dtype
        )
        jvp = autograd.make_jvp(f)(v)
        for i in np.ndindex(v.shape):
            e = np.zeros_like(v)
            e[i] = 1
            out[i] = jvp(e)[1]
        return out.astype(v.dtype)

    gx = partials(lambda x: _loss(A, x), x)
    gA = None if np.iscomplexobj(A) or A.size > _FORWARD_MAX else partials(lambda A: _loss(A, x), A)
    return _loss(A, x), gx, gA


_LIBRARY = {"logistic": expit, "tanh": anp.tanh}


@cache
def _nn():
    from types import SimpleNamespace

    from autograd.scipy.special import erf, logsumexp
    from gradxval.model.nn import (
        cross_entropy_from,
        gelu_tanh_from,
        layer_norm_from,
        norm_from,
        rms_norm_from,
        xlogy_from,
    )

    def lse(x, axis=-1, keepdims=False):
        return logsumexp(x, axis=axis, keepdims=keepdims)

    def log_softmax(x, axis=-1):
        return x - logsumexp(x, axis=axis, keepdims=True)

    # autograd.scipy.special has expit, erf, logsumexp and nothing else of these: the rest is
    # composed from autograd.numpy, the way an autograd user writes it
    return SimpleNamespace(
        sigmoid=expit,
        log_sigmoid=lambda x: -anp.logaddexp(0.0, -x),
        softplus=lambda x: anp.logaddexp(0.0, x),
        silu=lambda x: x * expit(x),
        gelu=lambda x, approximate="none": (
            gelu_tanh_from(anp.tanh)(x)
            if approximate == "tanh"
            else x * 0.5 * (1.0 + erf(x * 0.5**0.5))
        ),
        relu=lambda x: anp.maximum(x, 0.0),
        tanh=anp.tanh,
        erf=erf,
        expm1=anp.expm1,
        log1p=anp.log1p,
        logsumexp=lse,
        softmax=lambda x, axis=-1: anp.exp(log_softmax(x, axis)),
        log_softmax=log_softmax,
        cross_entropy=cross_entropy_from(anp, log_softmax, _take_along_axis),
        layer_norm=layer_norm_from(anp),
        rms_norm=rms_norm_from(anp),
        xlogy=xlogy_from(anp),
        norm=norm_from(anp),
    )


def _take_along_axis(a, idx, axis):
    # autograd.numpy has no take_along_axis: index with broadcast integer arrays instead
    grids = [
        anp.arange(n).reshape([-1 if k == d else 1 for k in range(a.ndim)])
        for d, n in enumerate(a.shape)
    ]
    grids[axis] = idx
    return a[tuple(grids)]


class AutogradBackend(Backend):
    name = "autograd"
    methods = ("autodiff", "closed_form", "forward")
    function_methods = ("autodiff", "hvp", "formula")

    def nn_namespace(self):
        return _nn()

    def _differentiate(self, method, f, args, wrt, extra):
        def of_wrt(*vals):
            return f(**{**args, **dict(zip(wrt, vals, strict=True))})

        primals = tuple(args[k] for k in wrt)
        argnum = tuple(range(len(wrt)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "autodiff":
                loss, grads = autograd.value_and_grad(of_wrt, argnum)(*primals)
                return {"loss": loss, **{f"grad_{k}": g for k, g in zip(wrt, grads, strict=True)}}
            if method == "hvp":
                g = autograd.grad(of_wrt, argnum)

                def along(*vals):
                    return sum(anp.sum(gi * extra[k]) for gi, k in zip(g(*vals), wrt, strict=True))

                hv = autograd.grad(along, argnum)(*primals)
                return {f"hvp_{k}": h for k, h in zip(wrt, hv, strict=True)}
        return super()._differentiate(method, f, args, wrt, extra)

    # reverse-over-reverse: autograd.hessian_vector_product; forward-over-reverse: make_jvp of
    # grad, which needs forward-mode rules autograd lacks for expit (Unsupported says so)
    hvp_routes = ("fwd_over_rev", "rev_over_rev")

    def library(self, name):
        return _LIBRARY.get(name)

    def _hvp(self, method, fn, A, x, v, dtype):
        def f(x):
            return fn(A, x, anp)

        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "rev_over_rev":
                return np.asarray(autograd.hessian_vector_product(f)(x, v))
            try:
                return np.asarray(autograd.make_jvp(autograd.grad(f))(x)(v)[1])
            except NotImplementedError as exc:
                raise Unsupported(f"autograd has no forward-mode rule: {exc}") from None

    supported = ("float32", "float64", "complex64", "complex128")
    unsupported_reasons = {
        "float16": "scipy.special.expit has no float16 loop, so autograd computes in float32",
        "bfloat16": "autograd traces numpy, and scipy.special has no bfloat16 loops",
    }

    def autodiff(self, fn, A, x, dtype):
        f = lambda A, x: fn(A, x, anp)  # noqa: E731
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss, gA = autograd.value_and_grad(f, 0)(A, x)
            gx = autograd.grad(f, 1)(A, x)
        return {"loss": np.asarray(loss), "grad_x": np.asarray(gx), "grad_A": np.conj(gA)}

    def formula_namespace(self):
        return xp_np, np.asarray, np.asarray, lambda dtype: np.errstate(all="ignore")

    def version(self) -> str:
        from importlib.metadata import version

        return version("autograd")

    def _evaluate(self, method, A, x, dtype):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # autograd warns on complex->real casts
            if method == "closed_form":
                loss, gx, gA = closed_form(A, x, xp_np)
            elif method == "forward":
                if x.size > _FORWARD_MAX:
                    raise Unsupported(
                        f"forward mode one tangent at a time: x has {x.size} "
                        f"entries > {_FORWARD_MAX}"
                    )
                try:
                    loss, gx, gA = _forward(A, x)
                except NotImplementedError as exc:
                    # autograd 1.x defines expit's VJP only (autograd/scipy/special.py)
                    raise Unsupported(f"autograd has no forward-mode rule: {exc}") from None
            else:
                loss, gA = _value_and_grad_A(A, x)
                gx = _grad_x(A, x)
                # autograd returns conj(dL/dRe + i dL/dIm); normalise to torch's convention
                gA = np.conj(gA)
        return {
            "loss": np.asarray(loss),
            "grad_x": np.asarray(gx),
            "grad_A": None if gA is None else np.asarray(gA),
        }
