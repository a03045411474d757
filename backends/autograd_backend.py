"""HIPS autograd: reverse mode over numpy, library sigmoid = autograd.scipy.special.expit."""

from __future__ import annotations

import warnings

import array_api_compat.numpy as xp_np
import autograd
import autograd.numpy as anp
import numpy as np
from autograd.scipy.special import expit
from gradxval.problems import closed_form, loss_from_sigmoid

from .base import Backend

__all__ = ["AutogradBackend"]


def _loss(A, x):
    return loss_from_sigmoid(A, expit(x), anp)


_value_and_grad_A = autograd.value_and_grad(_loss, 0)
_grad_x = autograd.grad(_loss, 1)


class AutogradBackend(Backend):
    name = "autograd"
    supported = ("float32", "float64", "complex64", "complex128")
    unsupported_reasons = {
        "float16": "scipy.special.expit has no float16 loop, so autograd computes in float32",
        "bfloat16": "autograd traces numpy, and scipy.special has no bfloat16 loops",
    }

    def version(self) -> str:
        from importlib.metadata import version

        return version("autograd")

    def _evaluate(self, method, A, x, dtype):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # autograd warns on complex->real casts
            if method == "closed_form":
                loss, gx, gA = closed_form(A, x, xp_np)
            else:
                loss, gA = _value_and_grad_A(A, x)
                gx = _grad_x(A, x)
                # autograd returns conj(dL/dRe + i dL/dIm); normalise to torch's convention
                gA = np.conj(gA)
        return {"loss": np.asarray(loss), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}
