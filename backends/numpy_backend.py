"""numpy: the closed form only (autograd is numpy's autodiff)."""

from __future__ import annotations

import array_api_compat.numpy as xp
import numpy as np
from gradxval.problems import closed_form

from .base import Backend

__all__ = ["NumpyBackend"]


class NumpyBackend(Backend):
    name = "numpy"
    methods = ("closed_form",)

    def version(self) -> str:
        return np.__version__

    def formula_namespace(self):
        return xp, np.asarray, np.asarray, lambda dtype: np.errstate(all="ignore")

    def _evaluate(self, method, A, x, dtype):
        with np.errstate(all="ignore"):
            loss, gx, gA = closed_form(A, x, xp)
        return {"loss": np.asarray(loss), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}
