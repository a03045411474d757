"""Planted faults in declared-function checks: how often each is caught, per dtype.

    python benchmarks/planted_functions.py [--cases 12] [--seed 5] [--only logsumexp]

Each planted backend is torch with one fault (issue 21's list).  A case catches a fault when
some record of the planted backend is ``disagree``; "attributed" counts cases where the honest
torch backend, on the same case, has no ``disagree`` (so the verdict names the planted one).
Prints a table: fault, function, and per dtype the fraction of cases that catch it.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import torch
from gradxval.backends.torch_backend import TorchBackend
from gradxval.model.functions import function
from gradxval.model.sampling import sample
from gradxval.run.check_case import check_case
from gradxval.suite import BY_NAME

DTYPES = ("float16", "bfloat16", "float32", "float64")


def _custom(forward, backward):
    """A torch op with a planted backward: backward(ctx_saved, g) -> grads."""

    class Op(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):
            ctx.save_for_backward(*[a for a in args if isinstance(a, torch.Tensor)])
            ctx.args = args
            return forward(*args)

        @staticmethod
        def backward(ctx, g):
            return backward(ctx.args, g)

    return Op.apply


class _NN(TorchBackend):
    """torch with some nn operations replaced."""

    replace: dict = {}

    def nn_namespace(self):
        return SimpleNamespace(**{**vars(super().nn_namespace()), **self.replace})


def _sig_fwd(x):
    return torch.sigmoid(x)


def _sig_bwd(args, g):
    s = torch.sigmoid(args[0])
    return (g * s * (1 - s) * 1.01,)


class Rule1pct(_NN):
    replace = {"sigmoid": _custom(_sig_fwd, _sig_bwd)}


def _lse_fwd(x, axis=-1, keepdims=False):
    return torch.logsumexp(x, dim=axis, keepdim=keepdims)


def _lse_bwd(args, g):
    x, axis = args[0], args[1] if len(args) > 1 else -1
    p = torch.softmax(x, dim=axis)
    return (0.5 * g.unsqueeze(axis) * p, None)


class HalvedAccumulation(_NN):
    replace = {"logsumexp": lambda x, axis=-1, keepdims=False: _custom(_lse_fwd, _lse_bwd)(x, axis)}


def _ln_fwd(x, w, b):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], w, b, 1e-5)


def _ln_bwd(args, g):
    x, w, b = args
    with torch.enable_grad():
        xx, ww = x.detach().requires_grad_(True), w.detach().requires_grad_(True)
        y = torch.nn.functional.layer_norm(xx, xx.shape[-1:], ww, None, 1e-5)
        gx, gw = torch.autograd.grad(y, (xx, ww), g)
    return gx, gw, g[0]  # the bias's gradient misses the sum over rows


class MissedReduction(_NN):
    replace = {
        "layer_norm": lambda x, weight=None, bias=None, eps=1e-5: _custom(_ln_fwd, _ln_bwd)(
            x, weight, bias
        )
    }  # noqa: E501


class DroppedEps(_NN):
    replace = {
        "layer_norm": lambda x, weight=None, bias=None, eps=1e-5: torch.nn.functional.layer_norm(
            x, x.shape[-1:], weight, bias, 0.0
        )
    }


class _Results(TorchBackend):
    """torch with its results changed after the fact."""

    def change(self, method, function, out: dict, dtype) -> dict:
        return out

    def run_function(self, method, function, arrays, dtype, extra=None):
        return self.change(
            method, function, super().run_function(method, function, arrays, dtype, extra), dtype
        )


class Transposed(_Results):
    def change(self, method, function, out, dtype):
        g = out.get("grad_A")
        if g is not None and g.ndim == 2 and g.shape[0] == g.shape[1]:
            out["grad_A"] = np.ascontiguousarray(g.T)
        return out


class SignFlipped(_Results):
    def change(self, method, function, out, dtype):
        for q, v in out.items():
            if q.startswith("grad_") and v.size:
                v = v.copy()
                v.reshape(-1)[0] *= -1
                out[q] = v
        return out


class WrongInput(_Results):
    def change(self, method, function, out, dtype):
        if "grad_a" in out and "grad_b" in out:
            out["grad_a"], out["grad_b"] = out["grad_b"], out["grad_a"]
        return out


class Stale(_Results):
    """Results cached by (method, dtype) only: a later case gets an earlier case's answer."""

    def __init__(self):
        super().__init__()
        self.cache = {}

    def change(self, method, function, out, dtype):
        return self.cache.setdefault((method, dtype), out)


