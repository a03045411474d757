"""The reference engine: any declared function, evaluated and differentiated in binary128.

``evaluate`` runs a function of named arrays on the tape in one arithmetic and returns its
value, the gradient for each differentiated input, and, when asked, a JVP and HVPs; the same
call in ``Emulated`` arithmetic gives one honest low-precision evaluation for the tolerance.
"""

from __future__ import annotations

import numpy as np
from gradxval.judge.engine import tape
from gradxval.judge.engine.arith import Emulated, Quad, using
from gradxval.judge.engine.namespace import NN, XP

__all__ = ["evaluate", "Quad", "Emulated", "XP", "NN", "Evaluation"]


class Evaluation(dict):
    """quantity -> array (binary128 for Quad), plus the branch log and tie count."""

    branches: list
    ties: int


def evaluate(fn, arrays: dict, wrt, arith, *, tangents=None, directions=None) -> Evaluation:
    """Value and gradients of ``fn(**arrays, xp=, nn=)`` for the inputs named in ``wrt``.

    ``tangents`` (name -> array) adds "jvp", the directional derivative; ``directions`` adds
    "hvp_<name>" for each differentiated input, the Hessian applied to the directions.
    """
    with using(arith):
        args = {}
        leaves = {}
        for name, a in arrays.items():
            a = np.asarray(a)
            if a.dtype.kind in "biu":
                args[name] = a
                continue
            v = tape.Var(arith.const(a))
            args[name] = v
            if name in wrt:
                leaves[name] = v
        out = tape.lift(fn(**args, xp=XP, nn=NN))
        if out.shape:
            raise ValueError(f"the function returned shape {out.shape}; it must return a scalar")
        grads = tape.grad(out, leaves)
        res = Evaluation(loss=out.value)
        for name in wrt:
            res[f"grad_{name}"] = grads[name].value
        if tangents:
            s = tape.lift(0.0)
            for name, tv in tangents.items():
                s = s + tape.sum_(grads[name] * arith.const(tv))
            res["jvp"] = s.value
        if directions:
            s = tape.lift(0.0)
            for name, dv in directions.items():
                s = s + tape.sum_(grads[name] * arith.const(dv))
            second = tape.grad(s, leaves)
            for name in wrt:
                res[f"hvp_{name}"] = second[name].value
        res.branches = arith.branches
        res.ties = arith.ties
        res.used = set(arith.used)
        res.overflowed = getattr(arith, "overflowed", False)
        return res
