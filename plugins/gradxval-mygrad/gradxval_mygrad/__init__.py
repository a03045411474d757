"""gradxval backend for MyGrad (https://github.com/rsokl/MyGrad).

MyGrad mirrors numpy's API on its Tensor and differentiates in reverse mode.  It is pure
Python on top of numpy, so it installs in seconds: the proof that a backend can live in its
own package and register through the ``gradxval.backends`` entry-point group.
"""

from __future__ import annotations

import mygrad as mg
import numpy as np
from gradxval.backends.base import Backend
from gradxval.problems import closed_form, loss_from_sigmoid
from mygrad.nnet.activations import sigmoid

__all__ = ["MygradBackend"]


class MygradBackend(Backend):
    name = "mygrad"
    methods = ("autodiff", "closed_form")
    supported = ("float16", "float32", "float64")
    unsupported_reasons = {
        "bfloat16": "mygrad tensors take numpy's own floating dtypes only",
        "complex64": "mygrad tensors are real (floating, integer or boolean)",
        "complex128": "mygrad tensors are real (floating, integer or boolean)",
    }

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