class Float32Inside(TorchBackend):
    def run_function(self, method, function, arrays, dtype, extra=None):
        if dtype != "float64":
            return super().run_function(method, function, arrays, dtype, extra)
        down = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in arrays.items()}
        ex = None if extra is None else {k: v.astype(np.float32) for k, v in extra.items()}
        out = super().run_function(method, function, down, "float32", ex)
        return {k: v.astype(np.float64) for k, v in out.items()}


class LowAccumulation(TorchBackend):
    """float16 and bfloat16 products accumulated in the dtype, one term after another."""

    def formula_namespace(self):
        xp, to_b, to_np, scope = super().formula_namespace()

        def matmul(a, b):
            if a.dtype not in (torch.float16, torch.bfloat16) or a.ndim != 2:
                return xp.matmul(a, b)
            acc = a[:, :1] * b[:1]
            for k in range(1, a.shape[1]):
                acc = acc + a[:, k : k + 1] * b[k : k + 1]
            return acc

        ns = SimpleNamespace(**{k: getattr(xp, k) for k in dir(xp) if not k.startswith("_")})
        ns.matmul = matmul
        return ns, to_b, to_np, scope


@function(A="n n", x="n")
def square_tanh(A, x, *, xp, nn):
    """||A tanh(x)||^2 with a square A."""
    y = A @ xp.tanh(x)
    return xp.sum(y * y)


@function(W="m n", x="n k", sizes={"n": (64, 512)})
def long_products(W, x, *, xp, nn):
    """sum((W x)^2) with long inner products."""
    y = xp.matmul(W, x)
    return xp.sum(y * y)


S = BY_NAME
PLANTED = (
    ("a 1% error in one derivative rule (sigmoid')", Rule1pct, S["sq_norm_a_sigmoid"]),
    ("a halved accumulation (logsumexp's gradient / 2)", HalvedAccumulation,
     S["logsumexp_scaled"]),
    ("a missed reduction over a broadcast axis (LayerNorm bias)", MissedReduction,
     S["layer_norm_affine"]),
    ("a transposed product on square inputs (grad_A)", Transposed, square_tanh),
    ("float32 computed inside float64", Float32Inside, S["sq_norm_a_tanh"]),
    ("float16/bfloat16 products accumulated in the dtype", LowAccumulation, long_products),
    ("one element's sign flipped", SignFlipped, S["sq_norm_a_sigmoid"]),
    ("the gradient of the wrong input", WrongInput, S["cosine_similarity"]),
    ("a dropped epsilon in a norm (LayerNorm eps = 0)", DroppedEps, S["layer_norm_affine"]),
    ("a stale result cached across shapes", Stale, S["sq_norm_a_sigmoid"]),
)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=12, help="cases per dtype")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--only", default="", help="the rows whose fault or function contains this")
    args = p.parse_args()
    honest = TorchBackend()
    print("| planted fault | function | " + " | ".join(DTYPES) + " | attributed |")
    print("|---|---|" + "---|" * (len(DTYPES) + 1))
    for title, cls, fn in PLANTED:
        if args.only not in title and args.only not in fn.name:
            continue
        planted = cls()
        caught, attributed, total = {}, 0, 0
        for dtype in DTYPES:
            cases = sample(fn, args.cases, args.seed, (dtype,), ("normal", "saturated"))
            hits = 0
            for c in cases:
                with np.errstate(all="ignore"):
                    recs = check_case(fn, c, {"planted": planted}, None, 1)
                    bad = any(r["outcome"] == "disagree" for r in recs)
                    if bad:
                        ref = check_case(fn, c, {"torch": honest}, None, 1)
                        attributed += not any(r["outcome"] == "disagree" for r in ref)
                hits += bad
            caught[dtype] = hits / len(cases)
            total += hits
        cells = " | ".join(f"{caught[d]:.0%}" for d in DTYPES)
        print(f"| {title} | {fn.name} | {cells} | {attributed}/{total} |", flush=True)


if __name__ == "__main__":
    main()
