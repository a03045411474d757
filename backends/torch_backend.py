"""torch on the CPU, float32 matmul precision 'highest' (scoped per call)."""

from __future__ import annotations

import contextlib
import warnings
from types import SimpleNamespace

import array_api_compat.torch as xp
import ml_dtypes
import numpy as np
import torch
import torch.func as tf
from gradxval.backends.base import Backend

__all__ = ["TorchBackend"]
_F = torch.nn.functional


def to_torch(a: np.ndarray) -> torch.Tensor:
    """Wrap a numpy array without copying; bfloat16 goes through its 16-bit pattern (torch
    does not know ml_dtypes' bfloat16).  The harness hands inputs over read-only, and torch
    warns for that: writes through the tensor are still caught by the input digests."""
    bf16 = a.dtype == ml_dtypes.bfloat16
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        t = torch.from_numpy(np.asarray(a, order="C").view(np.int16) if bf16 else a)
    return t.view(torch.bfloat16) if bf16 else t


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().resolve_conj().resolve_neg()  # lazy conj views cannot become numpy
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


@contextlib.contextmanager
def _highest_matmul_precision(dtype=None):
    with contextlib.ExitStack() as undo:  # the caller's precision back on any exit
        undo.callback(torch.set_float32_matmul_precision, torch.get_float32_matmul_precision())
        torch.set_float32_matmul_precision("highest")
        yield


_NN = SimpleNamespace(
    sigmoid=torch.sigmoid, log_sigmoid=_F.logsigmoid, softplus=_F.softplus, silu=_F.silu,
    gelu=lambda x, approximate="none": _F.gelu(x, approximate=approximate), relu=_F.relu,
    tanh=torch.tanh, erf=torch.special.erf, expm1=torch.expm1, log1p=torch.log1p,
    logsumexp=lambda x, axis=-1, keepdims=False: torch.logsumexp(x, dim=axis, keepdim=keepdims),
    softmax=lambda x, axis=-1: torch.softmax(x, dim=axis),
    log_softmax=lambda x, axis=-1: torch.log_softmax(x, dim=axis),
    cross_entropy=lambda logits, labels, label_smoothing=0.0: _F.cross_entropy(
        logits, labels.long(), label_smoothing=label_smoothing),
    layer_norm=lambda x, weight=None, bias=None, eps=1e-5: _F.layer_norm(
        x, x.shape[-1:], weight, bias, eps),
    rms_norm=lambda x, weight=None, eps=1e-6: _F.rms_norm(x, x.shape[-1:], weight, eps),
    xlogy=torch.special.xlogy,
    norm=lambda x, axis=None, keepdims=False: torch.linalg.vector_norm(
        x, dim=axis, keepdim=keepdims),
)  # fmt: skip


class TorchBackend(Backend):
    name = "torch"
    methods = ("autodiff", "closed_form", "forward", "vmap")
    function_methods = ("autodiff", "forward", "vjp", "hvp", "formula", "vmap")
    # every method on tanh, softplus and logsigmoid too: forward's only findings were
    # softplus's threshold, registered (torch-softplus-linear-above-threshold); vmap's, the
    # per-column sums overflowing in float16 (an honest outcome)
    problem_methods = ("forward", "vmap")
    hvp_routes = ("fwd_over_rev", "rev_over_rev")
    xp = xp
    to_backend = staticmethod(to_torch)
    to_numpy = staticmethod(to_numpy)
    scope = staticmethod(_highest_matmul_precision)
    jacfwd = staticmethod(lambda f, argnum: tf.jacfwd(f, argnums=argnum))
    forward_real_only = True  # torch.func.jacfwd takes real inputs only

    def version(self) -> str:
        return torch.__version__

    def flags(self) -> dict[str, str]:
        return {"float32_matmul_precision": "highest (scoped per call)", "device": "cpu",
                "threads": str(torch.get_num_threads())}  # fmt: skip

    def nn_namespace(self):
        return _NN

    def reverse(self, f, primals):
        return _backward(f, primals, None)

    def vjp(self, f, primals, cotangent):
        return _backward(f, primals, cotangent)[1]

    def value_and_grad(self, f, argnums):
        grad = tf.grad_and_value(f, argnums=argnums)
        return lambda *p: tuple(reversed(grad(*p)))

    def jvp(self, f, primals, tangents):
        return tf.jvp(f, primals, tangents)

    def vmap(self, f, in_axes, out_axes):
        return tf.vmap(f, in_dims=in_axes, out_dims=out_axes)


def _backward(f, primals, cotangent):
    """What users call: the autograd engine, loss.backward(c) (c = 1 without a cotangent), not
    torch.func; an input the loss does not use (an empty A or x) gets zeros."""
    leaves = [p.detach().requires_grad_(True) for p in primals]
    loss = f(*leaves)
    c = None if cotangent is None else torch.tensor(cotangent, dtype=loss.dtype)
    grads = torch.autograd.grad(loss, leaves, grad_outputs=c, allow_unused=True)
    return loss, tuple(torch.zeros_like(p) if g is None else g
                       for p, g in zip(leaves, grads, strict=True))  # fmt: skip
