"""The loss f(A, x) = sum |A sigma(x)|^2 and its closed-form gradients, for any array namespace.

Written once against the array API (numpy, torch and jax namespaces via array-api-compat, or
autograd.numpy) so that every backend evaluates the closed form with its own ops.

Complex convention: A may be complex, x is real.  Gradients follow torch's convention,
dL/dA = dL/dRe(A) + i dL/dIm(A), the direction of steepest ascent; for this loss it is
2 (A s) s^T.  jax.grad and autograd return its conjugate; backends conjugate to this convention.
"""

from __future__ import annotations

__all__ = ["stable_sigmoid_pair", "closed_form", "loss_from_sigmoid", "QUANTITIES"]

QUANTITIES = ("loss", "grad_x", "grad_A")


def _is_complex(a) -> bool:
    return "complex" in str(a.dtype)


def _cast(xp, a, dtype):
    if a.dtype == dtype:
        return a
    return xp.astype(a, dtype) if hasattr(xp, "astype") else a.astype(dtype)


def _matmul(xp, a, b):
    # ml_dtypes' bfloat16 matmul returns float32 (accumulated in float32); keep the case dtype
    return _cast(xp, a @ b, a.dtype)


def stable_sigmoid_pair(x, xp):
    """Return (sigma(x), sigma(-x)) without overflow; their product is sigma', accurate.

    sigma(x)(1 - sigma(x)) cancels to 0 for x > ~17 (float32) where the true value is ~exp(-x).
    """
    e = xp.exp(-xp.abs(x))
    d = 1 + e
    big, small = 1 / d, e / d
    pos = x >= 0
    return xp.where(pos, big, small), xp.where(pos, small, big)


def loss_from_sigmoid(A, s, xp):
    """sum |A s|^2 for a precomputed s = sigma(x); autodiff-friendly (no abs at 0)."""
    if _is_complex(A):
        z = _matmul(xp, A, _cast(xp, s, A.dtype))
        return xp.sum(xp.real(z * xp.conj(z)))
    z = _matmul(xp, A, s)
    return xp.sum(z * z)


def closed_form(A, x, xp):
    """Return (loss, grad_x, grad_A) by the closed forms, in the namespace ``xp``.

    grad_x = 2 sigma'(x) * Re(A^H A sigma(x)),  grad_A = 2 (A sigma(x)) sigma(x)^T.
    """
    s, s_neg = stable_sigmoid_pair(x, xp)
    cplx = _is_complex(A)
    sc = _cast(xp, s, A.dtype) if cplx else s
    z = _matmul(xp, A, sc)
    if cplx:
        loss = xp.sum(xp.real(z * xp.conj(z)))
        back = xp.real(_matmul(xp, xp.conj(A).T, z))
    else:
        loss = xp.sum(z * z)
        back = _matmul(xp, A.T, z)
    grad_x = 2 * (s * s_neg) * back
    if x.ndim == 1:
        grad_A = 2 * (z[:, None] * sc[None, :])
    else:
        grad_A = 2 * _matmul(xp, z, sc.T)
    return loss, grad_x, grad_A
