"""torch on the CPU, float32 matmul precision 'highest'."""

from __future__ import annotations

import contextlib
import warnings
from types import SimpleNamespace

import array_api_compat.torch as xp
import ml_dtypes
import numpy as np
import torch
from gradxval.backends.base import Backend
from gradxval.errors import Unsupported
from gradxval.model.problems import closed_form, loss_from_sigmoid

__all__ = ["TorchBackend"]


def to_torch(a: np.ndarray) -> torch.Tensor:
    """Wrap a numpy array without copying; bfloat16 goes through its 16-bit pattern."""
    if a.dtype == ml_dtypes.bfloat16:
        # torch.from_numpy does not know ml_dtypes' bfloat16
        a = np.ascontiguousarray(a).view(np.int16)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            return torch.from_numpy(a).view(torch.bfloat16)
    with warnings.catch_warnings():
        # the harness hands inputs over read-only and torch tensors have no read-only flag, so
        # torch warns; writes through the tensor are still caught by the input digests
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(a)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detach, copy to host, and convert back to numpy (bfloat16 as ml_dtypes.bfloat16)."""
    t = t.detach().cpu().resolve_conj().resolve_neg()  # lazy conj views cannot become numpy
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


@contextlib.contextmanager
def _highest_matmul_precision():
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


# forward mode over A pushes one tangent per entry of A: only for A this small
_FORWARD_MAX_A = 4096


def _column_loss(A, xc):
    return loss_from_sigmoid(A, torch.sigmoid(xc), xp)


# what users call for each activation problem (issue 13): library derivative rules live there
_LIBRARY = {
    "logistic": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": torch.nn.functional.softplus,
    "logsigmoid": torch.nn.functional.logsigmoid,
}


_F = torch.nn.functional
_NN = SimpleNamespace(
    sigmoid=torch.sigmoid,
    log_sigmoid=_F.logsigmoid,
    softplus=_F.softplus,
    silu=_F.silu,
    gelu=lambda x, approximate="none": _F.gelu(x, approximate=approximate),
    relu=_F.relu,
    tanh=torch.tanh,
    erf=torch.special.erf,
    expm1=torch.expm1,
    log1p=torch.log1p,
    logsumexp=lambda x, axis=-1, keepdims=False: torch.logsumexp(x, dim=axis, keepdim=keepdims),
    softmax=lambda x, axis=-1: torch.softmax(x, dim=axis),
    log_softmax=lambda x, axis=-1: torch.log_softmax(x, dim=axis),
    cross_entropy=lambda logits, labels, label_smoothing=0.0: _F.cross_entropy(
        logits, labels.long(), label_smoothing=label_smoothing
    ),
    layer_norm=lambda x, weight=None, bias=None, eps=1e-5: _F.layer_norm(
        x, x.shape[-1:], weight, bias, eps
    ),
    rms_norm=lambda x, weight=None, eps=1e-6: _F.rms_norm(x, x.shape[-1:], weight, eps),
    xlogy=torch.special.xlogy,
    norm=lambda x, axis=None, keepdims=False: torch.linalg.vector_norm(
        x, dim=axis, keepdim=keepdims
    ),
)


class TorchBackend(Backend):
    name = "torch"
    methods = ("autodiff", "closed_form", "forward", "vmap")
    function_methods = ("autodiff", "forward", "hvp", "formula")

    def nn_namespace(self):
        return _NN

    def _differentiate(self, method, f, args, wrt, extra):
        from torch.func import grad, jvp

        with _highest_matmul_precision():
            if method == "autodiff":
                leaves = {k: args[k].detach().requires_grad_(True) for k in wrt}
                loss = f(**{**args, **leaves})
                grads = torch.autograd.grad(loss, tuple(leaves.values()), allow_unused=True)
                out = {"loss": loss}
                for (k, leaf), g in zip(leaves.items(), grads, strict=True):
                    out[f"grad_{k}"] = torch.zeros_like(leaf) if g is None else g
                return out

            def of_wrt(*vals):
                return f(**{**args, **dict(zip(wrt, vals, strict=True))})

            primals = tuple(args[k] for k in wrt)
            tangents = tuple(extra[k] for k in wrt)
            if method == "forward":
                return {"jvp": jvp(of_wrt, primals, tangents)[1]}
            if method == "hvp":
                _, hv = jvp(grad(of_wrt, argnums=tuple(range(len(wrt)))), primals, tangents)
                return {f"hvp_{k}": h for k, h in zip(wrt, hv, strict=True)}
        return super()._differentiate(method, f, args, wrt, extra)

    # forward-over-reverse: torch.func.jvp of torch.func.grad; reverse-over-reverse:
    # torch.autograd.grad with create_graph=True, then a VJP with v
    hvp_routes = ("fwd_over_rev", "rev_over_rev")

    def library(self, name):
        return _LIBRARY.get(name)

    def _hvp(self, method, fn, A, x, v, dtype):
        tA, tx, tv = to_torch(A), to_torch(x), to_torch(v)
        with _highest_matmul_precision():
            if method == "fwd_over_rev":
                from torch.func import grad, jvp

                _, hv = jvp(grad(lambda x: fn(tA, x, xp)), (tx,), (tv,))
            else:
                tx = tx.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(fn(tA, tx, xp), tx, create_graph=True, allow_unused=True)
                hv = None
                if g is not None and g.requires_grad:  # else the gradient is constant in x
                    (hv,) = torch.autograd.grad(g, tx, grad_outputs=tv, allow_unused=True)
                hv = torch.zeros_like(tx) if hv is None else hv
        return to_numpy(hv)

    def version(self) -> str:
        return torch.__version__

    def autodiff(self, fn, A, x, dtype):
        tA = to_torch(A).detach().requires_grad_(True)
        tx = to_torch(x).detach().requires_grad_(True)
        with _highest_matmul_precision():
            loss = fn(tA, tx, xp)
            gA, gx = torch.autograd.grad(loss, (tA, tx), allow_unused=True)
        gA = torch.zeros_like(tA) if gA is None else gA
        gx = torch.zeros_like(tx) if gx is None else gx
        return {"loss": to_numpy(loss), "grad_x": to_numpy(gx), "grad_A": to_numpy(gA)}

    def formula_namespace(self):
        return xp, to_torch, to_numpy, lambda dtype: _highest_matmul_precision()

    def flags(self) -> dict[str, str]:
        return {
            "float32_matmul_precision": "highest (scoped per call)",
            "device": "cpu",
            "threads": str(torch.get_num_threads()),
        }

    def _evaluate(self, method, A, x, dtype):
        tA, tx = to_torch(A), to_torch(x)
        with _highest_matmul_precision():
            if method == "closed_form":
                with torch.no_grad():
                    loss, gx, gA = closed_form(tA, tx, xp)
            elif method == "forward":
                loss, gx, gA = self._forward(tA, tx)
            elif method == "vmap":
                loss, gx, gA = self._vmapped(tA, tx)
            else:
                tA = tA.detach().requires_grad_(True)
                tx = tx.detach().requires_grad_(True)
                loss = loss_from_sigmoid(tA, torch.sigmoid(tx), xp)
                gA, gx = torch.autograd.grad(loss, (tA, tx), allow_unused=True)
                # an empty A or x leaves the other unused: its gradient is zeros
                gA = torch.zeros_like(tA) if gA is None else gA
                gx = torch.zeros_like(tx) if gx is None else gx
        return {
            "loss": to_numpy(loss),
            "grad_x": to_numpy(gx),
            "grad_A": None if gA is None else to_numpy(gA),
        }

    @staticmethod
    def _forward(tA, tx):
        """Forward mode (torch.func.jacfwd): real A only; grad_A only for small A."""
        from torch.func import jacfwd

        if tA.is_complex():
            raise Unsupported("torch.func.jacfwd takes real inputs only")

        def f(A, x):
            return loss_from_sigmoid(A, torch.sigmoid(x), xp)

        gx = jacfwd(f, argnums=1)(tA, tx)
        gA = None
        if tA.numel() <= _FORWARD_MAX_A:
            gA = jacfwd(f, argnums=0)(tA, tx)
        with torch.no_grad():
            return f(tA, tx), gx, gA

    @staticmethod
    def _vmapped(tA, tx):
        """torch.func.vmap of the per-column gradient over the batch axis k."""
        from torch.func import grad_and_value, vmap

        if tx.ndim != 2:
            raise Unsupported("vmap needs a batch axis: x of shape (n, k)")
        (gA, gx), values = vmap(
            grad_and_value(_column_loss, argnums=(0, 1)), in_dims=(None, 1), out_dims=((0, 1), 0)
        )(tA, tx)
        # torch.func.grad keeps torch.autograd's complex convention: no conjugation
        return values.sum(), gx, gA.sum(0)
