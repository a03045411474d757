"""Mutants: real backends with one planted fault each, of kinds seen in the wild.

MUTANTS lists the mutation suite (tests/test_mutants.py, scripts/mutation_table.py); the
others (Raises, Hangs, Mutates, ReturnsList) exercise the runner's fault isolation.
"""

from __future__ import annotations

import time

import array_api_compat.numpy as xp
import numpy as np
from gradxval.backends.base import Backend
from gradxval.model.problems import closed_form, stable_sigmoid_pair


class _NumpyFault(Backend):
    """numpy's closed form with a fault applied to its output."""

    methods = ("closed_form",)

    def version(self) -> str:
        return np.__version__

    def _evaluate(self, method, A, x, dtype):
        with np.errstate(all="ignore"):
            loss, gx, gA = closed_form(A, x, xp)
            return self.fault(
                A, x, {"loss": np.asarray(loss), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}
            )

    def fault(self, A, x, r):
        return r


class FactorTwo(_NumpyFault):
    """grad_x twice too large: a wrong constant."""

    name = "factor2"

    def fault(self, A, x, r):
        r["grad_x"] = r["grad_x"] * 2
        return r


class SigmaForSigmaPrime(_NumpyFault):
    """grad_x = 2 sigma(x) * A^T A sigma(x): sigma where sigma' belongs."""

    name = "sigma_not_prime"

    def fault(self, A, x, r):
        s, _ = stable_sigmoid_pair(x, np)
        r["grad_x"] = (2 * s * (A.T @ (A @ s))).astype(r["grad_x"].dtype)
        return r


class MissingTranspose(_NumpyFault):
    """grad_x = 2 sigma' * A (A sigma): A where A^T belongs (square A only)."""

    name = "missing_transpose"

    def fault(self, A, x, r):
        s, sn = stable_sigmoid_pair(x, np)
        r["grad_x"] = (2 * s * sn * (A @ (A @ s))).astype(r["grad_x"].dtype)
        return r


class Float32Inside(_NumpyFault):
    """float64 silently computed in float32, then cast back to float64."""

    name = "f32_inside"

    def _evaluate(self, method, A, x, dtype):
        low = {"float64": np.float32, "complex128": np.complex64}.get(dtype)
        if low is None:
            return super()._evaluate(method, A, x, dtype)
        r = super()._evaluate(method, A.astype(low), x.astype(np.float32), dtype)
        return {
            q: v.astype(np.complex128 if np.iscomplexobj(v) else np.float64) for q, v in r.items()
        }


class ConjDropped(_NumpyFault):
    """Complex grad_A returned in jax's convention without the conjugation to torch's."""

    name = "conj_dropped"

    def fault(self, A, x, r):
        r["grad_A"] = np.conj(r["grad_A"])
        return r


class NormSquaredJax(Backend):
    """jax autodiff of ||A sigma(x)||**2 written with jnp.linalg.norm: NaN gradient at A = 0.

    (torch's norm backward returns the zero subgradient there; jax's divides by the norm.)
    """

    name = "norm_squared"
    methods = ("autodiff",)
    supported = ("float32",)

    def version(self) -> str:
        import jax

        return jax.__version__

    def _evaluate(self, method, A, x, dtype):
        import jax
        import jax.numpy as jnp

        def loss(A, x):
            return jnp.linalg.norm(A @ jax.nn.sigmoid(x)) ** 2

        value, (gA, gx) = jax.value_and_grad(loss, argnums=(0, 1))(jnp.asarray(A), jnp.asarray(x))
        return {"loss": np.asarray(value), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}


class Raises(_NumpyFault):
    name = "raises"

    def _evaluate(self, method, A, x, dtype):
        raise RuntimeError("planted failure")


class Hangs(_NumpyFault):
    name = "hangs"

    def _evaluate(self, method, A, x, dtype):
        time.sleep(3600)


class Mutates(_NumpyFault):
    """Writes into its input x in place."""

    name = "mutates"

    def fault(self, A, x, r):
        x[...] = 0
        return r


