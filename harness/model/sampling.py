"""Cases of a declared function: sizes for its symbols, a regime, a dtype, and a seed.

Every case draws its inputs from its own generator, seeded from the run seed and the case's
index, and its id says everything needed to draw it again:
``softmax_xent:normal-float32-k3m4n2-s123456``.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
from gradxval.dtypes import info
from gradxval.errors import UsageError, expected
from gradxval.model.functions import Function

__all__ = [
    "FunctionCase",
    "REGIMES",
    "sample",
    "draw",
    "parse_case_id",
    "check_regimes",
    "can_be_empty",
    "has_cases",
    "strided_view",
]

# normal: N(0, 1); saturated: N(0, 30^2), past the knees of sigmoid, tanh and softmax;
# extreme: magnitudes spread over the dtype's range; special: a few entries +-inf or NaN;
# strided: normal values handed over as non-contiguous views (every other element of a
# buffer), which a backend must read as they are laid out; empty: normal values with one size
# 0 (a batch of none, a vector of length 0), where a sum is 0 and a mean or a max is undefined
REGIMES = ("normal", "saturated", "extreme", "special", "strided", "empty")

_ID = re.compile(r"^(?P<fn>[A-Za-z0-9_.]+):(?P<regime>[a-z]+)-(?P<dtype>[a-z0-9]+)-"
                 r"(?P<sizes>(?:[A-Za-z_]+\d+)*)-s(?P<seed>\d+)$")  # fmt: skip


@dataclass(frozen=True)
class FunctionCase:
    function: str
    regime: str
    dtype: str
    sizes: tuple[tuple[str, int], ...]
    seed: int

    @property
    def id(self) -> str:
        sizes = "".join(f"{k}{v}" for k, v in self.sizes)
        return f"{self.function}:{self.regime}-{self.dtype}-{sizes}-s{self.seed}"


def check_regimes(regimes) -> tuple[str, ...]:
    """The regimes asked for (all by default), each a known one, or a UsageError."""
    regimes = tuple(regimes or REGIMES)
    for r in regimes:
        if r not in REGIMES:
            raise expected("regime", r, REGIMES)
    return regimes


def parse_case_id(case_id: str) -> FunctionCase:
    m = _ID.match(case_id)
    if not m:
        raise UsageError(f"case id {case_id!r}: expected NAME:REGIME-DTYPE-SIZES-sSEED")
    sizes = tuple((k, int(v)) for k, v in re.findall(r"([A-Za-z_]+)(\d+)", m["sizes"]))
    return FunctionCase(m["fn"], m["regime"], m["dtype"], sizes, int(m["seed"]))


def _size(rng: np.random.Generator, lo: int, hi: int) -> int:
    r = rng.random()
    if r < 0.15:
        return lo
    if r < 0.85:
        return int(rng.integers(lo, max(lo, min(hi, 6)) + 1))
    return int(rng.integers(lo, hi + 1))


def can_be_empty(function: Function) -> tuple[str, ...]:
    """The size symbols the empty regime may set to 0: not declared with a lower bound of 1
    or more (sizes={"n": (1, 8)} says n >= 1), and no label's number of classes."""
    classes = {i.classes for i in function.inputs.values() if i.domain == "labels"}
    return tuple(s for s in sorted(function.symbols)
                 if s not in classes and function.sizes.get(s, (0, 0))[0] == 0)  # fmt: skip


def has_cases(function: Function, dtypes=None, regimes=None) -> bool:
    """Whether ``sample`` has cases of ``function`` in the dtypes and regimes asked for (of
    several functions, one without any is left out: a complex function under --dtypes float32,
    one whose sizes may not be 0 under --regimes empty)."""
    if dtypes and not set(dtypes) & set(function.dtypes):
        return False
    return not regimes or set(regimes) != {"empty"} or bool(can_be_empty(function))


