"""torch on the CPU, float32 matmul precision 'highest'."""

from __future__ import annotations

import contextlib

import array_api_compat.torch as xp
import ml_dtypes
import numpy as np
import torch
from gradxval.problems import closed_form, loss_from_sigmoid

from .base import Backend

__all__ = ["TorchBackend"]


def to_torch(a: np.ndarray) -> torch.Tensor:
    """Wrap a numpy array without copying; bfloat16 goes through its 16-bit pattern."""
    if a.dtype == ml_dtypes.bfloat16:
        # torch.from_numpy does not know ml_dtypes' bfloat16
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detach, copy to host, and convert back to numpy (bfloat16 as ml_dtypes.bfloat16)."""
    t = t.detach().cpu()
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


class TorchBackend(Backend):
    name = "torch"

    def version(self) -> str:
        return torch.__version__

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
            else:
                tA = tA.detach().requires_grad_(True)
                tx = tx.detach().requires_grad_(True)
                loss = loss_from_sigmoid(tA, torch.sigmoid(tx), xp)
                gA, gx = torch.autograd.grad(loss, (tA, tx), allow_unused=True)
                # an empty A or x leaves the other unused: its gradient is zeros
                gA = torch.zeros_like(tA) if gA is None else gA
                gx = torch.zeros_like(tx) if gx is None else gx
        return {"loss": to_numpy(loss), "grad_x": to_numpy(gx), "grad_A": to_numpy(gA)}
