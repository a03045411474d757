"""Backends with one planted fault each, of kinds seen in the wild.  Used by the verdict tests."""

from __future__ import annotations

import time

import array_api_compat.numpy as xp
import numpy as np

from gradxval.backends.base import Backend
from gradxval.problems import closed_form, stable_sigmoid_pair


class _NumpyFault(Backend):
    """numpy's closed form with a fault applied to its output."""

    methods = ("closed_form",)

    def version(self) -> str:
        return np.__version__

    def _evaluate(self, method, A, x, dtype):
        with np.errstate(all="ignore"):
            loss, gx, gA = closed_form(A, x, xp)
            return self.fault(A, x, {"loss": np.asarray(loss), "grad_x": np.asarray(gx),
                                     "grad_A": np.asarray(gA)})

    def fault(self, A, x, r):
        return r


class FactorTwo(_NumpyFault):
    name = "factor2"

    def fault(self, A, x, r):
        r["grad_x"] = r["grad_x"] * 2
        return r


class SigmaForSigmaPrime(_NumpyFault):
    """grad_x = 2 sigma(x) * A^T A sigma(x): sigma where sigma' belongs."""

    name = "sigma_not_prime"

    def fault(self, A, x, r):
        s, _ = stable_sigmoid_pair(x, np)
        r["grad_x"] = (2 * s * (A.T @ (A @ s))).astype(r["grad_x"].dtype)
        return r


class MissingTranspose(_NumpyFault):
    """grad_x = 2 sigma' * A (A sigma): A where A^T belongs (square A only)."""

    name = "missing_transpose"

    def fault(self, A, x, r):
        s, sn = stable_sigmoid_pair(x, np)
        r["grad_x"] = (2 * s * sn * (A @ (A @ s))).astype(r["grad_x"].dtype)
        return r


class Float32Inside(_NumpyFault):
    """float64 silently computed in float32, then cast back to float64."""

    name = "f32_inside"

    def _evaluate(self, method, A, x, dtype):
        low = {"float64": np.float32, "complex128": np.complex64}.get(dtype)
        if low is None:
            return super()._evaluate(method, A, x, dtype)
        r = super()._evaluate(method, A.astype(low), x.astype(np.float32), dtype)
        return {q: v.astype(np.complex128 if np.iscomplexobj(v) else np.float64)
                for q, v in r.items()}


class ConjDropped(_NumpyFault):
    """Complex grad_A returned in jax's convention without the conjugation to torch's."""

    name = "conj_dropped"

    def fault(self, A, x, r):
        r["grad_A"] = np.conj(r["grad_A"])
        return r


class NormSquaredJax(Backend):
    """jax autodiff of ||A sigma(x)||**2 written with jnp.linalg.norm: NaN gradient at A = 0.

    (torch's norm backward returns the zero subgradient there; jax's divides by the norm.)
    """

    name = "norm_squared"
    methods = ("autodiff",)
    supported = ("float32",)

    def version(self) -> str:
        import jax

        return jax.__version__

    def _evaluate(self, method, A, x, dtype):
        import jax
        import jax.numpy as jnp

        def loss(A, x):
            return jnp.linalg.norm(A @ jax.nn.sigmoid(x)) ** 2

        value, (gA, gx) = jax.value_and_grad(loss, argnums=(0, 1))(jnp.asarray(A), jnp.asarray(x))
        return {"loss": np.asarray(value), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}


class Raises(_NumpyFault):
    name = "raises"

    def _evaluate(self, method, A, x, dtype):
        raise RuntimeError("planted failure")


class Hangs(_NumpyFault):
    name = "hangs"

    def _evaluate(self, method, A, x, dtype):
        time.sleep(3600)


class Mutates(_NumpyFault):
    name = "mutates"

    def fault(self, A, x, r):
        x[...] = 0
        return r


class ReturnsList(_NumpyFault):
    name = "returns_list"

    def fault(self, A, x, r):
        r["grad_x"] = r["grad_x"].tolist()
        return r
