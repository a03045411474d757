"""Declared functions: a body written once against ``xp`` and ``nn``, and its named inputs.

    import gradxval as gx

    @gx.function(W="m n", b="m", x="n k", label=gx.labels("k", classes="m"))
    def softmax_xent(W, b, x, label, *, xp, nn):
        logits = xp.matmul(W, x) + b[:, None]           # (m, k)
        return nn.cross_entropy(logits.T, label)

A string is a shape: space-separated symbols (shared across inputs) or integers.  ``Input``
says more: a domain, or that an input is held constant.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from gradxval.errors import UsageError, expected

__all__ = ["Input", "Function", "function", "labels", "DOMAINS", "REAL_DTYPES", "COMPLEX_DTYPES"]

DOMAINS = ("real", "positive", "unit", "labels")
REAL_DTYPES = ("float16", "bfloat16", "float32", "float64")
# a function with a complex input is checked in these: complex inputs take the case's dtype,
# real ones its real counterpart (float32 for complex64)
COMPLEX_DTYPES = ("complex64", "complex128")


@dataclass(frozen=True)
class Input:
    """One named array input.

    shape: symbols or sizes ("m n", ("m", 3)); domain: "real" (any value), "positive",
    "unit" (in (0, 1)), or "labels" (integers in [0, classes)); diff: whether the function is
    differentiated with respect to it (labels never are); complex: a complex input (its
    gradient in torch's convention, dL/dRe + i dL/dIm), which makes the function's dtypes
    complex64 and complex128.
    """

    shape: tuple = ()
    domain: str = "real"
    diff: bool = True
    classes: str | int | None = None
    complex: bool = False

    def __post_init__(self) -> None:
        shape = self.shape.split() if isinstance(self.shape, str) else tuple(self.shape)
        shape = tuple(int(s) if isinstance(s, str) and s.isdigit() else s for s in shape)
        for s in shape:
            if not (isinstance(s, int) and s >= 0) and not (
                isinstance(s, str) and s.isidentifier()
            ):
                raise UsageError(f"shape entry {s!r}: expected a symbol name or a size >= 0")
        object.__setattr__(self, "shape", shape)
        if self.domain not in DOMAINS:
            raise expected("domain", self.domain, DOMAINS)
        if self.complex and self.domain != "real":
            raise UsageError(f"a complex input has the domain 'real', not {self.domain!r}")
        if self.domain == "labels":
            if self.classes is None:
                raise UsageError("a labels input needs classes= (a symbol or a number)")
            object.__setattr__(self, "diff", False)

    @property
    def symbols(self) -> tuple[str, ...]:
        extra = (self.classes,) if isinstance(self.classes, str) else ()
        return tuple(s for s in self.shape if isinstance(s, str)) + extra


def labels(shape, classes) -> Input:
    """Integer class labels in [0, classes): never differentiated."""
    return Input(shape, domain="labels", classes=classes)


@dataclass
class Function:
    """A declared function: body, inputs, the dtypes it is checked in, an optional formula."""

    fn: object
    inputs: dict[str, Input]
    name: str = ""
    dtypes: tuple[str, ...] | None = None  # REAL_DTYPES, or COMPLEX_DTYPES with a complex input
    formula: object = None
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    order: int = 1  # 2: the Hessian-vector product is part of the default check

    def __post_init__(self) -> None:
        self.name = self.name or getattr(self.fn, "__name__", "function")
        allowed = COMPLEX_DTYPES if any(i.complex for i in self.inputs.values()) else REAL_DTYPES
        self.dtypes = tuple(self.dtypes or allowed)
        for d in self.dtypes:
            if d not in allowed:
                raise expected(f"dtype of {self.name!r}", d, allowed)
        params = inspect.signature(self.fn).parameters
        missing = [k for k in ("xp", "nn") if k not in params]
        if missing:
            raise UsageError(
                f"function {self.name!r} must take keyword arguments xp and nn "
                f"(def {self.name}(..., *, xp, nn)); it lacks {', '.join(missing)}"
            )
        names = [p for p in params if p not in ("xp", "nn")]
        if sorted(names) != sorted(self.inputs):
            raise UsageError(
                f"function {self.name!r} takes {', '.join(names) or 'no inputs'} but declares "
                f"{', '.join(self.inputs) or 'no inputs'}: declare each argument once"
            )
        if not self.wrt:
            raise UsageError(f"function {self.name!r} differentiates no input")

    @property
    def wrt(self) -> tuple[str, ...]:
        """The differentiated inputs, in declaration order."""
        return tuple(k for k, v in self.inputs.items() if v.diff)

    @property
    def symbols(self) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for inp in self.inputs.values():
            out.update(dict.fromkeys(inp.symbols))
        return tuple(out)

    def quantities(self, order: int = 1) -> tuple[str, ...]:
        q = ("loss", *(f"grad_{k}" for k in self.wrt))
        return q + tuple(f"hvp_{k}" for k in self.wrt) if order >= 2 else q

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def _as_input(name: str, spec) -> Input:
    if isinstance(spec, Input):
        return spec
    if isinstance(spec, (str, tuple, list)):
        return Input(spec)
    raise UsageError(f"input {name}={spec!r}: expected a shape string or gradxval.Input")


def function(
    fn=None,
    *,
    name: str = "",
    dtypes=None,
    formula=None,
    sizes=None,
    order: int = 1,
    **inputs,
):
    """Declare a function of named inputs; usable as ``@function(...)`` or ``function(fn, ...)``."""

    def wrap(f) -> Function:
        return Function(
            f,
            {k: _as_input(k, v) for k, v in inputs.items()},
            name=name,
            dtypes=tuple(dtypes) if dtypes else None,
            formula=formula,
            sizes=dict(sizes or {}),
            order=order,
        )

    return wrap(fn) if fn is not None else wrap