class SneakyWriter(_NumpyFault):
    """Makes its read-only x writable again and writes into it, in its first method only."""

    name = "sneaky_writer"
    methods = ("autodiff", "closed_form")
    then_raise = False

    def fault(self, A, x, r):
        return r

    def _evaluate(self, method, A, x, dtype):
        if method == "autodiff":
            x.flags.writeable = True  # allowed: the copy owns its memory
            x[...] = 0
            if self.then_raise:
                raise RuntimeError("planted failure after a write")
        return super()._evaluate(method, A, x, dtype)


class SneakyWriterThenRaises(SneakyWriter):
    """Writes into its input, then raises before returning."""

    name = "sneaky_writer_raises"
    then_raise = True


class EnvReporter(_NumpyFault):
    """Its version is what its process's environment says of threads and huge pages."""

    name = "env_reporter"

    def version(self) -> str:
        import os

        keys = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE")
        return "/".join(os.environ.get(k, "-") for k in keys)


class MarkReporter(_NumpyFault):
    """Its version is GRADXVAL_TEST_MARK as its process sees it."""

    name = "mark_reporter"

    def version(self) -> str:
        import os

        return os.environ.get("GRADXVAL_TEST_MARK", "-")


class ReturnsList(_NumpyFault):
    name = "returns_list"

    def fault(self, A, x, r):
        r["grad_x"] = r["grad_x"].tolist()
        return r


class Crashes(_NumpyFault):
    """Kills its own process, as a segfault in a framework would."""

    name = "crashes"

    def _evaluate(self, method, A, x, dtype):
        import os

        os._exit(139)


class CrashesOnM7(_NumpyFault):
    """Right, except that it kills its own process on a 7-row A, while later cases are in
    flight to the same worker."""

    name = "crashes_on_m7"

    def _evaluate(self, method, A, x, dtype):
        import os

        if A.shape[0] == 7:
            os._exit(139)
        return super()._evaluate(method, A, x, dtype)


class Aborts(_NumpyFault):
    """Calls abort(): SIGABRT, as a failed assertion in C++ code does."""

    name = "aborts"

    def _evaluate(self, method, A, x, dtype):
        import os

        os.abort()


class Noisy(_NumpyFault):
    """Right results, with junk printed to stdout and stderr on every call."""

    name = "noisy"

    def fault(self, A, x, r):
        import sys

        print("\x1b[2J junk on stdout " + "#" * 200)
        print("junk on stderr", file=sys.stderr)
        return r


class MemoryHog(_NumpyFault):
    """Allocates and touches 8 GB on every call."""

    name = "memory_hog"

    def _evaluate(self, method, A, x, dtype):
        block = np.ones(2**30, dtype=np.float64)  # 8 GiB, touched page by page
        return {"loss": block[:1].sum(), "grad_x": x, "grad_A": A}


class NotABackend:
    """A class that is not a gradxval Backend: no evaluate, no methods."""

    name = "not_a_backend"


class VersionRaises(_NumpyFault):
    name = "version_raises"

    def version(self) -> str:
        raise RuntimeError("no version today")


def _stable_sigmoid(x):
    s, sn = stable_sigmoid_pair(x, np)
    return s, sn


class SigmaMinusSigmaSquared(_NumpyFault):
    """sigma' written as sigma - sigma**2 in the case's precision: cancels for large x."""

    name = "sigma_minus_sigma2"

    def fault(self, A, x, r):
        s, _ = _stable_sigmoid(x)  # in the case's dtype, as x is
        r["grad_x"] = _grad_x_with(A, s, s - s * s, r["grad_x"].dtype)
        return r


def _grad_x_with(A, s, sp, dtype):
    """2 sp * Re(A^H A s) in the case dtype, for mutants that change one factor."""
    sc = s.astype(A.dtype)
    z = (A @ sc).astype(A.dtype)
    back = np.real(np.conj(A).T @ z).astype(dtype)
    return (2 * sp * back).astype(dtype)


class ExtraTransposeGradA(_NumpyFault):
    """grad_A returned as (z s^T)^T: the wrong shape unless A is square."""

    name = "extra_transpose"

    def fault(self, A, x, r):
        r["grad_A"] = np.ascontiguousarray(r["grad_A"].T)
        return r


