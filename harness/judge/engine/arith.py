"""The two arithmetics the engine's tape runs in.

- ``Quad``: IEEE binary128 through numpy-quaddtype (SLEEF), about 1e-34 per operation: the
  reference.  numpy-quaddtype 1.0.0 multiplies transposed, Fortran-ordered or strided operands
  wrongly and has no batched matmul (numpy/numpy-quaddtype#216), so ``matmul`` copies to
  contiguous 2-D operands and loops over batches; einsum is never used.
- ``Emulated``: one honest evaluation in a target dtype, for the tolerance.  Values are float64;
  every operation's result is perturbed by a random relative amount up to the dtype's unit
  roundoff and rounded to the dtype (its range included, so overflow and underflow happen where
  they would), and a reduction of n terms gets a random error up to u' * ceil(log2 n) * sum|terms|,
  the bound of pairwise or blocked summation (u' is float32's for float16 and bfloat16: the
  accumulator libraries use), before its own rounding to the dtype.  Several such runs with
  different random streams give the spread an honest implementation in that dtype can show
  (Monte-Carlo arithmetic, Parker 1997; Verificarlo's random rounding).
"""

from __future__ import annotations

import contextlib
import math

import ml_dtypes
import numpy as np

__all__ = [
    "Quad",
    "QuadJitter",
    "Emulated",
    "Arb",
    "current",
    "using",
    "opmath",
    "quad_dtype",
    "split3",
    "join3",
]


def quad_dtype():
    import numpy_quaddtype

    return numpy_quaddtype.QuadPrecDType()


class Quad:
    """Binary128 storage, no perturbation: the reference arithmetic."""

    exact = True
    variants: frozenset = frozenset()

    def __init__(self) -> None:
        self.dtype = quad_dtype()
        self.branches: list[np.ndarray] = []
        self.ties = 0
        self.used: set[str] = set()
        self.overflowed = False

    def const(self, a) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype == ml_dtypes.bfloat16 or a.dtype == np.float16:
            a = a.astype(np.float32)  # exact; quaddtype has no cast from bfloat16
        if a.dtype.kind in "biu":
            a = a.astype(np.float64)
        if a.dtype == self.dtype:
            return a
        return a.astype(self.dtype)

    def op(self, v) -> np.ndarray:
        return v

    def logaddexp(self, a, b):
        return np.logaddexp(a, b)

    def reduced(self, v, n: int, absval, terms=None) -> np.ndarray:
        return v

    def to_float64(self, v) -> np.ndarray:
        return np.asarray(v).astype(np.float64)

    def branch(self, decision: np.ndarray, tie: np.ndarray | None = None) -> None:
        self.branches.append(np.asarray(decision))
        if tie is not None:
            self.ties += int(np.count_nonzero(tie))


class QuadJitter(Quad):
    """Binary128 with every result perturbed by up to its unit roundoff (2^-113): the spread
    of this run around the reference bounds the reference's own error, which matters where a
    quantity cancels below binary128's resolution of its terms (softmax - onehot)."""

    U = 2.0**-113

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        self.rng = rng

    def op(self, v) -> np.ndarray:
        v = np.asarray(v)
        r = self.rng.uniform(-1.0, 1.0, size=v.shape) * self.U
        return v * (1.0 + r).astype(v.dtype) if v.size else v


