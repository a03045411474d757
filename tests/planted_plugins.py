"""Plug-ins with one planted fault each in grad_x, as a third-party author might ship them, and
an honest one: issue 23's check-backend acceptance.

Each computes with numpy from the source in its ``repro_recipe``, so the standalone reproducer
gradxval writes for it runs the very same code, with numpy alone.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
from gradxval.backends.base import Backend
from gradxval.backends.recipes import RECIPES

# numpy's own recipe (xp, cast, to_backend), then the planted computation
_SETUP = (
    RECIPES["numpy"][0]
    + """

def rewritten(t):
    one = np.ones((), dtype=t.dtype)
    return one - one / (one + np.exp(t))  # = y/(1 + y), y = exp(t): cancels for t < 0


def planted(A, x):
    loss, gx, gA = closed_form(A, x)
    z = A @ sigmoid_pair(x)[0]
    if FAULT == "widened" and x.dtype == np.float16:  # grad_x kept in float32
        A32, x32 = A.astype(np.float32), x.astype(np.float32)
        s, sn = sigmoid_pair(x32)
        gx = 2 * (s * sn) * (A32.T @ (A32 @ s))
    elif FAULT == "rewrite":
        s, sn = rewritten(x), rewritten(-x)
        gx = 2 * (s * sn) * (A.T @ (A @ s))
    elif FAULT == "float32" and x.dtype == np.float64:
        A32, x32 = A.astype(np.float32), x.astype(np.float32)
        s, sn = sigmoid_pair(x32)
        gx = (2 * (s * sn) * (A32.T @ (A32 @ s))).astype(np.float64)
    return loss, gx, gA
"""
)


def _sigmoid_pair(x):
    e = np.exp(-np.abs(x))
    d = 1 + e
    return np.where(x >= 0, 1 / d, e / d), np.where(x >= 0, e / d, 1 / d)


def _closed_form(A, x):
    from gradxval.model.problems import closed_form

    return closed_form(A, x, np)


class _Planted(Backend):
    methods = ("closed_form",)
    supported = ("float16", "float32", "float64")
    FAULT = ""

    @property
    def repro_recipe(self):
        return (f"FAULT = {self.FAULT!r}\n" + _SETUP, {"closed_form": "planted(A, x)"})

    def version(self) -> str:
        return np.__version__

    def _evaluate(self, method, A, x, dtype):
        space = {"np": np, "ml_dtypes": ml_dtypes, "BF16": False, "FAULT": self.FAULT,
                 "closed_form": _closed_form, "sigmoid_pair": _sigmoid_pair}  # fmt: skip
        exec(compile(_SETUP, "<planted>", "exec"), space)  # the reproducer's own code
        with np.errstate(all="ignore"):
            loss, gx, gA = space["planted"](A, x)
        return {"loss": np.asarray(loss), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}


class Widened(_Planted):
    """float16 grad_x computed and returned in float32."""

    name = "planted_widened"
    FAULT = "widened"


class Rewrite(_Planted):
    """grad_x with sigma = y/(1 + y) rewritten as 1 - 1/(1 + y), which cancels for x < 0."""

    name = "planted_rewrite"
    FAULT = "rewrite"


class Float32(_Planted):
    """float64 grad_x computed in float32 and cast back."""

    name = "planted_float32"
    FAULT = "float32"


class Honest(_Planted):
    """numpy's closed form, nothing planted."""

    name = "planted_honest"