class Float16Accumulation(_NumpyFault):
    """float32 case whose z = A s accumulates term by term in a float16 accumulator."""

    name = "f16_accumulation"
    supported = ("float32",)

    def fault(self, A, x, r):
        if not A.size:
            return r
        s, _ = _stable_sigmoid(x)
        S = s.reshape(s.shape[0], -1)
        acc = np.zeros((A.shape[0], S.shape[1]), np.float16)
        for j in range(A.shape[1]):
            acc = (acc + A[:, j : j + 1] * S[j]).astype(np.float16)
        z = acc.astype(np.float32)
        r["loss"] = np.asarray(np.sum(z * z), np.float32)
        r["grad_A"] = (2 * z @ S.T).astype(np.float32)
        return r


class NaiveSigmoidTorch(Backend):
    """torch autodiff of 1/(1 + exp(-x)): exp overflows for x << 0 and the gradient is NaN."""

    name = "naive_sigmoid"
    methods = ("autodiff",)
    supported = ("float16", "float32", "float64")

    def version(self) -> str:
        import torch

        return torch.__version__

    def _evaluate(self, method, A, x, dtype):
        import torch

        tA = torch.tensor(A, requires_grad=True)
        tx = torch.tensor(x, requires_grad=True)
        z = tA @ (1 / (1 + torch.exp(-tx)))
        loss = (z * z).sum()
        gA, gx = torch.autograd.grad(loss, (tA, tx))
        return {"loss": loss.detach().numpy(), "grad_x": gx.numpy(), "grad_A": gA.numpy()}


class BatchAxisSummed(_NumpyFault):
    """For x of shape (n, k), grad_x summed over the batch axis and broadcast back."""

    name = "batch_summed"

    def fault(self, A, x, r):
        if x.ndim == 2:
            g = r["grad_x"]
            r["grad_x"] = np.broadcast_to(g.sum(axis=1, keepdims=True), g.shape).astype(g.dtype)
        return r


class BatchDropped(_NumpyFault):
    """For x of shape (n, k), grad_A uses the first batch column only."""

    name = "batch_dropped"

    def fault(self, A, x, r):
        if x.ndim == 2:
            s, _ = _stable_sigmoid(x[:, 0])
            sc = s.astype(A.dtype)
            r["grad_A"] = (2 * np.outer(A @ sc, sc)).astype(r["grad_A"].dtype)
        return r


class StaleShapeCache(_NumpyFault):
    """Caches results by (dtype, n) and returns them for a different m: a stale-cache bug."""

    name = "stale_cache"

    def __init__(self):
        self._cache = {}

    def _evaluate(self, method, A, x, dtype):
        key = (dtype, x.shape)
        if key not in self._cache:
            self._cache[key] = (A.shape, super()._evaluate(method, A, x, dtype))
        shape, r = self._cache[key]
        if shape != A.shape and A.size and shape[0] and shape[0] <= A.shape[0]:
            r = dict(r)
            r["grad_A"] = np.zeros(A.shape, r["grad_A"].dtype)
            r["grad_A"][: shape[0]] = self._cache[key][1]["grad_A"]
            r["grad_A"] = r["grad_A"].copy()
        elif shape != A.shape:
            return super()._evaluate(method, A, x, dtype)
        return {q: np.array(v, copy=True) for q, v in r.items()}


class WrongAboveN64(_NumpyFault):
    """grad_x off by a relative 1e-3 when n > 64 (a blocked-kernel bug)."""

    name = "wrong_above_64"

    def fault(self, A, x, r):
        if A.shape[1] > 64:
            r["grad_x"] = (r["grad_x"] * (1 + 1e-3)).astype(r["grad_x"].dtype)
        return r


class WrongWithInfinity(_NumpyFault):
    """grad_x off by a relative 1e-2 whenever x holds an infinity (the extreme regime only)."""

    name = "wrong_with_inf"

    def fault(self, A, x, r):
        if np.isinf(x).any():
            r["grad_x"] = (r["grad_x"] * (1 + 1e-2)).astype(r["grad_x"].dtype)
        return r