class Emulated:
    """float64 storage rounded to ``dtype`` after every operation, with random perturbation."""

    exact = False

    def __init__(self, dtype: str, rng: np.random.Generator, flush: bool = False,
                 variants: frozenset = frozenset(), sign: float | None = None,
                 wide: bool = False) -> None:  # fmt: skip
        from gradxval.dtypes import info

        # wide: the dtype's rounding error with float64's range (no overflow, no underflow to
        # 0): the spread where every run in the dtype met a non-finite value
        self.wide = wide

        # variants: derivative rules of a registered fault's model, in place of the engine's
        self.variants = frozenset(variants)
        # sign: every perturbation at its extreme, +1 or -1 (the envelope of one-sided
        # roundings), instead of a random draw: a few random runs can miss a rounding that
        # flips with probability 1/4 (a tanh one ulp from 1 in a cancelling rule)
        self.sign = sign
        self.target = info(dtype).np_real
        self.u = info(dtype).u
        # float16 and bfloat16 sums and products are accumulated in float32 by every library
        # here (torch's CPU kernels, XLA's reduce, numpy's pairwise sum): their terms' error is
        # float32's; accumulating in the dtype itself is outside the tolerance
        self.u_acc = min(self.u, info("float32").u)
        # flush: subnormal inputs and results become 0 (flush-to-zero, denormals-are-zero),
        # float16's subnormals are kept: normal numbers in float32, which torch computes
        # float16 in, and XLA's flush mode does not touch them (jax 0.10: jit(x * 2) of
        # float16 1e-5 is 2e-5; of float32 1e-39 is 0); the threshold is float32's
        compute = "float32" if dtype == "float16" else dtype
        self.tiny = info(compute).tiny if flush else 0.0
        self.rng = rng
        self.dtype = np.dtype(np.float64)
        self.branches: list[np.ndarray] = []
        self.ties = 0
        self.used: set[str] = set()
        self.overflowed = False  # some operation's finite result left the dtype's range

    def _round(self, v) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        with np.errstate(all="ignore"):
            if self.target != np.float64 and not self.wide:
                w = v.astype(self.target).astype(np.float64)
                if not self.overflowed and np.any(np.isinf(w) & np.isfinite(v)):
                    self.overflowed = True
                v = w
            elif not self.overflowed and np.any(np.isinf(v)):
                self.overflowed = True  # float64 storage overflowed itself
            return np.where(np.abs(v) < self.tiny, 0.0 * v, v) if self.tiny else v

    def const(self, a) -> np.ndarray:
        return self._round(np.asarray(a).astype(np.float64))

    def _r(self, shape):
        if self.sign is not None:
            return np.full(shape, float(self.sign))
        return self.rng.uniform(-1.0, 1.0, size=shape)

    def op(self, v) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        r = self._r(v.shape)
        with np.errstate(all="ignore"):
            # faithful, not correctly rounded: libraries' functions are within an ulp, and equal
            # formulations (rsqrt or 1 / sqrt, fused or not) round differently; measured on the
            # suite, perturbing by float32's error before a half-precision rounding (the
            # correctly rounded model) doubled the false alarms of equal formulations
            # Higham's model: fl(a op b) = (a op b)(1 + d) + e, |e| <= eta / 2.  The relative
            # term alone never moves a subnormal result off its nearest grid point, so runs
            # that differ there (another formulation's p = 1e-43 one spacing off, times
            # log p = -98) showed no spread (entropy_softmax, float32, 300 cases)
            e = 0.0 if self.wide else 0.5 * float(ml_dtypes.finfo(self.target).smallest_subnormal)
            out = self._round(v * (1.0 + self.u * r) + e * r)
            if self.target != np.float64 and "no_exact_ops" not in self.variants:
                # a float64 result the dtype holds exactly came from an exact operation
                # (x - x, x * 1, a one-term sum): IEEE arithmetic makes no error there
                held = v.astype(self.target).astype(np.float64) if self.wide else self._round(v)
                out = np.where(held == v, v, out)
            return out

    def fused(self, a, b, c) -> np.ndarray:
        """a * b + c with the product unrounded (a fused multiply-add), in float64 storage:
        computed in binary128, where a product of two doubles is exact."""
        q = quad_dtype()
        with np.errstate(all="ignore"):
            exact = np.asarray(a).astype(q) * np.asarray(b).astype(q) + np.asarray(c).astype(q)
            return exact.astype(np.float64)

    def reduced(self, v, n: int, absval, terms=None) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        c = max(1, math.ceil(math.log2(max(n, 1)))) if n > 1 else 0
        u_acc = self.u_acc
        if getattr(self, "in_transpose", False) and "jax_broadcast_transpose" in self.variants:
            # jax sums a broadcast's cotangent with reduce_sum in the dtype itself (jnp.sum
            # upcasts, the transpose rule does not): n terms, each with the dtype's error
            c, u_acc = n, self.u
            if self.sign == 0.0 and terms is not None:
                # the run rounded to nearest sums as XLA's CPU reduce does, one term after
                # another in the dtype (jax 0.10: lax.reduce of 23 float16 terms equals
                # np.cumsum(dtype=float16)[-1], row for row)
                a, axes = terms
                moved = np.moveaxis(a, axes, tuple(range(-len(axes), 0)))
                flat = moved.reshape(*moved.shape[: a.ndim - len(axes)], -1).astype(self.target)
                seq = np.cumsum(flat, axis=-1, dtype=self.target)[..., -1]
                return self._round(seq.astype(np.float64).reshape(v.shape))
        r = self._r(v.shape)
        with np.errstate(all="ignore"):
            pert = v * (1.0 + self.u * r)
            if c:
                pert = pert + self._r(v.shape) * (u_acc * c) * absval
        return self._round(pert)

    def to_float64(self, v) -> np.ndarray:
        return np.asarray(v, dtype=np.float64)

    def logaddexp(self, a, b):
        return np.logaddexp(a, b)

    def branch(self, decision: np.ndarray, tie: np.ndarray | None = None) -> None:
        self.branches.append(np.asarray(decision))


