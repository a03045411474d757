"""jax on its default device, jit-compiled; x64 mode scoped to float64/complex128 calls."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from gradxval.backends import JAX_CACHE_ENV
from gradxval.backends.base import Backend
from gradxval.errors import GradxvalError, Unsupported
from gradxval.model.problems import closed_form, loss_from_sigmoid

__all__ = ["JaxBackend"]


def _nn():
    from types import SimpleNamespace

    import jax.scipy.special as jsp
    from gradxval.model.nn import cross_entropy_from, layer_norm_from, rms_norm_from

    # jax has no cross_entropy, layer_norm or rms_norm of its own (they live in optax/flax)
    return SimpleNamespace(
        sigmoid=jax.nn.sigmoid,
        log_sigmoid=jax.nn.log_sigmoid,
        softplus=jax.nn.softplus,
        silu=jax.nn.silu,
        gelu=lambda x, approximate="none": jax.nn.gelu(x, approximate=approximate == "tanh"),
        relu=jax.nn.relu,
        tanh=jnp.tanh,
        erf=jsp.erf,
        expm1=jnp.expm1,
        log1p=jnp.log1p,
        logsumexp=lambda x, axis=-1, keepdims=False: jax.nn.logsumexp(x, axis, keepdims=keepdims),
        softmax=lambda x, axis=-1: jax.nn.softmax(x, axis=axis),
        log_softmax=lambda x, axis=-1: jax.nn.log_softmax(x, axis=axis),
        cross_entropy=cross_entropy_from(jnp, jax.nn.log_softmax, jnp.take_along_axis),
        layer_norm=layer_norm_from(jnp),
        rms_norm=rms_norm_from(jnp),
        xlogy=jsp.xlogy,
        norm=lambda x, axis=None, keepdims=False: jnp.linalg.norm(x, axis=axis, keepdims=keepdims),
    )


_X64 = ("float64", "complex128")


def _loss(A, x):
    return loss_from_sigmoid(A, jax.nn.sigmoid(x), jnp)


def _autodiff(A, x):
    loss, (gA, gx) = jax.value_and_grad(_loss, argnums=(0, 1))(A, x)
    # jax.grad returns conj(dL/dRe + i dL/dIm) for complex inputs; normalise to torch's convention
    return loss, gx, jnp.conj(gA)


def _closed(A, x):
    return closed_form(A, x, jnp)


def _forward(A, x):
    # forward mode: one tangent per entry of x (and of A, when real); jacfwd rejects complex
    # inputs of a real function, so grad_A comes back None for complex A
    gx = jax.jacfwd(_loss, argnums=1)(A, x)
    gA = None if jnp.iscomplexobj(A) else jax.jacfwd(_loss, argnums=0)(A, x)
    return _loss(A, x), gx, gA


def _forward_x(A, x):
    return _loss(A, x), jax.jacfwd(_loss, argnums=1)(A, x), None


def _column_loss(A, xc):
    return loss_from_sigmoid(A, jax.nn.sigmoid(xc), jnp)


def _vmapped(A, x):
    # the batch loss is the sum of per-column losses: vmap the per-column gradient over k
    values, (gA, gx) = jax.vmap(
        jax.value_and_grad(_column_loss, argnums=(0, 1)), in_axes=(None, 1), out_axes=(0, (0, 1))
    )(A, x)
    return jnp.sum(values), gx, jnp.conj(jnp.sum(gA, axis=0))


def _fwd_over_rev(fn):
    def run(A, x, v):
        return jax.jvp(jax.grad(lambda x: fn(A, x, jnp)), (x,), (v,))[1]

    return run


def _rev_over_rev(fn):
    def run(A, x, v):
        # the VJP of the gradient with v is H^T v = H v: the Hessian is symmetric
        _, pull = jax.vjp(jax.grad(lambda x: fn(A, x, jnp)), x)
        return pull(v)[0]

    return run


_ROUTES = {"fwd_over_rev": _fwd_over_rev, "rev_over_rev": _rev_over_rev}
# what users call for each activation problem (issue 13): library derivative rules live there
_LIBRARY = {
    "logistic": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "logsigmoid": jax.nn.log_sigmoid,
}

# forward mode over A pushes one tangent per entry of A: only for A this small
_FORWARD_MAX_A = 4096


def _cache_dir() -> str | None:
    """A per-user directory for jax's persistent compilation cache, or None when it is off."""
    if os.environ.get(JAX_CACHE_ENV, "on") == "off":
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gradxval", "jax", jax.__version__)