class LossNotSquared(_NumpyFault):
    """loss = sum |A s| instead of sum |A s|^2."""

    name = "loss_not_squared"

    def fault(self, A, x, r):
        s, _ = _stable_sigmoid(x)
        z = A @ s.astype(A.dtype)
        r["loss"] = np.asarray(np.sum(np.abs(z)), r["loss"].dtype)
        return r


class Float16LossOneTermUnsquared(_NumpyFault):
    """A float16 fused sum of squares that adds its first term unsquared (|z_0| for z_0^2): the
    float16 loss of a 1 x n case is |z|, 66 % below z^2 on normal-float16-m1n983-s888290."""

    name = "f16_loss_one_unsquared"

    def fault(self, A, x, r):
        if A.dtype != np.float16 or not A.size:
            return r
        s, _ = _stable_sigmoid(x)
        z = (A.astype(np.float32) @ s.astype(np.float32)).ravel()
        total = np.sum(z[1:] * z[1:]) + np.abs(z[0])
        r["loss"] = np.asarray(total, np.float16)
        return r


class Float16LossTenPercent(_NumpyFault):
    """A float16 loss 10 % too large (a wrong scale in a half-precision kernel)."""

    name = "f16_loss_10pct"

    def fault(self, A, x, r):
        if A.dtype == np.float16:
            r["loss"] = np.asarray(np.float32(r["loss"]) * np.float32(1.1), np.float16)
        return r


class HvpWidened(_NumpyFault):
    """Right values, but hvp_x comes back as float64 whatever the case's dtype."""

    name = "hvp_widened"

    def formula_namespace(self):
        return xp, np.asarray, np.asarray, lambda dtype: np.errstate(all="ignore")

    def evaluate_hvp(self, problem, method, A, x, v, dtype):
        return np.asarray(super().evaluate_hvp(problem, method, A, x, v, dtype), np.float64)


class HonestHypot(_NumpyFault):
    """Right: a complex loss summed as |z|^2 with |z| = hypot(Re z, Im z), which is +inf where
    the naive z * conj(z) is NaN.  Both orders are honest, so it must agree everywhere."""

    name = "hypot"

    def fault(self, A, x, r):
        if np.iscomplexobj(A):
            with np.errstate(all="ignore"):
                s, _ = stable_sigmoid_pair(x, np)
                z = A @ s.astype(A.dtype)
                mag = np.hypot(z.real, z.imag)
                r["loss"] = np.asarray(np.sum(mag * mag), dtype=r["loss"].dtype)
        return r


class GradAMissingFactor2(_NumpyFault):
    """grad_A missing its factor 2."""

    name = "grad_A_half"

    def fault(self, A, x, r):
        r["grad_A"] = (r["grad_A"] / 2).astype(r["grad_A"].dtype)
        return r


class SignFlip(_NumpyFault):
    """grad_x with the wrong sign."""

    name = "sign_flip"

    def fault(self, A, x, r):
        r["grad_x"] = -r["grad_x"]
        return r


class SigmaOfMinusX(_NumpyFault):
    """sigma(-x) where sigma(x) belongs, in grad_A (a sign slip in the logistic)."""

    name = "sigma_minus_x"

    def fault(self, A, x, r):
        s, sn = _stable_sigmoid(x)
        S, Sn = (v.reshape(v.shape[0], -1).astype(A.dtype) for v in (s, sn))
        g = 2 * (A @ Sn) @ Sn.T
        r["grad_A"] = g.astype(r["grad_A"].dtype)
        return r


class ReturnsFloat32(_NumpyFault):
    """float64 inputs answered with float32 arrays: the dtype that came back is wrong."""

    name = "returns_f32"

    def fault(self, A, x, r):
        return {
            q: v.astype(np.complex64 if np.iscomplexobj(v) else np.float32)
            if v.dtype in (np.float64, np.complex128)
            else v
            for q, v in r.items()
        }


