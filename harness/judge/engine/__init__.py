"""The reference engine: any declared function, evaluated and differentiated in binary128.

``evaluate`` runs a function of named arrays on the tape in one arithmetic and returns its
value, the gradient for each differentiated input, and, when asked, a JVP and HVPs; the same
call in ``Emulated`` arithmetic gives one honest low-precision evaluation for the tolerance.
"""

from __future__ import annotations

import numpy as np
from gradxval.judge.engine import tape
from gradxval.judge.engine.arith import Emulated, Quad, using
from gradxval.judge.engine.complex import CVar
from gradxval.judge.engine.namespace import NN, XP

__all__ = ["evaluate", "Quad", "Emulated", "XP", "NN", "Evaluation"]


class Evaluation(dict):
    """quantity -> array (binary128 for Quad), plus the branch log and tie count."""

    branches: list
    ties: int


def evaluate(fn, arrays: dict, wrt, arith, *, tangents=None, directions=None,
             cotangent=None) -> Evaluation:  # fmt: skip
    """Value and gradients of ``fn(**arrays, xp=, nn=)`` for the inputs named in ``wrt``.

    ``tangents`` (name -> array) adds "jvp", the directional derivative; ``directions`` adds
    "hvp_<name>" for each differentiated input, the Hessian applied to the directions;
    ``cotangent`` (a scalar) seeds reverse mode with it instead of 1: the gradients are then
    the VJP along it, rounded as reverse mode rounds that product.
    """
    with using(arith):
        args = {}
        leaves = {}  # a complex input is two leaves, NAME.re and NAME.im
        for name, a in arrays.items():
            a = np.asarray(a)
            if a.dtype.kind in "biu":
                args[name] = a
                continue
            if a.dtype.kind == "c":
                re, im = tape.Var(arith.const(a.real)), tape.Var(arith.const(a.imag))
                args[name] = CVar(re, im)
                if name in wrt:
                    leaves[f"{name}.re"], leaves[f"{name}.im"] = re, im
                continue
            v = tape.Var(arith.const(a))
            args[name] = v
            if name in wrt:
                leaves[name] = v
        out = fn(**args, xp=XP, nn=NN)
        if isinstance(out, CVar):
            raise ValueError("the function returned a complex value; it must return a real scalar")
        out = tape.lift(out)
        if out.shape:
            raise ValueError(f"the function returned shape {out.shape}; it must return a scalar")
        # the output's cotangent as a leaf: the gradient is linear in it, so differentiating
        # <gradient, tangents> by it runs every derivative rule transposed, from the inputs to
        # the output, which is forward mode (autograd's make_jvp is this construction); an
        # honest run then rounds a JVP as forward-mode AD does (jax.jvp, torch.func.jvp),
        # tangent by tangent, not as the inner product of a rounded gradient
        seed = tape.Var(arith.const(1.0 if cotangent is None else cotangent))
        grads = tape.grad(out, leaves, cotangent=seed)
        # a complex quantity comes back as its parts: grad_NAME.re and grad_NAME.im
        res = Evaluation(loss=out.value)
        for key, g in grads.items():
            res[f"grad_{key}"] = g.value

        def along(vectors):  # <gradient, vectors>: the real inner product of the parts
            s = tape.lift(0.0)
            for name, vec in vectors.items():
                vec = np.asarray(vec)
                if vec.dtype.kind == "c":
                    s = s + tape.sum_(grads[f"{name}.re"] * arith.const(vec.real))
                    s = s + tape.sum_(grads[f"{name}.im"] * arith.const(vec.imag))
                else:
                    s = s + tape.sum_(grads[name] * arith.const(vec))
            return s

        # an overflow in a later pass is that quantity's range, not the value's or gradient's
        first = arith.overflowed
        res.overflowed = res.jvp_overflowed = res.hvp_overflowed = first
        if tangents and arith.exact:  # the reference: exact either way, the cheaper way
            res["jvp"] = along(tangents).value
        elif tangents:
            # comparisons in the transposed rules are not the function's branches: the run's
            # branch log must match the reference's, which has no such pass
            logged, ties = len(arith.branches), arith.ties
            res["jvp"] = tape.grad(along(tangents), {"seed": seed})["seed"].value
            del arith.branches[logged:]
            arith.ties = ties
            res.jvp_overflowed, arith.overflowed = arith.overflowed, first
        if directions:
            second = tape.grad(along(directions), leaves)
            for key, h in second.items():
                res[f"hvp_{key}"] = h.value
            res.hvp_overflowed, arith.overflowed = arith.overflowed, first
        res.branches = arith.branches
        res.ties = arith.ties
        res.used = set(arith.used)
        return res
