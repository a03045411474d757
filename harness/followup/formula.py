"""Does my gradient formula hold?  ``check_formula`` and ``gradxval check-formula``.

A candidate is a Python function ``grad_x(A, x, xp)`` for the gradient of
f(A, x) = ||A sigma(x)||^2 with respect to a vector x, written with the array namespace ``xp``;
with ``order=2``, a function ``hvp_x(A, x, v, xp)`` for its Hessian with respect to x applied
to v.
It runs in every backend that offers a namespace (numpy, torch, jax), on random cases, and each
result is judged against the reference like any backend's.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from gradxval.errors import Unsupported, UsageError
from gradxval.judge.compare import Verdict, judge
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import Case, sample_cases

__all__ = ["FormulaReport", "check_formula", "load_formula"]


@dataclass
class FormulaReport:
    """Verdicts of one formula, and what they mean in a sentence."""

    name: str
    verdicts: list[Verdict] = field(default_factory=list)
    summary: str = ""
    counterexample: str | None = None  # the shrunk case id of the first disagreement

    @property
    def ok(self) -> bool:
        return not any(v.verdict in ("disagree", "error") for v in self.verdicts)

    def counts(self) -> Counter:
        return Counter(v.verdict for v in self.verdicts)


def load_formula(spec: str) -> Callable:
    """Import 'package.module:function' (or a path 'file.py:function')."""
    module, _, attr = spec.partition(":")
    if not attr:
        raise UsageError(f"formula={spec!r}, expected module:function or path.py:function")
    try:
        if module.endswith(".py"):
            sp = importlib.util.spec_from_file_location("_gradxval_formula", module)
            mod = importlib.util.module_from_spec(sp)
            sp.loader.exec_module(mod)
        else:
            mod = importlib.import_module(module)
        return getattr(mod, attr)
    except (ImportError, AttributeError, FileNotFoundError) as exc:
        raise UsageError(f"formula={spec!r} cannot be loaded: {exc}") from None


def _evaluate(fn, backend, case: Case, inputs, order=1) -> tuple[np.ndarray | None, str | None]:
    xp, to_backend, to_numpy, scope = backend.formula_namespace()
    try:
        with scope(case.dtype):
            args = [to_backend(inputs.A.copy()), to_backend(inputs.x.copy())]
            if order == 2:
                args.append(to_backend(inputs.v.copy()))
            out = fn(*args, xp)
            return np.asarray(to_numpy(out) if not isinstance(out, (int, float)) else out), None
    except Exception as exc:  # the user's formula failing is a verdict, not a crash
        return None, f"your formula raised {type(exc).__name__}: {exc}"


def _judge(fn, name, backend, case, inputs, ref, registry, order=1) -> Verdict:
    actual, err = _evaluate(fn, backend, case, inputs, order)
    quantity = "grad_x" if order == 1 else "hvp_x"
    base = dict(
        case_id=case.id,
        backend=backend.name,
        method=name,
        quantity=quantity,
        dtype=case.dtype,
        regime=case.regime,
    )
    if err:
        return Verdict(**base, verdict="error", message=err)
    if actual.shape != case.x_shape:
        return Verdict(
            **base,
            verdict="disagree",
            message=f"your formula returns shape {actual.shape} but "
            f"{'the gradient' if order == 1 else 'H v'} has shape {case.x_shape}",
        )
    return judge(case, backend.name, name, quantity, actual, ref, registry)


def _factor(verdicts, results) -> str | None:
    """'wrong by a factor of c everywhere' when every result is c times the reference."""
    ratios = []
    for v, (actual, ref) in zip(verdicts, results, strict=True):
        if v.verdict != "disagree" or actual is None or np.shape(actual) != np.shape(ref):
            continue
        with np.errstate(all="ignore"):
            big = np.isfinite(ref) & (np.abs(ref) > 1e-3 * np.nanmax(np.abs(ref), initial=0))
            ratios.extend((np.asarray(actual, dtype=np.float64)[big] / ref[big]).tolist())
    if len(ratios) < 3:
        return None
    r = np.asarray(ratios)
    c = float(np.median(r))
    if np.all(np.abs(r - c) <= 1e-2 * abs(c)) and abs(c - 1) > 1e-2:
        return f"wrong by a factor of {c:.4g} everywhere"
    return None


def check_formula(
    fn: Callable,
    name: str | None = None,
    backends=None,
    dtypes=("float32", "float64"),
    regimes=("normal", "saturated"),
    cases: int = 12,
    seed: int = 1,
    shrink: bool = True,
    order: int = 1,
) -> FormulaReport:
    """Judge a candidate grad_x formula (order 2: hvp_x(A, x, v, xp)) on every backend, dtype
    and regime."""
    from gradxval.errors import expected

    if order not in (1, 2):
        raise expected("order", order, [1, 2])
    from gradxval.backends import describe, load
    from gradxval.followup.shrink import shrink as shrink_case
    from gradxval.judge.known import load_registry

    name = name or getattr(fn, "__name__", "formula")
    registry = load_registry()
    if backends is None:  # the built-ins (a plug-in's own promotion rules are its findings)
        from gradxval.backends import BUILTIN

        backends = tuple(BUILTIN)
    names = [b for b in backends if describe(b).available]
    report = FormulaReport(name)
    results = []
    picked = [
        Case(c.regime, c.dtype, c.m, max(c.n, 1), None, c.seed)
        for c in sample_cases(cases, seed, dtypes, regimes, pool_size=6)
    ]
    for case in picked:
        inputs = case.inputs()
        ref = reference_for(case, inputs, order == 2)
        for b in names:
            backend = load(b)
            try:
                v = _judge(fn, name, backend, case, inputs, ref, registry, order)
            except Unsupported:
                continue
            report.verdicts.append(v)
            results.append((_evaluate(fn, backend, case, inputs, order)[0], ref.values[v.quantity]))
    report.summary = _summarise(report, results, order)
    first = next((v for v in report.verdicts if v.verdict == "disagree"), None)
    if shrink and first is not None:
        backend = load(first.backend)

        def fails(c: Case) -> bool:
            if c.n == 0:
                return False
            inp = c.inputs()
            ref = reference_for(c, inp, order == 2)
            return _judge(fn, name, backend, c, inp, ref, registry, order).verdict == "disagree"

        report.counterexample = shrink_case(Case.from_id(first.case_id), fails).id
    return report


def _summarise(report: FormulaReport, results, order: int = 1) -> str:
    n = report.counts()
    shapes = [v for v in report.verdicts if v.message.startswith("your formula returns")]
    raised = [v.message for v in report.verdicts if v.verdict == "error"]
    if raised:
        return raised[0]
    if shapes:  # the message of the case with the longest x reads best
        return max(shapes, key=lambda v: Case.from_id(v.case_id).n).message
    factor = _factor(report.verdicts, results)
    if factor:
        return factor
    bad = [v for v in report.verdicts if v.verdict == "disagree"]
    if bad and all("derivative_cancellation" in v.extra.get("diagnosis", ()) for v in bad):
        regimes = sorted({v.regime for v in bad})
        if order == 2:
            return (
                f"wrong in the {', '.join(regimes)} regime: right elsewhere, but its sigma' and "
                "sigma'' cancel like s(1 - s)(1 - 2s) for large x (diagnosis "
                "derivative_cancellation): use sigma(x) sigma(-x) and -sigma'(x) tanh(x/2)"
            )
        return (
            f"wrong in the {', '.join(regimes)} regime: right elsewhere, but it cancels like "
            "sigma - sigma^2 for large x (diagnosis derivative_cancellation; a closed form has "
            "no excuse for it: use sigma(x) * sigma(-x))"
        )
    if n["disagree"]:
        v = next(v for v in report.verdicts if v.verdict == "disagree")
        return f"wrong: {v.message}"
    return f"right: agrees with the reference in all {n['agree']} results"