class JaxWithoutX64(Backend):
    """jax closed form called without x64 mode: float64 inputs silently become float32."""

    name = "jax_no_x64"
    methods = ("closed_form",)
    supported = ("float64", "complex128")

    def version(self) -> str:
        import jax

        return jax.__version__

    def _evaluate(self, method, A, x, dtype):
        import jax.numpy as jnp

        loss, gx, gA = closed_form(jnp.asarray(A), jnp.asarray(x), jnp)
        want = {"loss": x.dtype, "grad_x": x.dtype, "grad_A": A.dtype}
        return {
            q: np.asarray(v).astype(want[q])
            for q, v in {"loss": loss, "grad_x": gx, "grad_A": gA}.items()
        }


class RelativeNoise(_NumpyFault):
    """grad_x perturbed by a relative EPS (a class attribute; see scripts/mutation_table.py)."""

    name = "relative_noise"
    EPS = 1e-3

    def fault(self, A, x, r):
        r["grad_x"] = (r["grad_x"] * (1 + self.EPS)).astype(r["grad_x"].dtype)
        return r


class SystematicDrift(_NumpyFault):
    """Every result times (1 + 4u): inside every per-case tolerance, worse than its peers on
    every case (an accuracy outlier)."""

    name = "systematic_drift"

    def fault(self, A, x, r):
        out = {}
        for q, v in r.items():
            u = float(np.finfo(v.real.dtype).eps) / 2 if v.dtype.kind in "fc" else 0.0
            with np.errstate(all="ignore"):
                out[q] = (v * (1 + 4 * u)).astype(v.dtype)
        return out


class Slow(_NumpyFault):
    """Right, and 50 ms per call: a run long enough to lose a worker in."""

    name = "slow"

    def fault(self, A, x, r):
        time.sleep(0.05)
        return r


class Nondeterministic(_NumpyFault):
    """grad_x jitters by a relative 1e-12 from call to call: inside every tolerance, caught only
    because the same call must give the same bits."""

    name = "nondeterministic"

    def __init__(self):
        self._rng = np.random.default_rng()

    def fault(self, A, x, r):
        noise = 1 + 1e-12 * self._rng.standard_normal(r["grad_x"].shape)
        r["grad_x"] = (r["grad_x"] * noise).astype(r["grad_x"].dtype)
        return r


# ---------------------------------------------------------------------------------------------
# False-green mutants: each looks like a registered fault, but in the wrong library or method,
# or explains only part of the result.  The default run must call them disagree or error.


class ZeroGradClosedForm(_NumpyFault):
    """A closed form whose loss is right and whose gradients are all exact zeros."""

    name = "zero_grad_closed"

    def fault(self, A, x, r):
        r["grad_x"] = np.zeros_like(r["grad_x"])
        r["grad_A"] = np.zeros_like(r["grad_A"])
        return r


def _torch_autodiff(A, x, post):
    import torch
    from gradxval.backends.torch_backend import to_numpy, to_torch

    tA = to_torch(A).detach().clone().requires_grad_(True)
    tx = to_torch(x).detach().clone().requires_grad_(True)
    import array_api_compat.torch as txp
    from gradxval.model.problems import loss_from_sigmoid

    loss = loss_from_sigmoid(tA, torch.sigmoid(tx), txp)
    gA, gx = torch.autograd.grad(loss, (tA, tx), allow_unused=True)
    gA = torch.zeros_like(tA) if gA is None else gA
    gx = torch.zeros_like(tx) if gx is None else gx
    r = {"loss": to_numpy(loss), "grad_x": to_numpy(gx), "grad_A": to_numpy(gA)}
    return post(A, x, r)


class _TorchAutodiffFault(Backend):
    """torch's reverse mode with a fault applied to its output; method name 'autodiff'."""

    methods = ("autodiff",)
    supported = ("float16", "float32", "float64")

    def version(self) -> str:
        import torch

        return torch.__version__

    def _evaluate(self, method, A, x, dtype):
        return _torch_autodiff(A, x, self.fault)

    def fault(self, A, x, r):
        return r


