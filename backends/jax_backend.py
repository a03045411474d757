"""jax on its default device, jit-compiled; x64 mode scoped to float64/complex128 calls."""

from __future__ import annotations

import os
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
from gradxval.backends import JAX_CACHE_ENV
from gradxval.backends.base import Backend
from gradxval.errors import GradxvalError
from gradxval.model.nn import cross_entropy_from, layer_norm_from, rms_norm_from

__all__ = ["JaxBackend"]

# jax has no cross_entropy, layer_norm or rms_norm of its own (they live in optax/flax)
_NN = SimpleNamespace(
    sigmoid=jax.nn.sigmoid, log_sigmoid=jax.nn.log_sigmoid, softplus=jax.nn.softplus,
    silu=jax.nn.silu, relu=jax.nn.relu, tanh=jnp.tanh, erf=jsp.erf, expm1=jnp.expm1,
    log1p=jnp.log1p, xlogy=jsp.xlogy,
    gelu=lambda x, approximate="none": jax.nn.gelu(x, approximate=approximate == "tanh"),
    logsumexp=lambda x, axis=-1, keepdims=False: jax.nn.logsumexp(x, axis, keepdims=keepdims),
    softmax=lambda x, axis=-1: jax.nn.softmax(x, axis=axis),
    log_softmax=lambda x, axis=-1: jax.nn.log_softmax(x, axis=axis),
    cross_entropy=cross_entropy_from(jnp, jax.nn.log_softmax, jnp.take_along_axis),
    layer_norm=layer_norm_from(jnp), rms_norm=rms_norm_from(jnp),
    norm=lambda x, axis=None, keepdims=False: jnp.linalg.norm(x, axis=axis, keepdims=keepdims),
)  # fmt: skip


def _to_jax(a: np.ndarray):
    # device_put, not asarray: asarray of a numpy array compiles a program per shape (issue
    # 12); without x64 jax silently turns float64 into float32, so the dtype is checked
    # (integer labels may narrow to int32: they only index)
    out = jax.device_put(np.asarray(a, order="C"))  # (ascontiguousarray makes 0-d 1-d)
    if out.dtype != a.dtype and a.dtype.kind not in "iub":
        raise GradxvalError(f"jax converted an input to {out.dtype}, expected {a.dtype}")
    return out


def _enable_cache() -> str | None:
    """A persistent compilation cache per user and jax version: a second run compiles nothing
    (XLA compiles are most of a default run's CPU, issue 12).  Set in the worker only."""
    if os.environ.get(JAX_CACHE_ENV, "on") == "off":
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "gradxval", "jax", jax.__version__)
    try:
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except (OSError, AttributeError):  # read-only home, or a jax without the options
        return None
    return path


class JaxBackend(Backend):
    name = "jax"
    compiles = True
    conj_grads = True  # jax.grad gives conj(dL/dRe + i dL/dIm) for complex inputs
    methods = ("autodiff", "closed_form", "forward", "vmap", "eager")
    function_methods = ("autodiff", "jit", "forward", "vjp", "hvp", "formula", "vmap")
    # every method on tanh, softplus and logsigmoid too: once triaged, no finding there that
    # the registry does not explain (forward 2026-12-07; eager and vmap 2026-12-08: eager's
    # tanh VJP in transposed order, vmap's per-column sums overflowing in float16)
    problem_methods = ("forward", "vmap", "eager")
    hvp_routes = ("fwd_over_rev", "rev_over_rev")
    xp = jnp
    to_backend = staticmethod(_to_jax)
    jit = staticmethod(jax.jit)
    vmap = staticmethod(jax.vmap)
    jacfwd = staticmethod(lambda f, argnum: jax.jacfwd(f, argnums=argnum))
    value_and_grad = staticmethod(lambda f, argnums: jax.value_and_grad(f, argnums=argnums))
    jvp = staticmethod(jax.jvp)

    def __init__(self) -> None:
        self._cache = _enable_cache()

    def version(self) -> str:
        return jax.__version__

    def vjp(self, f, primals, cotangent):
        out, pull = jax.vjp(f, *primals)
        return pull(jnp.asarray(cotangent, dtype=jnp.result_type(out)))

    def scope(self, dtype):
        return jax.enable_x64(dtype in ("float64", "complex128"))

    def nn_namespace(self):
        return _NN

    def flags(self) -> dict[str, str]:
        return {
            "jax_enable_x64": "scoped: on for float64/complex128 only",
            "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
            "jax_platform": jax.default_backend(),
            "compilation_cache": "on" if self._cache else "off",
        }
