"""Framework-only reproducer recipes, one per built-in backend (gradxval.followup.repro).

A recipe is (setup, calls): ``setup`` imports the framework, defines ``xp``, ``COMPLEX``,
``cast(a, dtype)``, ``to_backend(a)`` (numpy in, framework array out) and the methods' own
functions; ``calls`` maps a method to the expression returning (loss, grad_x, grad_A) for the
seed problem.  The scripts import nothing of gradxval, so none of this imports a framework here.
A plug-in backend gives its own recipe as the class attribute ``repro_recipe``.
"""

from __future__ import annotations

__all__ = ["RECIPES", "recipe"]

# backend -> (imports and input conversion, how each method computes (loss, grad_x, grad_A))
RECIPES = {
    "numpy": (
        """
import ml_dtypes  # noqa: F401  (numpy's bfloat16)
xp = np
COMPLEX = (np.complex64, np.complex128)


def cast(a, dtype):
    return a.astype(dtype)


def to_backend(a):
    return a.view(ml_dtypes.bfloat16) if BF16 and a.dtype == np.uint16 else a
""",
        {"closed_form": "closed_form(A, x)"},
    ),
    "autograd": (
        """
import autograd
import autograd.numpy as xp
import ml_dtypes
from autograd.scipy.special import expit
COMPLEX = (np.complex64, np.complex128)


def cast(a, dtype):
    return a.astype(dtype)


def to_backend(a):
    return a.view(ml_dtypes.bfloat16) if BF16 and a.dtype == np.uint16 else a


def autodiff(A, x):
    f = lambda A, x: loss_of(A, expit(x))
    loss, gA = autograd.value_and_grad(f, 0)(A, x)
    return loss, autograd.grad(f, 1)(A, x), np.conj(gA)  # torch's complex convention
""",
        {"closed_form": "closed_form(A, x)", "autodiff": "autodiff(A, x)"},
    ),
    "jax": (
        """
import jax
import jax.numpy as xp
if DTYPE in ("float64", "complex128"):
    jax.config.update("jax_enable_x64", True)
COMPLEX = (xp.complex64, xp.complex128)


def cast(a, dtype):
    return a.astype(dtype)


def to_backend(a):
    import ml_dtypes  # jax's own bfloat16

    return xp.asarray(a.view(ml_dtypes.bfloat16) if BF16 and a.dtype == np.uint16 else a)


@jax.jit
def autodiff(A, x):
    loss, (gA, gx) = jax.value_and_grad(lambda A, x: loss_of(A, jax.nn.sigmoid(x)), (0, 1))(A, x)
    return loss, gx, xp.conj(gA)  # torch's complex convention


closed_form = jax.jit(closed_form)
""",
        {"closed_form": "closed_form(A, x)", "autodiff": "autodiff(A, x)"},
    ),
    "torch": (
        """
import torch
import torch as xp
torch.set_float32_matmul_precision("highest")
COMPLEX = (torch.complex64, torch.complex128)


def cast(a, dtype):
    return a.to(dtype)


def to_backend(a):
    if BF16 and a.dtype == np.uint16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def autodiff(A, x):
    A, x = A.clone().requires_grad_(True), x.clone().requires_grad_(True)
    loss = loss_of(A, torch.sigmoid(x))
    gA, gx = torch.autograd.grad(loss, (A, x), allow_unused=True)
    gA = torch.zeros_like(A) if gA is None else gA
    gx = torch.zeros_like(x) if gx is None else gx
    return loss, gx, gA
""",
        {"closed_form": "closed_form(A, x)", "autodiff": "autodiff(A, x)"},
    ),
}


def recipe(name: str) -> tuple[str, dict[str, str]] | None:
    """The recipe of a built-in, or a loadable plug-in's ``repro_recipe``; None: no recipe."""
    if name in RECIPES:
        return RECIPES[name]
    from gradxval.backends import BUILTIN, load
    from gradxval.errors import GradxvalError

    if name in BUILTIN:
        return None
    try:
        found = getattr(load(name), "repro_recipe", None)
    except GradxvalError:
        return None
    return found if isinstance(found, tuple) and len(found) == 2 else None
