"""Case: what one check runs on.  Its id is its whole description; inputs come from the id alone."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from gradxval.dtypes import DTYPES, info
from gradxval.errors import GradxvalError, UsageError, expected

__all__ = [
    "REGIMES",
    "SHAPE_CLASSES",
    "Case",
    "Inputs",
    "parse_regimes",
    "sample_cases",
    "shape_classes",
    "size_order",
]

REGIMES = ("normal", "saturated", "extreme", "special", "empty", "strided")
MAX_SIZE = 1000
# special regime variants, chosen by seed so that the id still says everything
SPECIAL_KINDS = ("nan_x", "nan_A", "zero_A", "inf_A")

_ID = re.compile(
    r"^(?:(?P<problem>[A-Za-z0-9_.:]+):)?(?P<regime>[a-z]+)-(?P<dtype>[a-z0-9]+)-m(?P<m>\d+)n(?P<n>\d+)(?:k(?P<k>\d+))?-s(?P<seed>\d+)$"
)


@dataclass(frozen=True)
class Inputs:
    """The rounded inputs every backend and the reference receive."""

    A: np.ndarray  # (m, n), case dtype; may be non-contiguous in the strided regime
    x: np.ndarray  # (n,) or (n, k), real dtype of the case
    v: np.ndarray | None = None  # the direction of the Hessian-vector product: x's shape and dtype


@dataclass(frozen=True, order=True)
class Case:
    """One check: a regime, a dtype, a shape (m, n, k) and a seed."""

    regime: str
    dtype: str
    m: int
    n: int
    k: int | None
    seed: int
    problem: str = "logistic"  # a name from gradxval.problems.known_problems()

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise expected("regime", self.regime, REGIMES)
        info(self.dtype)
        if self.m < 0 or self.n < 0 or (self.k is not None and self.k < 1):
            raise UsageError(f"shape m={self.m}, n={self.n}, k={self.k}: need m, n >= 0, k >= 1")
        # the problem name is checked where it is used (problems.load_problem lists the known
        # ones): a case id is only a description, and cases import no problem
        if not self.problem:
            raise UsageError("problem='' in a case; expected a problem name")
        if self.regime == "empty" and self.m and self.n:
            raise UsageError(f"regime 'empty' needs m == 0 or n == 0, got m={self.m}, n={self.n}")

    @property
    def id(self) -> str:
        k = "" if self.k is None else f"k{self.k}"
        prefix = "" if self.problem == "logistic" else f"{self.problem}:"
        return f"{prefix}{self.regime}-{self.dtype}-m{self.m}n{self.n}{k}-s{self.seed}"

    @property
    def size_key(self) -> tuple:
        """Smallest first: elements of A times columns of x, then m, n, k and the seed."""
        return (self.m * self.n * (self.k or 1), self.m, self.n, self.k or 0, self.seed)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.n,) if self.k is None else (self.n, self.k)

    @property
    def special_kind(self) -> str | None:
        return SPECIAL_KINDS[self.seed % len(SPECIAL_KINDS)] if self.regime == "special" else None

    @classmethod
    def from_id(cls, case_id: str) -> Case:
        """Parse an id such as ``normal-float32-m37n5k3-s1234``."""
        mt = _ID.match(case_id)
        if not mt:
            raise UsageError(
                f"case id {case_id!r} is malformed, expected REGIME-DTYPE-mMnN[kK]-sSEED "
                "such as normal-float32-m37n5k3-s1234"
            )
        k = mt["k"]
        return cls(
            mt["regime"],
            mt["dtype"],
            int(mt["m"]),
            int(mt["n"]),
            None if k is None else int(k),
            int(mt["seed"]),
            mt["problem"] or "logistic",
        )

    def inputs(self) -> Inputs:
        """Draw the inputs in float64/complex128 from this case's own generator, then round."""
        rng = np.random.default_rng(self.seed)
        di = info(self.dtype)
        A = _draw_matrix(rng, (self.m, self.n), di.is_complex)
        x = rng.standard_normal(self.x_shape)
        if self.regime == "saturated":
            x = rng.choice([-1.0, 1.0], size=x.shape) * rng.uniform(8.0, 40.0, size=x.shape)
        elif self.regime == "extreme":
            x = rng.choice([-1.0, 1.0], size=x.shape) * 10.0 ** rng.uniform(0.0, 3.0, size=x.shape)
            if x.size:
                x.flat[rng.integers(0, x.size, size=max(1, x.size // 8))] = np.inf
                x.flat[rng.integers(0, x.size)] = -np.inf
        elif self.regime == "special":
            _plant_special(rng, self.special_kind, A, x)
        # drawn last, so that A and x are what they were before second order existed
        v = rng.standard_normal(self.x_shape)
        return Inputs(
            A=self.present(A.astype(di.np, copy=False)),  # present copies it
            x=x.astype(di.np_real),
            v=v.astype(di.np_real),
        )

    def present(self, A: np.ndarray) -> np.ndarray:
        """Return a fresh copy of A in this case's layout (strided regime: not C-contiguous)."""
        A = np.array(A, order="C", copy=True)
        return _strided(A, self.seed) if self.regime == "strided" else A


def _draw_matrix(rng: np.random.Generator, shape, is_complex: bool) -> np.ndarray:
    if is_complex:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    return rng.standard_normal(shape)


def _plant_special(rng, kind: str, A: np.ndarray, x: np.ndarray) -> None:
    if kind == "zero_A":
        A[...] = 0
    elif kind == "nan_x" and x.size:
        x.flat[rng.integers(0, x.size)] = np.nan
    elif kind == "nan_A" and A.size:
        A.flat[rng.integers(0, A.size)] = np.nan
    elif kind == "inf_A" and A.size:
        A.flat[rng.integers(0, A.size)] = rng.choice([-np.inf, np.inf])


def _strided(A: np.ndarray, seed: int) -> np.ndarray:
    """Same values, other memory layout: a transposed view or every other column of a wider one."""
    if seed % 2:
        return np.ascontiguousarray(A.T).T
    wide = np.zeros((A.shape[0], 2 * A.shape[1]), dtype=A.dtype)
    wide[:, ::2] = A
    return wide[:, ::2]


def size_order(case_id: str) -> tuple:
    """A sort key for case ids, smallest case first; ids of another family last, by id."""
    try:
        return (0, *Case.from_id(case_id).size_key)
    except GradxvalError:
        return (1, case_id)


def parse_regimes(spec: str | None) -> tuple[str, ...]:
    """Parse 'normal,saturated' or 'all'."""
    if not spec or spec == "all":
        return REGIMES
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        if n not in REGIMES:
            raise expected("regime", n, REGIMES)
    return tuple(r for r in REGIMES if r in names)


def _size(rng: np.random.Generator) -> int:
    """Log-uniform on 0..MAX_SIZE: small sizes are common, 1000 still happens."""
    return int(np.exp(rng.uniform(0.0, np.log(MAX_SIZE + 1)))) - 1


LARGE = 256  # a dimension at least this long makes a case "large"
SHAPE_CLASSES = ("square", "m=1", "n=1", "k>=2", "tall", "wide", "empty", "large", "strided")


def shape_classes(case: Case) -> tuple[str, ...]:
    """The shape classes a case belongs to (a case may be in several)."""
    m, n = case.m, case.n
    out = []
    if m == n >= 2:
        out.append("square")
    if m == 1:
        out.append("m=1")
    if n == 1:
        out.append("n=1")
    if (case.k or 1) >= 2:
        out.append("k>=2")
    if m > n >= 1:
        out.append("tall")
    if n > m >= 1:
        out.append("wide")
    if m == 0 or n == 0:
        out.append("empty")
    if max(m, n) >= LARGE:
        out.append("large")
    if case.regime == "strided" and m >= 1 and n >= 2:
        out.append("strided")
    return tuple(out)


def _cover_shapes(rng: np.random.Generator) -> list[tuple[int, int, int | None]]:
    """Three shapes that together cover square, k >= 2, m = 1, n = 1, tall, wide and large."""
    s = int(rng.integers(2, 33))
    return [
        (s, s, int(rng.integers(2, 9))),  # square, k >= 2
        (1, int(rng.integers(LARGE, MAX_SIZE + 1)), None),  # m = 1, wide, large
        (int(rng.integers(2, 300)), 1, None),  # n = 1, tall
    ]


def _shape_pool(rng: np.random.Generator, count: int) -> list[tuple[int, int, int | None]]:
    # 1x1 and a large non-power-of-two size are always in the pool
    pool = [(1, 1, None), (37, 5, 3), (MAX_SIZE, 257, None)]
    while len(pool) < count:
        k = None if rng.random() < 0.5 else int(rng.integers(1, 9))
        pool.append((_size(rng), _size(rng), k))
    return pool


# the order in which each dtype's cases take the requested regimes: the layouts (strided) and
# empty shapes come early, so that a short run covers every shape class for every dtype
_COVER_ORDER = ("normal", "strided", "empty", "saturated", "extreme", "special")


def sample_cases(
    count: int,
    seed: int,
    dtypes=DTYPES,
    regimes=REGIMES,
    pool_size: int | None = None,
    problems=("logistic",),
    domains: dict | None = None,
) -> list[Case]:
    """Draw ``count`` cases deterministically from the run seed.

    Problems take turns case by case (round robin, so a short run reaches every problem), then
    dtypes; each dtype walks through the regimes in _COVER_ORDER.  The first non-empty cases of
    each dtype get three fixed shapes (1 x large, tall x 1, and square with a batch, which the
    strided regime takes first): with the strided and empty regimes early, every run with at
    least 5 cases per dtype covers every class of SHAPE_CLASSES whose regime was requested.
    Other shapes come from a pool of about count/50 shapes, so that jit-compiling backends
    compile each (shape, dtype) once per run.
    Per-case seeds come from SeedSequence(run seed, index): every case reproduces alone.
    ``domains`` maps a problem to the (dtypes, regimes) it declares (problems.domains): its
    cases are drawn from those only, in the same order; problems not in it take every one.
    """
    if count < 0:
        raise UsageError(f"cases={count}, expected a count >= 0")
    if not dtypes or not regimes or not problems:
        raise UsageError("need at least one dtype, one regime and one problem")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    pool = _shape_pool(rng, pool_size or max(4, count // 50))
    cover = _cover_shapes(rng)
    order = [r for r in _COVER_ORDER if r in regimes]
    domains = domains or {}
    own = {
        p: (
            [d for d in dtypes if d in domains[p][0]] if p in domains else list(dtypes),
            [r for r in order if r in domains[p][1]] if p in domains else order,
        )
        for p in problems
    }
    for p, (ds, rs) in own.items():
        if not ds or not rs:
            raise UsageError(f"problem {p} has no dtype or regime among those asked for")
    seen = {}  # cases of each (problem, dtype) so far
    # fixed shapes still to hand out to each dtype: the strided regime takes the square one
    # (a 1 x n layout is barely non-contiguous), other regimes take them in order
    todo = {d: [cover[1], cover[2], cover[0]] for d in dtypes}
    cases = []
    for i in range(count):
        problem = problems[i % len(problems)]
        p_dtypes, p_order = own[problem]
        dtype = p_dtypes[(i // len(problems)) % len(p_dtypes)]
        # a dtype's cases come in blocks of one per problem: shifting by the block index lets
        # every problem meet every regime (plain seen % R would pair them in fixed cycles)
        # (with every problem in every dtype: block = seen[dtype] // P, slot = i % P)
        block, slot = seen.get((problem, dtype), 0), problems.index(problem)
        regime = p_order[(block + slot) % len(p_order)]
        seen[problem, dtype] = block + 1
        case_seed = int(np.random.SeedSequence([seed, i + 1]).generate_state(1)[0]) % 10**6
        m, n, k = pool[int(rng.integers(0, len(pool)))]
        if regime != "empty" and todo[dtype]:
            pick = cover[0] if regime == "strided" and cover[0] in todo[dtype] else todo[dtype][0]
            todo[dtype].remove(pick)
            m, n, k = pick
        if regime == "empty":
            m, n = (0, n) if case_seed % 2 else (m, 0)
        cases.append(Case(regime, dtype, m, n, k, case_seed, problem))
    return cases