class ZeroGradAutodiff(_TorchAutodiffFault):
    """torch autodiff whose gradients are all exact zeros (a cut graph)."""

    name = "zero_grad_autodiff"

    def fault(self, A, x, r):
        return {**r, "grad_x": np.zeros_like(r["grad_x"]), "grad_A": np.zeros_like(r["grad_A"])}


class AllNaN(_NumpyFault):
    """Every result all NaN."""

    name = "all_nan"

    def fault(self, A, x, r):
        return {q: np.full_like(v, np.nan) for q, v in r.items()}


class NaNAtInfReverse(_TorchAutodiffFault):
    """Reverse mode that returns NaN exactly where x is infinite (and nowhere else)."""

    name = "nan_at_inf_reverse"

    def fault(self, A, x, r):
        gx = r["grad_x"].copy()
        gx[np.isinf(x)] = np.nan
        return {**r, "grad_x": gx}


class WidenedFloat16(_NumpyFault):
    """float16 results returned as float32, right once rounded."""

    name = "widened_f16"
    supported = ("float16",)

    def fault(self, A, x, r):
        return {q: v.astype(np.float32) for q, v in r.items()}


class FlushedNumpy(_NumpyFault):
    """numpy's closed form with every subnormal result component flushed to zero: the same
    values XLA gives, in a backend with no registered flush fault."""

    name = "flushed_numpy"

    def fault(self, A, x, r):
        out = {}
        for q, v in r.items():
            v = np.array(v, copy=True)
            tiny = np.finfo(v.real.dtype).tiny if v.dtype.kind in "fc" else 0
            parts = (v.real, v.imag) if np.iscomplexobj(v) else (v,)
            for p in parts:
                p[np.abs(p) < tiny] = 0
            out[q] = v
        return out


def _torch_backend_class():
    from gradxval.backends.torch_backend import TorchBackend

    return TorchBackend


class TorchClone:
    """A plug-in that copies torch's backend exactly, known faults and all, under its own name."""

    def __new__(cls):
        clone = type("TorchClone", (_torch_backend_class(),), {"name": "torch_clone"})
        return clone()


class ClaimsToBeTorch:
    """A plug-in whose class says name = 'torch': a name is not an identity."""

    def __new__(cls):
        return type("ClaimsToBeTorch", (_torch_backend_class(),), {"name": "torch"})()


class WritesWithoutChange(_NumpyFault):
    """Writes into its input without changing its bytes: x += 0."""

    name = "writes_no_change"

    def fault(self, A, x, r):
        x += 0
        return r


class TransposeWhenSquare(_NumpyFault):
    """grad_A transposed only when A is square: a shape check cannot see it."""

    name = "transpose_when_square"

    def fault(self, A, x, r):
        if A.shape[0] == A.shape[1] and A.shape[0] >= 2:
            r["grad_A"] = np.ascontiguousarray(r["grad_A"].T)
        return r


class AAtWhereAtA(_NumpyFault):
    """grad_x with A A^T where A^T A belongs (square A only; other shapes use the right one)."""

    name = "aat_for_ata"

    def fault(self, A, x, r):
        if A.shape[0] == A.shape[1] and A.shape[0] >= 2:
            s, sn = _stable_sigmoid(x)
            S = s.reshape(s.shape[0], -1).astype(A.dtype)
            SP = (s * sn).reshape(S.shape)
            g = 2 * SP * np.real(A @ np.conj(A).T @ S)
            r["grad_x"] = g.reshape(r["grad_x"].shape).astype(r["grad_x"].dtype)
        return r


# ---------------------------------------------------------------------------------------------
# Second-order mutants: the first order is numpy's (right); hvp_x carries the planted fault.


def _logistic_triple(x, xp_):
    from gradxval.model.problems import LOGISTIC

    return LOGISTIC.triple(x, xp_)


