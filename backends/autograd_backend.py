"""HIPS autograd: reverse mode over numpy; library operations from autograd.scipy.special.

autograd.scipy.special offers expit, erf and logsumexp, and nothing else of model.nn's list:
the rest is composed from autograd.numpy, the way an autograd user writes it (softplus and
log-sigmoid as logaddexp, whose rule is a registered fault).
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import array_api_compat.numpy as array_api
import autograd
import autograd.numpy as anp
import numpy as np
from autograd.scipy.special import erf, expit, logsumexp
from gradxval.backends.base import Backend
from gradxval.errors import Unsupported
from gradxval.model import nn

__all__ = ["AutogradBackend"]


def _log_softmax(x, axis=-1):
    return x - logsumexp(x, axis=axis, keepdims=True)


def _take_along_axis(a, idx, axis):
    # autograd.numpy has no take_along_axis: index with broadcast integer arrays instead
    grids = [anp.arange(n).reshape([-1 if k == d else 1 for k in range(a.ndim)])
             for d, n in enumerate(a.shape)]  # fmt: skip
    grids[axis] = idx
    return a[tuple(grids)]


_NN = SimpleNamespace(
    sigmoid=expit, log_sigmoid=lambda x: -anp.logaddexp(0.0, -x),
    softplus=lambda x: anp.logaddexp(0.0, x), silu=lambda x: x * expit(x),
    gelu=lambda x, approximate="none": nn.gelu_tanh_from(anp.tanh)(x) if approximate == "tanh"
    else x * 0.5 * (1.0 + erf(x * 0.5**0.5)),
    relu=lambda x: anp.maximum(x, 0.0), tanh=anp.tanh, erf=erf, expm1=anp.expm1, log1p=anp.log1p,
    logsumexp=lambda x, axis=-1, keepdims=False: logsumexp(x, axis=axis, keepdims=keepdims),
    softmax=lambda x, axis=-1: anp.exp(_log_softmax(x, axis)), log_softmax=_log_softmax,
    cross_entropy=nn.cross_entropy_from(anp, _log_softmax, _take_along_axis),
    layer_norm=nn.layer_norm_from(anp), rms_norm=nn.rms_norm_from(anp),
    xlogy=nn.xlogy_from(anp), norm=nn.norm_from(anp),
)  # fmt: skip


# array-api-compat's numpy, with autograd's traced real, imag, conj and astype: numpy's own
# take autograd's boxes as plain objects (np.real of a box is not traced)
# Where autograd wraps the numpy function the namespace names, its wrapper: numpy's own reach a
# box through object arrays, which keeps the trace for most inputs but not for empty ones (the
# loss comes back float64, "Output seems independent of input")
# (functions only: numpy's types, np.int64 or np.integer, stay numpy's for isinstance and
# issubdtype)
def _traced(k: str, v):
    wrapped = getattr(anp, k, v)
    if v is getattr(np, k, None) and wrapped is not v and callable(v) and not isinstance(v, type):
        return wrapped
    return v


_XP = SimpleNamespace(**{k: _traced(k, getattr(array_api, k)) for k in dir(array_api)
                         if k[:2] != "__"})  # fmt: skip
_XP.real, _XP.imag, _XP.conj = anp.real, anp.imag, anp.conj
_XP.astype = lambda a, dtype, /, copy=True: a.astype(dtype)


class _Quiet(warnings.catch_warnings):
    """np.errstate(all="ignore") and no warnings: autograd warns on complex -> real casts."""

    def __enter__(self):
        self._err = np.seterr(all="ignore")
        super().__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        np.seterr(**self._err)
        return super().__exit__(*exc)


class AutogradBackend(Backend):
    name = "autograd"
    conj_grads = True  # autograd gives conj(dL/dRe + i dL/dIm) for complex inputs
    methods = ("autodiff", "closed_form", "forward")
    # forward on every problem: its findings there are forward mode's NaN from a non-finite
    # input and its tanh JVP g / cosh(x)**2, both registered
    problem_methods = ("forward",)
    function_methods = ("autodiff", "vjp", "hvp", "formula")
    hvp_routes = ("fwd_over_rev", "rev_over_rev")
    hvp_route = "rev_over_rev"  # fwd_over_rev needs forward rules autograd lacks (expit)
    supported = ("float32", "float64", "complex64", "complex128")
    unsupported_reasons = {
        "float16": "scipy.special.expit has no float16 loop, so autograd computes in float32",
        "bfloat16": "autograd traces numpy, and scipy.special has no bfloat16 loops",
    }
    xp = _XP

    def version(self) -> str:
        from importlib.metadata import version

        return version("autograd")

    def scope(self, dtype):
        return _Quiet()

    def nn_namespace(self):
        return _NN

    def value_and_grad(self, f, argnums):
        return autograd.value_and_grad(f, argnums)

    def vjp(self, f, primals, cotangent):
        pull, out = autograd.make_vjp(f, tuple(range(len(primals))))(*primals)
        return pull(np.asarray(cotangent, dtype=np.asarray(out).dtype))

    def jvp(self, f, primals, tangents):
        n = tuple(range(len(primals)))
        try:
            return autograd.make_jvp(f, n)(*primals)(tangents)
        except NotImplementedError as exc:  # autograd 1.x defines expit's VJP only
            raise Unsupported(f"autograd has no forward-mode rule: {exc}") from None