def sample(function: Function, count: int, seed: int, dtypes=None, regimes=None) -> list:
    """``count`` cases spread evenly over dtypes x regimes (round robin), sizes drawn."""
    dtypes = tuple(dtypes or function.dtypes)
    asked = check_regimes(regimes)
    dtypes = tuple(d for d in dtypes if d in function.dtypes)
    if not dtypes:
        raise UsageError(f"function {function.name} is checked in {', '.join(function.dtypes)}")
    zeroable = can_be_empty(function)
    # a function none of whose sizes may be 0 has no empty cases (docs/functions.md)
    regimes = tuple(r for r in asked if r != "empty" or zeroable)
    if not regimes:
        raise UsageError(f"function {function.name} has no empty cases: every size symbol of "
                         f"it is declared >= 1 or has none; ask for other --regimes")  # fmt: skip
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(function.name.encode())]))
    combos = [(r, d) for r in regimes for d in dtypes]
    out = []
    for i in range(count):
        regime, dtype = combos[i % len(combos)]
        sizes = []
        for sym in sorted(function.symbols):
            lo, hi = function.sizes.get(sym, (1, 24))
            sizes.append((sym, _size(rng, lo, hi)))
        case_seed = int(np.random.SeedSequence([seed, i + 1]).generate_state(1)[0]) % 10**6
        if regime == "empty":  # which size is 0: from the case's seed, not the shared stream
            zero = zeroable[case_seed % len(zeroable)]
            sizes = [(k, 0 if k == zero else v) for k, v in sizes]
        out.append(FunctionCase(function.name, regime, dtype, tuple(sizes), case_seed))
    return out


def _real(rng, shape, regime: str, dt) -> np.ndarray:
    # the empty regime's values are normal ones (where a size is not 0, they are drawn)
    if regime == "saturated":
        return rng.standard_normal(shape) * 30.0
    if regime == "extreme":
        # log-uniform magnitudes from the dtype's smallest normal to a thousandth of its max
        lo, hi = np.log2(dt.tiny), np.log2(dt.max) - 10
        return rng.choice([-1.0, 1.0], size=shape) * 2.0 ** rng.uniform(lo, hi, size=shape)
    return rng.standard_normal(shape)


def strided_view(a: np.ndarray) -> np.ndarray:
    """The same values as a view of every other element of a larger buffer (read-only)."""
    if a.ndim == 0 or a.size == 0:
        return a
    buf = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    view = buf[..., ::2]
    view[...] = a
    view.flags.writeable = False
    return view


def draw(function: Function, case: FunctionCase):
    """(arrays, directions): the case's inputs, rounded to its dtype, and a random direction
    per differentiated input (the JVP's tangents and the HVP's vectors)."""
    dt = info(case.dtype)
    sizes = dict(case.sizes)
    rng = np.random.default_rng(case.seed)
    arrays: dict[str, np.ndarray] = {}
    for name, inp in function.inputs.items():
        shape = tuple(sizes[s] if isinstance(s, str) else s for s in inp.shape)
        if inp.domain == "labels":
            classes = sizes[inp.classes] if isinstance(inp.classes, str) else inp.classes
            arrays[name] = rng.integers(0, max(classes, 1), size=shape).astype(np.int64)
            continue
        v = _real(rng, shape, case.regime, dt)
        if inp.complex:  # both parts from the regime; specials land in the real part
            v = v + 1j * _real(rng, shape, case.regime, dt)
        if inp.domain == "positive":
            v = np.abs(v) + dt.tiny
        elif inp.domain == "unit":
            v = 1.0 / (1.0 + np.exp(-np.clip(v, -30, 30)))
        if case.regime == "special" and v.size and inp.diff:
            k = max(1, v.size // 8)
            idx = rng.choice(v.size, size=k, replace=False)
            v.reshape(-1)[idx] = rng.choice([np.inf, -np.inf, np.nan], size=k)
        with np.errstate(all="ignore"):
            v = v.astype(dt.np if inp.complex else dt.np_real)
        if inp.domain == "positive":
            v = np.where(v > 0, v, np.asarray(dt.tiny, dt.np_real)).astype(dt.np_real)
        arrays[name] = v
    if case.regime == "strided":
        arrays = {k: strided_view(v) for k, v in arrays.items()}
    directions = {}
    for k in function.wrt:
        d = rng.standard_normal(arrays[k].shape)
        if function.inputs[k].complex:
            d = d + 1j * rng.standard_normal(arrays[k].shape)
        directions[k] = d.astype(arrays[k].dtype)
    return arrays, directions
