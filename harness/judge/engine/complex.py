"""Complex arrays on the tape: a real and an imaginary part, each a ``Var``.

Every complex operation is written in the parts' real operations, so it runs, is
differentiated and is perturbed in every arithmetic the tape has (binary128, arb, the emulated
dtypes).  The gradient of a real function with respect to a complex input is given in torch's
convention, dL/dRe + i dL/dIm (``model/problems.py``); backends whose autodiff returns the
conjugate are turned into it (``Backend.conj_grads``).
"""

from __future__ import annotations

import numpy as np
from gradxval.judge.engine import tape as t

__all__ = ["CVar", "is_complex", "parts", "CXP"]


def is_complex(a) -> bool:
    return isinstance(a, CVar)


def parts(a):
    """(re, im) of a complex or real operand; im is None for a real one (complex constants,
    Python or numpy, are split too)."""
    if isinstance(a, CVar):
        return a.re, a.im
    if isinstance(a, complex) or (isinstance(a, np.ndarray | np.generic) and np.iscomplexobj(a)):
        return t.lift(np.real(a)), t.lift(np.imag(a))
    return a, None


SUPPORTED = (
    "+ - * / @ **2 abs(), conj real imag abs sum add subtract multiply divide matmul "
    "negative reshape permute_dims expand_dims broadcast_to astype, .T .real .imag"
)


class CVar:
    """A complex array on the tape."""

    __slots__ = ("re", "im")
    __array_priority__ = 1001.0
    __array_ufunc__ = None
    # what model.problems and users test: "complex" in str(a.dtype)
    dtype = np.dtype(np.complex128)

    def __init__(self, re, im=None):
        self.re = t.lift(re)
        self.im = t.lift(np.zeros(self.re.shape)) if im is None else t.lift(im)

    shape = property(lambda self: self.re.shape)
    ndim = property(lambda self: self.re.ndim)
    size = property(lambda self: self.re.size)
    T = property(lambda self: CVar(self.re.T, self.im.T))
    mT = property(lambda self: CVar(self.re.mT, self.im.mT))

    def __len__(self) -> int:
        return len(self.re)

    def reshape(self, *shape) -> CVar:
        return CVar(self.re.reshape(*shape), self.im.reshape(*shape))

    def sum(self, axis=None, keepdims=False) -> CVar:
        return csum(self, axis, keepdims)

    def __getitem__(self, idx) -> CVar:
        return CVar(self.re[idx], self.im[idx])

    def conj(self) -> CVar:
        return conj(self)

    @property
    def real(self):
        return self.re

    @property
    def imag(self):
        return self.im

    __add__ = lambda self, o: add(self, o)  # noqa: E731
    __radd__ = lambda self, o: add(o, self)  # noqa: E731
    __sub__ = lambda self, o: sub(self, o)  # noqa: E731
    __rsub__ = lambda self, o: sub(o, self)  # noqa: E731
    __mul__ = lambda self, o: mul(self, o)  # noqa: E731
    __rmul__ = lambda self, o: mul(o, self)  # noqa: E731
    __matmul__ = lambda self, o: matmul(self, o)  # noqa: E731
    __rmatmul__ = lambda self, o: matmul(o, self)  # noqa: E731
    __truediv__ = lambda self, o: div(self, o)  # noqa: E731
    __neg__ = lambda self: CVar(-self.re, -self.im)  # noqa: E731
    __pos__ = lambda self: self  # noqa: E731

    __rtruediv__ = lambda self, o: div(o, self)  # noqa: E731
    __abs__ = lambda self: cabs(self)  # noqa: E731

    def __pow__(self, k):
        if not (isinstance(k, int | float) and k == 2):
            raise TypeError(f"a complex array supports ** 2 only, not ** {k!r}")
        return mul(self, self)

    def __array__(self, *args, **kwargs):
        # an operation written for real arrays met a complex one: say so, rather than let
        # numpy turn it into an object array (numpy-quaddtype crashes on those)
        raise TypeError(f"this operation takes real arrays only; complex ones support {SUPPORTED}")

    def __repr__(self) -> str:
        return f"CVar({self.re.value!r}, {self.im.value!r})"