class _HvpFault(_NumpyFault):
    """numpy's closed forms; the second order (closed_form hvp_x) computed by ``faulty_hvp``."""

    def evaluate_hvp(self, problem, method, A, x, v, dtype):
        if method != "closed_form":
            return super().evaluate_hvp(problem, method, A, x, v, dtype)
        with np.errstate(all="ignore"):
            return np.asarray(self.faulty_hvp(A, x, v)).astype(x.dtype)

    def faulty_hvp(self, A, x, v):
        from gradxval.model.problems import closed_form_hvp

        return closed_form_hvp(A, x, v, xp, _logistic_triple)


def _hvp_with(A, x, v, triple):
    from gradxval.model.problems import closed_form_hvp

    return closed_form_hvp(A, x, v, xp, triple)


class MissingCurvatureTerm(_HvpFault):
    """H v without its phi'' term: only 2 phi' Re(A^H A (phi' v)) (a Gauss-Newton product)."""

    name = "missing_curvature"

    def faulty_hvp(self, A, x, v):
        def triple(x, xp_):
            s, sp, spp = _logistic_triple(x, xp_)
            return s, sp, 0 * spp

        return _hvp_with(A, x, v, triple)


class SecondDerivativeSign(_HvpFault):
    """phi'' with the wrong sign: +sigma' tanh(x/2)."""

    name = "phi2_sign"

    def faulty_hvp(self, A, x, v):
        def triple(x, xp_):
            s, sp, spp = _logistic_triple(x, xp_)
            return s, sp, -spp

        return _hvp_with(A, x, v, triple)


class VAndXSwapped(_HvpFault):
    """The Hessian at v applied to x: the arguments of hvp(x, v) swapped."""

    name = "v_x_swapped"

    def faulty_hvp(self, A, x, v):
        return _hvp_with(A, v, x, _logistic_triple)


class PhiPrimeOutside(_HvpFault):
    """2 phi'^2 Re(A^H A v) for the Gauss-Newton term: D A^T A D v written as D^2 A^T A v."""

    name = "phi_prime_outside"

    def faulty_hvp(self, A, x, v):
        s, sp, spp = _logistic_triple(x, xp)
        cplx = np.iscomplexobj(A)
        At = A.conj().T if cplx else A.T

        def normal(t):
            return np.real(At @ (A @ t.astype(A.dtype))).astype(x.dtype)

        return 2 * spp * normal(s) * v + 2 * sp * sp * normal(v)


class TransposeNotConjugate(_HvpFault):
    """Re(A^T A t) where Re(A^H A t) belongs (complex A)."""

    name = "hvp_transpose_not_conjugate"

    def faulty_hvp(self, A, x, v):
        s, sp, spp = _logistic_triple(x, xp)

        def normal(t):
            return np.real(A.T @ (A @ t.astype(A.dtype))).astype(x.dtype)

        return 2 * spp * normal(s) * v + 2 * sp * normal(sp * v)


class GradientForHvp(_HvpFault):
    """Returns grad_x where H v belongs."""

    name = "gradient_for_hvp"

    def faulty_hvp(self, A, x, v):
        return closed_form(A, x, xp)[1]


class CancelledSecondDerivative(_HvpFault):
    """phi' = s (1 - s) and phi'' = s (1 - s)(1 - 2 s), s = 1 / (1 + exp(-x)): written by hand,
    the library rule's cancellation; in a closed form it is no library's fault."""

    name = "cancelled_phi2"

    def faulty_hvp(self, A, x, v):
        def triple(x, xp_):
            s = 1 / (1 + np.exp(-x))
            sp = s * (1 - s)
            return s, sp, sp * (1 - 2 * s)

        return _hvp_with(A, x, v, triple)


class ZeroHvpAutodiff(Backend):
    """torch reverse-over-reverse without create_graph=True: the second pass finds no graph and
    the route returns zeros (allow_unused)."""

    name = "zero_hvp_autodiff"
    methods = ("closed_form",)
    hvp_routes = ("rev_over_rev",)
    supported = ("float16", "float32", "float64")

    def version(self) -> str:
        import torch

        return torch.__version__

    def _evaluate(self, method, A, x, dtype):
        with np.errstate(all="ignore"):
            loss, gx, gA = closed_form(A, x, xp)
        return {"loss": np.asarray(loss), "grad_x": np.asarray(gx), "grad_A": np.asarray(gA)}

    def _hvp(self, method, fn, A, x, v, dtype):
        import array_api_compat.torch as txp
        import torch
        from gradxval.backends.torch_backend import to_numpy, to_torch

        tA = to_torch(A)
        tx = to_torch(x).detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(tA, tx, txp), tx)  # create_graph forgotten
        hv = torch.zeros_like(tx) if not g.requires_grad else g
        return to_numpy(hv)