class Arb(Quad):
    """arb balls at ``prec`` bits in numpy object arrays (python-flint): the engine's own
    tape checked against a rigorous oracle (benchmarks/engine_accuracy.py, tests)."""

    def __init__(self, prec: int = 250) -> None:
        import flint

        self.flint = flint
        self.prec = prec  # set by using() while this arithmetic evaluates
        self.dtype = np.dtype(object)
        self.branches = []
        self.ties = 0
        self.used = set()
        self.overflowed = False

    def const(self, a) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype == object:
            return a
        if a.dtype.kind == "b":
            a = a.astype(np.float64)
        if a.dtype not in (np.float64, np.float32, np.float16) and a.dtype.kind != "i":
            hi, mid, lo = split3(a)  # binary128: exact as three doubles, summed at self.prec
            arb = self.flint.arb
            with using(self):
                return np.vectorize(lambda x, y, z: arb(x) + arb(y) + arb(z), otypes=[object])(
                    hi, mid, lo
                )
        f = np.asarray(a, dtype=np.float64)
        out = np.empty(f.shape, dtype=object)
        for i in np.ndindex(f.shape):
            out[i] = self.flint.arb(float(f[i]))
        return out

    def logaddexp(self, a, b):
        m = np.maximum(a, b)
        return m + np.log(np.exp(a - m) + np.exp(b - m))

    def to_float64(self, v) -> np.ndarray:
        return np.vectorize(lambda t: float(t.mid()) if hasattr(t, "mid") else float(t),
                            otypes=[np.float64])(np.asarray(v, dtype=object))  # fmt: skip


def split3(q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three float64 arrays whose exact sum is the binary128 array ``q`` (113 <= 3 x 53 bits),
    for values inside float64's range whose low parts do not underflow (|q| > ~1e-276); below
    that the parts lose bits, an absolute error under float64's smallest subnormal."""
    hi = q.astype(np.float64)
    r = q - hi.astype(q.dtype)
    mid = r.astype(np.float64)
    lo = (r - mid.astype(q.dtype)).astype(np.float64)
    return hi, mid, lo


def join3(hi, mid, lo, dtype):
    return hi.astype(dtype) + mid.astype(dtype) + lo.astype(dtype)


_CURRENT: list = []


def current():
    if not _CURRENT:
        raise RuntimeError("the engine's arithmetic is used outside engine.using(...)")
    return _CURRENT[-1]


@contextlib.contextmanager
def using(arith):
    """Evaluate in ``arith``; an arb arithmetic's precision holds inside only (flint's
    precision is process-wide: whatever the caller had is restored)."""
    _CURRENT.append(arith)
    prec = getattr(arith, "prec", None)
    if prec is not None:
        old, arith.flint.ctx.prec = arith.flint.ctx.prec, prec
    try:
        with np.errstate(all="ignore"):
            yield arith
    finally:
        _CURRENT.pop()
        if prec is not None:
            arith.flint.ctx.prec = old


def half_precision(ar=None) -> bool:
    """Whether the arithmetic (default: the current one) rounds to float16 or bfloat16."""
    ar = current() if ar is None else ar
    return getattr(ar, "target", None) in (np.float16, ml_dtypes.bfloat16)


@contextlib.contextmanager
def opmath():
    """Operations inside round to float32 where the dtype is float16 or bfloat16: a library
    kernel that computes in its opmath type and rounds its outputs (torch's mixed-type
    LayerNorm); elsewhere, and in the exact arithmetics, nothing changes."""
    from gradxval.dtypes import info

    ar = current()
    if not half_precision(ar):
        yield
        return
    saved = ar.target, ar.u
    ar.target, ar.u = np.dtype(np.float32).type, info("float32").u
    try:
        yield
    finally:
        ar.target, ar.u = saved
