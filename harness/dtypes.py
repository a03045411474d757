"""Dtype names and their floating-point facts; the only place numpy dtype objects are made."""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
from gradxval.errors import expected

__all__ = ["DTYPES", "DtypeInfo", "info", "parse_dtypes"]

DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128")


@dataclass(frozen=True)
class DtypeInfo:
    """Facts about one dtype name.  ``real`` is the dtype of x, the loss and grad_x."""

    name: str
    real: str
    is_complex: bool
    u: float  # unit roundoff, 2**-p for p significand bits
    tiny: float  # smallest positive normal number
    eta: float  # smallest positive subnormal number: the underflow term of Higham's model
    max: float

    @property
    def np(self) -> np.dtype:
        return np.dtype(ml_dtypes.bfloat16) if self.name == "bfloat16" else np.dtype(self.name)

    @property
    def np_real(self) -> np.dtype:
        return info(self.real).np


def _make(name: str, real: str, is_complex: bool) -> DtypeInfo:
    fi = ml_dtypes.finfo(ml_dtypes.bfloat16) if real == "bfloat16" else np.finfo(real)
    return DtypeInfo(
        name=name,
        real=real,
        is_complex=is_complex,
        u=float(fi.eps) / 2,
        tiny=float(fi.tiny),
        eta=float(fi.smallest_subnormal),
        max=float(fi.max),
    )


_INFO = {
    "float16": _make("float16", "float16", False),
    "bfloat16": _make("bfloat16", "bfloat16", False),
    "float32": _make("float32", "float32", False),
    "float64": _make("float64", "float64", False),
    "complex64": _make("complex64", "float32", True),
    "complex128": _make("complex128", "float64", True),
}


def info(name: str) -> DtypeInfo:
    """Return the facts for a dtype name, or raise a UsageError listing the known ones."""
    try:
        return _INFO[name]
    except KeyError:
        raise expected("dtype", name, DTYPES) from None


def parse_dtypes(spec: str | None) -> tuple[str, ...]:
    """Parse 'float32,float64' or 'all' into validated names, in canonical order."""
    if not spec or spec == "all":
        return DTYPES
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        info(n)
    return tuple(d for d in DTYPES if d in names)