# the second-order mutation suite: run with --order 2
SECOND_ORDER_MUTANTS = [
    "MissingCurvatureTerm",
    "SecondDerivativeSign",
    "VAndXSwapped",
    "PhiPrimeOutside",
    "TransposeNotConjugate",
    "GradientForHvp",
    "CancelledSecondDerivative",
    "ZeroHvpAutodiff",
]


# false-green mutants: the default run must say disagree or error, never known
FALSE_GREEN = [
    "ZeroGradClosedForm",
    "ZeroGradAutodiff",
    "AllNaN",
    "NaNAtInfReverse",
    "WidenedFloat16",
    "SigmaMinusSigmaSquared",
    "FlushedNumpy",
    "TorchClone",
    "ClaimsToBeTorch",
    "WritesWithoutChange",
    "TransposeWhenSquare",
    "AAtWhereAtA",
    "CancelledSecondDerivative",
    "ZeroHvpAutodiff",
]


# the mutation suite: (class name, what must be reported: "disagree" (or error) / a known id)
MUTANTS = [
    ("FactorTwo", "disagree"),
    ("SigmaForSigmaPrime", "disagree"),
    ("SigmaMinusSigmaSquared", "disagree"),
    ("MissingTranspose", "disagree"),
    ("ExtraTransposeGradA", "disagree"),
    ("ConjDropped", "disagree"),
    ("Float32Inside", "disagree"),
    ("Float16Accumulation", "disagree"),
    ("Float16LossOneTermUnsquared", "disagree"),
    ("Float16LossTenPercent", "disagree"),
    ("NormSquaredJax", "disagree"),
    ("NaiveSigmoidTorch", "disagree"),
    ("BatchAxisSummed", "disagree"),
    ("BatchDropped", "disagree"),
    ("StaleShapeCache", "disagree"),
    ("Mutates", "disagree"),
    ("WrongAboveN64", "disagree"),
    ("WrongWithInfinity", "disagree"),
    ("LossNotSquared", "disagree"),
    ("GradAMissingFactor2", "disagree"),
    ("SignFlip", "disagree"),
    ("SigmaOfMinusX", "disagree"),
    ("ReturnsFloat32", "disagree"),
    ("JaxWithoutX64", "disagree"),
    ("RelativeNoise", "disagree"),
    ("Nondeterministic", "disagree"),
    *(
        (name, "disagree")
        for name in FALSE_GREEN
        if name != "SigmaMinusSigmaSquared" and name not in SECOND_ORDER_MUTANTS
    ),
    *((name, "disagree") for name in SECOND_ORDER_MUTANTS),
]


def first_detection(
    class_name: str, expect: str, cases, seen: list | None = None, order: str | None = None
):
    """Run the mutant over ``cases`` in order; return (cases run, verdict) at the first case
    whose verdicts report it as expected, or (cases run, None).  Every verdict made on the way
    is appended to ``seen``.  Second-order mutants run with order "2"."""
    from gradxval.backends import load
    from gradxval.run.runner import run_cases

    spec = f"mutants:{class_name}"
    supported = load(spec).dtypes()
    run = 0
    for case in cases:
        if case.dtype not in supported:
            continue
        run += 1
        out: list = []
        if order is None:
            order = "2" if class_name in SECOND_ORDER_MUTANTS else "1"
        run_cases([case], [spec], out.append, isolate=False, order=order)
        if seen is not None:
            seen.extend(out)
        for v in out:
            if expect == "disagree" and v.verdict in ("disagree", "error"):
                return run, v
            if v.verdict == "known" and expect in (v.classification or "").split("+"):
                return run, v
    return run, None
