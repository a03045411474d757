"""The numeric witness: a finite-difference partial derivative, independent of every backend.

It is evaluated in float64 on the case's rounded inputs by central differences with Richardson
extrapolation (steps h, h/2, h/4, h/8), and comes with an error estimate: the difference between
the last two extrapolated values plus the rounding error of the loss differences.  It answers
"which side is right" at one element, where closed form and autodiff disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gradxval.numerics import richardson

__all__ = ["Witness", "partial_derivative"]


@dataclass(frozen=True)
class Witness:
    value: complex | float
    error: float  # estimated absolute error of value

    def admits(self, v, slack: float = 0.0) -> bool:
        """Is ``v`` within the witness's error estimate (plus ``slack``)?"""
        return bool(abs(complex(v) - complex(self.value)) <= 3 * self.error + slack)

    def __str__(self) -> str:
        v = complex(self.value) if np.iscomplexobj(self.value) else float(self.value)
        return f"{v!r} +- {self.error:.2g}"


def _loss(R: np.ndarray, X: np.ndarray, activation=None) -> float:
    from gradxval.model.problems import LOGISTIC

    s, _ = (activation or LOGISTIC).plain(X)
    z = R @ s
    return math.fsum((z * z).ravel().tolist())


def partial_derivative(ref, case, quantity: str, index) -> Witness | None:
    """The witness for one element of grad_x, grad_A or hvp_x; None where inputs are not
    finite."""
    R, x = ref.embedding, ref.x
    if quantity not in ("grad_x", "grad_A", "hvp_x") or R is None or x is None:
        return None
    if not (np.isfinite(R).all() and np.isfinite(x).all()):
        return None
    X = x.reshape(case.n, case.k or 1)
    index = tuple(int(i) for i in index)
    if quantity == "hvp_x":
        return _hvp_witness(ref, R, X, index)
    if quantity == "grad_x":
        j, c = (index[0], index[1] if len(index) > 1 else 0)

        def fx(t):
            Y = X.copy()
            Y[j, c] += t
            return _loss(R, Y, ref.activation)

        v, e = richardson(fx, 0.25 * max(1.0, abs(X[j, c])))
        return Witness(v, e)
    i, j = index
    parts = []
    for row in [i, case.m + i] if R.shape[0] == 2 * case.m and case.m and _complex(ref) else [i]:

        def fa(t, row=row):
            S = R.copy()
            S[row, j] += t
            return _loss(S, X, ref.activation)

        parts.append(richardson(fa, 0.25 * max(1.0, abs(R[row, j]))))
    if len(parts) == 2:  # torch's convention: d/dRe + i d/dIm
        return Witness(complex(parts[0][0], parts[1][0]), parts[0][1] + parts[1][1])
    return Witness(*parts[0])


def _hvp_witness(ref, R, X, index) -> Witness | None:
    """(H v)_j as the derivative of the closed-form gradient along v: d/dt grad_x(x + t v)_j.

    The gradient is evaluated in float64 (accurate phi and phi'); its rounding error, up to
    sqrt(M + n) u times its condition scale, enters the error estimate through the step.
    """
    if ref.v is None or not np.isfinite(ref.v).all():
        return None
    from gradxval.model.problems import LOGISTIC

    act = ref.activation or LOGISTIC
    V = ref.v.reshape(X.shape)
    j, c = (index[0], index[1] if len(index) > 1 else 0)

    def grad(t):
        s, sp = act.plain(X + t * V)
        with np.errstate(all="ignore"):
            return 2 * sp * (R.T @ (R @ s))

    def g(t):
        return float(grad(t)[j, c])

    h0 = 0.25 / max(1.0, float(np.max(np.abs(V), initial=0.0)))
    value, err = richardson(g, h0)
    s, sp = act.plain(X)
    scale = float(2 * abs(sp[j, c]) * (np.abs(R).T @ (np.abs(R) @ np.abs(s)))[j, c])
    err += 4 * math.sqrt(R.shape[0] + R.shape[1]) * 2.0**-53 * scale / (h0 / 8)
    return Witness(value, err)


def _complex(ref) -> bool:
    return np.iscomplexobj(ref.values["grad_A"])