def _lift(a) -> CVar:
    if isinstance(a, CVar):
        return a
    re, im = parts(a)
    return CVar(re, im)


def add(a, b):
    (ar, ai), (br, bi) = parts(a), parts(b)
    if ai is None and bi is None:
        return t.add(ar, br)
    a, b = _lift(a), _lift(b)
    return CVar(a.re + b.re, a.im + b.im)


def sub(a, b):
    (ar, ai), (br, bi) = parts(a), parts(b)
    if ai is None and bi is None:
        return t.sub(ar, br)
    a, b = _lift(a), _lift(b)
    return CVar(a.re - b.re, a.im - b.im)


def mul(a, b):
    (ar, ai), (br, bi) = parts(a), parts(b)
    if ai is None and bi is None:
        return t.mul(ar, br)
    if bi is None:  # a real factor scales both parts
        return CVar(ar * br, ai * br)
    if ai is None:
        return CVar(ar * br, ar * bi)
    return CVar(ar * br - ai * bi, ar * bi + ai * br)


def div(a, b):
    (ar, ai), (br, bi) = parts(a), parts(b)
    if bi is None:
        return t.div(ar, br) if ai is None else CVar(ar / br, ai / br)
    d = br * br + bi * bi  # a / b = a conj(b) / |b|^2
    return mul(a, CVar(br / d, -bi / d))


def matmul(a, b):
    (ar, ai), (br, bi) = parts(a), parts(b)
    if ai is None and bi is None:
        return t.matmul(ar, br)
    if bi is None:
        return CVar(t.matmul(ar, br), t.matmul(ai, br))
    if ai is None:
        return CVar(t.matmul(ar, br), t.matmul(ar, bi))
    return CVar(t.matmul(ar, br) - t.matmul(ai, bi), t.matmul(ar, bi) + t.matmul(ai, br))


def conj(a):
    re, im = parts(a)
    return t.lift(re) if im is None else CVar(re, -im)


def real(a):
    return t.lift(parts(a)[0])


def imag(a):
    re, im = parts(a)
    return t.lift(np.zeros(np.shape(t.lift(re).value))) if im is None else im


def cabs(a):
    re, im = parts(a)
    return t.abs_(re) if im is None else t.sqrt(re * re + im * im)


def csum(a, axis=None, keepdims=False):
    re, im = parts(a)
    if im is None:
        return t.sum_(re, axis, keepdims)
    return CVar(t.sum_(re, axis, keepdims), t.sum_(im, axis, keepdims))


def astype(a, dtype, copy=True):
    """A real array cast to a complex dtype gains a zero imaginary part; other casts keep the
    arithmetic's own precision (the engine computes in one)."""
    if getattr(np.dtype(dtype), "kind", "") == "c":
        return a if isinstance(a, CVar) else CVar(a)
    if isinstance(a, CVar):
        raise TypeError("casting a complex array to a real dtype drops its imaginary part")
    return t.lift(a)


def _either(real_op, complex_op):
    def run(*args, **kwargs):
        if any(isinstance(a, CVar) for a in args):
            return complex_op(*args, **kwargs)
        return real_op(*args, **kwargs)

    return run


def _map_parts(op):
    return lambda a, *args, **kw: CVar(op(a.re, *args, **kw), op(a.im, *args, **kw))


# the XP entries that accept complex operands (namespace.XP takes them over)
CXP = {
    "add": add,
    "subtract": sub,
    "multiply": mul,
    "divide": div,
    "matmul": matmul,
    "conj": conj,
    "real": real,
    "imag": imag,
    "astype": astype,
    "abs": _either(t.abs_, cabs),
    "sum": _either(t.sum_, csum),
    "negative": _either(t.neg, lambda a: -a),
    "reshape": _either(t.reshape, _map_parts(t.reshape)),
    "permute_dims": _either(t.transpose, _map_parts(t.transpose)),
    "expand_dims": _either(t.expand_dims, _map_parts(t.expand_dims)),
    "broadcast_to": _either(t.broadcast_to, _map_parts(t.broadcast_to)),
}
