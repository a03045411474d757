"""jax on its default device, jit-compiled; x64 mode scoped to float64/complex128 calls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from gradxval.errors import GradxvalError
from gradxval.problems import closed_form, loss_from_sigmoid

from .base import Backend

__all__ = ["JaxBackend"]

_X64 = ("float64", "complex128")


def _loss(A, x):
    return loss_from_sigmoid(A, jax.nn.sigmoid(x), jnp)


def _autodiff(A, x):
    loss, (gA, gx) = jax.value_and_grad(_loss, argnums=(0, 1))(A, x)
    # jax.grad returns conj(dL/dRe + i dL/dIm) for complex inputs; normalise to torch's convention
    return loss, gx, jnp.conj(gA)


def _closed(A, x):
    return closed_form(A, x, jnp)


class JaxBackend(Backend):
    name = "jax"
    compiles = True

    def __init__(self) -> None:
        # one jit object per method: jax caches the compiled program per shape, dtype and x64
        # state, so a repeated shape never recompiles
        self._fns = {"autodiff": jax.jit(_autodiff), "closed_form": jax.jit(_closed)}

    def version(self) -> str:
        return jax.__version__

    def flags(self) -> dict[str, str]:
        return {
            "jax_enable_x64": "scoped: on for float64/complex128 only",
            "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
            "jax_platform": jax.default_backend(),
        }

    def _evaluate(self, method, A, x, dtype):
        with jax.enable_x64(dtype in _X64):
            jA, jx = jnp.asarray(A), jnp.asarray(x)
            if jA.dtype != A.dtype or jx.dtype != x.dtype:
                # without x64, jax silently turns float64 inputs into float32
                raise GradxvalError(
                    f"jax converted inputs to {jA.dtype}/{jx.dtype}, expected {A.dtype}/{x.dtype}"
                )
            loss, gx, gA = self._fns[method](jA, jx)
            out = {"loss": np.asarray(loss), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}
        return out