def _enable_cache() -> str | None:
    """Compiled programs survive the process: a second run compiles nothing (XLA compiles are
    most of a default run's CPU, issue 12).  Set in the backend's own worker process only."""
    path = _cache_dir()
    if path is None:
        return None
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
    methods = ("autodiff", "closed_form", "forward", "vmap", "eager")
    hvp_routes = tuple(_ROUTES)  # jvp of grad; vjp of grad

    def __init__(self) -> None:
        self._cache = _enable_cache()
        self._nn = None
        # one jit object per method: jax caches the compiled program per shape, dtype and x64
        # state, so a repeated shape never recompiles.  "eager" is the autodiff unjitted.
        self._fns = {
            "autodiff": jax.jit(_autodiff),
            "closed_form": jax.jit(_closed),
            "forward": jax.jit(_forward),
            "forward_x": jax.jit(_forward_x),
            "vmap": jax.jit(_vmapped),
            "eager": _autodiff,
        }

    def version(self) -> str:
        return jax.__version__

    def library(self, name):
        return _LIBRARY.get(name)

    def _hvp(self, method, fn, A, x, v, dtype):
        key = (method, fn)
        if key not in self._fns:
            self._fns[key] = jax.jit(_ROUTES[method](fn))
        with jax.enable_x64(dtype in _X64):
            jA, jx, jv = (jax.device_put(np.ascontiguousarray(a)) for a in (A, x, v))
            if jx.dtype != x.dtype:
                raise GradxvalError(f"jax converted x to {jx.dtype}, expected {x.dtype}")
            return np.asarray(self._fns[key](jA, jx, jv))

    def autodiff(self, fn, A, x, dtype):
        key = ("autodiff", fn)
        if key not in self._fns:

            def run(A, x):
                loss, (gA, gx) = jax.value_and_grad(lambda A, x: fn(A, x, jnp), (0, 1))(A, x)
                return loss, gx, jnp.conj(gA)

            self._fns[key] = jax.jit(run)
        with jax.enable_x64(dtype in _X64):
            loss, gx, gA = self._fns[key](
                jax.device_put(np.ascontiguousarray(A)), jax.device_put(x)
            )
            return {"loss": np.asarray(loss), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}

    def formula_namespace(self):
        return jnp, jax.device_put, np.asarray, lambda dtype: jax.enable_x64(dtype in _X64)

    function_methods = ("autodiff", "jit", "forward", "hvp", "formula")

    def nn_namespace(self):
        if self._nn is None:
            self._nn = _nn()
        return self._nn

    def _differentiate(self, method, f, args, wrt, extra):
        def of_wrt(*vals):
            return f(**{**args, **dict(zip(wrt, vals, strict=True))})

        primals = tuple(args[k] for k in wrt)
        argnums = tuple(range(len(wrt)))
        if method == "jit":
            # one compiled program per function (jax caches it per shape and dtype); the other
            # inputs are arguments, not constants closed over, so cases share it
            key = ("jit", f, wrt)
            if key not in self._fns:

                def run(primals, others):
                    def g(*vals):
                        return f(**others, **dict(zip(wrt, vals, strict=True)))

                    return jax.value_and_grad(g, argnums=argnums)(*primals)

                self._fns[key] = jax.jit(run)
            others = {k: v for k, v in args.items() if k not in wrt}
            loss, grads = self._fns[key](primals, others)
            return {"loss": loss, **{f"grad_{k}": g for k, g in zip(wrt, grads, strict=True)}}
        if method == "autodiff":
            loss, grads = jax.value_and_grad(of_wrt, argnums=argnums)(*primals)
            return {"loss": loss, **{f"grad_{k}": g for k, g in zip(wrt, grads, strict=True)}}
        tangents = tuple(extra[k] for k in wrt)
        if method == "forward":
            return {"jvp": jax.jvp(of_wrt, primals, tangents)[1]}
        if method == "hvp":
            _, hv = jax.jvp(jax.grad(of_wrt, argnums=argnums), primals, tangents)
            return {f"hvp_{k}": h for k, h in zip(wrt, hv, strict=True)}
        return super()._differentiate(method, f, args, wrt, extra)

    def flags(self) -> dict[str, str]:
        return {
            "jax_enable_x64": "scoped: on for float64/complex128 only",
            "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
            "jax_platform": jax.default_backend(),
            "compilation_cache": "on" if self._cache else "off",
        }

    def _evaluate(self, method, A, x, dtype):
        with jax.enable_x64(dtype in _X64):
            # device_put, not asarray: asarray of a numpy array compiles a jit(stage) program
            # per shape (issue 12)
            jA, jx = jax.device_put(np.ascontiguousarray(A)), jax.device_put(x)
            if jA.dtype != A.dtype or jx.dtype != x.dtype:
                # without x64, jax silently turns float64 inputs into float32
                raise GradxvalError(
                    f"jax converted inputs to {jA.dtype}/{jx.dtype}, expected {A.dtype}/{x.dtype}"
                )
            if method == "vmap" and jx.ndim != 2:
                raise Unsupported("vmap needs a batch axis: x of shape (n, k)")
            if method == "forward" and jA.size > _FORWARD_MAX_A:
                method = "forward_x"
            loss, gx, gA = self._fns[method](jA, jx)
            return {
                q: None if v is None else np.asarray(v)
                for q, v in (("loss", loss), ("grad_x", gx), ("grad_A", gA))
            }
