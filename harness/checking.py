"""Check declared functions: the library API behind ``gradxval check`` and ``gradxval.check``.

For each case the expectation (binary128 reference and derived tolerance) is computed once and
every backend's every method is judged against it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gradxval.errors import GradxvalError, Unsupported, UsageError, expected
from gradxval.judge.expectation import expect
from gradxval.judge.known_functions import explain
from gradxval.judge.verdict import FAILING, OUTCOMES, Verdict, judge
from gradxval.model.functions import Function
from gradxval.model.sampling import FunctionCase, check_regimes, draw, parse_case_id, sample

__all__ = ["check", "CheckResult", "load_target", "load_backends", "method_quantities"]


# every method a backend may offer for declared functions (Backend.function_methods)
METHODS = ("autodiff", "jit", "forward", "hvp", "value", "formula")


def method_quantities(method: str, function: Function) -> tuple[str, ...]:
    """The quantities a method computes."""
    if method in ("autodiff", "jit"):
        return function.quantities(1)
    if method == "value":
        return ("loss",)
    if method == "forward":
        return ("jvp",)
    if method == "hvp":
        return tuple(f"hvp_{k}" for k in function.wrt)
    return function.quantities(2)  # formula: whatever it returns of these


def load_backends(spec="all") -> dict:
    """Name -> backend for a check: every installed backend with the declared-function adapter
    (``all``), or exactly those named, which must load (a usage error otherwise); a named one
    without the adapter is kept, and its results are recorded unsupported."""
    from gradxval.backends import load, not_installed, parse_backends

    names, explicit = parse_backends(spec if isinstance(spec, str) else ",".join(spec))
    loaded = {}
    for n in names:
        try:
            b = load(n)
        except GradxvalError as exc:
            if explicit or not not_installed(n):
                raise UsageError(str(exc)) from None  # a backend asked for must load
            continue
        if getattr(b, "function_methods", ()) or explicit:
            loaded[n] = b
    return loaded


def load_target(target: str) -> list[Function]:
    """Functions named by ``FILE.py:NAME``, ``module:NAME``, ``suite`` or ``suite:NAME``."""
    if target == "suite" or target.startswith("suite:"):
        from gradxval.suite import BY_NAME, SUITE

        if target == "suite":
            return list(SUITE)
        names = target.split(":", 1)[1].split(",")
        missing = [n for n in names if n not in BY_NAME]
        if missing:
            raise UsageError(f"suite:{missing[0]}: no such function; the suite has "
                             f"{', '.join(BY_NAME)}")  # fmt: skip
        return [BY_NAME[n] for n in names]
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"{target!r}: expected FILE.py:NAME, module:NAME, suite or suite:NAME")
    try:
        if path.endswith(".py"):
            file = Path(path)
            if not file.is_file():
                raise UsageError(f"{path}: no such file")
            spec = importlib.util.spec_from_file_location(f"_gradxval_user_{file.stem}", file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(path)
    except GradxvalError:
        raise
    except Exception as exc:
        if isinstance(exc, SyntaxError):  # its message names the file and line already
            raise UsageError(f"{path}: SyntaxError: {exc}") from None
        # the line in the user's file, not in the import machinery
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if Path(f.filename).name == Path(path).name]  # fmt: skip
        line = f" (line {frames[-1].lineno})" if frames else ""
        raise UsageError(f"{path}: {type(exc).__name__}: {exc}{line}") from None
    if not hasattr(module, name):
        found = [k for k, v in vars(module).items() if isinstance(v, Function)]
        raise UsageError(f"{path} has no {name!r}; its declared functions: "
                         f"{', '.join(found) or 'none'}")  # fmt: skip
    obj = getattr(module, name)
    objs = obj if isinstance(obj, (list, tuple)) else [obj]
    for o in objs:
        if not isinstance(o, Function):
            raise UsageError(
                f"{path}:{name} is a {type(o).__name__}, not a declared function: decorate it "
                f'with @gradxval.function(input="shape", ...)'
            )
    return list(objs)


@dataclass
class CheckResult:
    """Every record of a check, its counts, and ``ok`` (no disagreement, no error)."""

    records: list = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def judged(self) -> bool:
        """Whether any result was judged (not everything unsupported)."""
        return any(r["outcome"] != "unsupported" for r in self.records)

    @property
    def ok(self) -> bool:
        """Nothing failed, and something was judged: a check that judged nothing has not
        passed."""
        return self.judged and not any(self.counts[o] for o in FAILING)

    @property
    def exit_status(self) -> int:
        """0 ok, 1 a disagreement or an error, 4 nothing judged (README, exit status)."""
        return 4 if not self.judged else 0 if self.ok else 1

    @property
    def failures(self) -> list:
        return [r for r in self.records if r["outcome"] in FAILING]

    def summary(self) -> dict:
        cells: dict = {}
        for r in self.records:
            key = f"{r['backend']}/{r['method']}/{r['dtype']}"
            cells.setdefault(key, Counter())[r["outcome"]] += 1
        worst = sorted(self.failures, key=lambda r: -(r.get("ulps") or 0))[:20]
        return {
            "ok": self.ok,
            "counts": {o: self.counts[o] for o in OUTCOMES if self.counts[o]},
            "cells": {k: dict(v) for k, v in sorted(cells.items())},
            "failures": len(self.failures),
            "worst": worst,
            "seconds": round(self.seconds, 2),
        }


# seconds one backend call may take; a call past it is an error verdict, and the backend is
# not called again in this run (its thread cannot be stopped, only left behind)
TIMEOUT = 120.0


def _run_one(backend, method, function, arrays, dtype, directions, timeout=None):
    extra = directions if method in ("forward", "hvp") else None
    hung = getattr(backend, "_gradxval_hung", None)
    if hung:
        return None, ("error", f"not run: this backend {hung}")
    box: dict = {}

    def call():
        try:
            box["out"] = backend.run_function(method, function, arrays, dtype, extra)
        except BaseException as exc:  # handed to the caller below
            box["exc"] = exc

    worker = threading.Thread(target=call, name=f"gradxval-{method}", daemon=True)
    worker.start()
    worker.join(TIMEOUT if timeout is None else timeout)
    if worker.is_alive():
        limit = TIMEOUT if timeout is None else timeout
        backend._gradxval_hung = f"timed out after {limit:g} s on {function.name} ({method})"
        return None, ("error", f"timed out after {limit:g} s")
    exc = box.get("exc")
    if exc is None:
        return box["out"], None
    if isinstance(exc, Unsupported):
        return None, ("unsupported", str(exc))
    if isinstance(exc, Exception):  # a backend that raises: recorded, the run goes on
        return None, ("error", f"{type(exc).__name__}: {exc}")
    raise exc  # KeyboardInterrupt, SystemExit


def check_case(function: Function, case: FunctionCase, backends: dict, methods, order: int,
               timeout: float | None = None):  # fmt: skip
    """The records of one case on every backend and method."""
    arrays, directions = draw(function, case)
    models: dict = {}

    def model(flush=False, variants=frozenset()):
        """The expectations (model() the plain one, else a fault's model), each computed
        once and only when a result needs it."""
        key = (flush, variants)
        if key not in models:
            models[key] = expect(function, arrays, case.dtype, directions, order, case.seed,
                                 flush=flush, variants=variants)  # fmt: skip
        return models[key]

    def passes(result, q, exps=None) -> bool:
        return judge(result, (exps or model())[q], case.dtype).outcome in (
            "agree", "overflow", "undefined", "kink",
        )  # fmt: skip

    def record(bname, method, quantity, **fields):
        return {"case": case.id, "function": function.name, "dtype": case.dtype,
                "regime": case.regime, "backend": bname, "method": method,
                "quantity": quantity, **fields}  # fmt: skip

    out = []
    for bname, backend in backends.items():
        own = getattr(backend, "function_methods", ())
        if not own:  # named, but without the declared-function adapter: judged nothing
            note = f"{bname} has no function_methods for declared functions (docs/plugins.md)"
            out.append(record(bname, "*", "*", outcome="unsupported", note=note))
            continue
        for method in methods or own:
            if (method == "hvp" and order < 2) or (method == "formula" and not function.formula):
                continue
            if method not in own:
                continue
            got, failure = _run_one(backend, method, function, arrays, case.dtype, directions,
                                    timeout)  # fmt: skip
            if failure:
                out.append(record(bname, method, "*", outcome=failure[0], note=failure[1]))
                continue
            wanted = method_quantities(method, function)
            for q in wanted:
                if q not in got:
                    if method != "formula":
                        out.append(record(bname, method, q, outcome="error",
                                          note=f"{method} returned no {q}"))  # fmt: skip
                    continue
                exps = model()
                if q not in exps:
                    missing = Verdict("error", note=f"no reference for {q}")
                    out.append(record(bname, method, q, **missing.as_dict()))
                    continue
                v = judge(got[q], exps[q], case.dtype)
                if v.outcome == "disagree":
                    fault = explain(bname, method, got[q], case.dtype,
                                    lambda r, e, q=q: passes(r, q, e), model,
                                    exps[q].used)  # fmt: skip
                    if fault:
                        v.outcome, v.note = "known", fault
                out.append(record(bname, method, q, **v.as_dict()))
            for q in set(got) - set(wanted):
                out.append(record(bname, method, q, outcome="error",
                                  note=f"{method} returned {q!r}; expected {wanted}"))  # fmt: skip
    return out


def check(
    target,
    *,
    backends="all",
    dtypes=None,
    regimes=None,
    cases: int = 12,
    seed: int = 0,
    order: int | None = None,
    methods=None,
    case_id: str | None = None,
    out: str | Path | None = None,
    progress=None,
    timeout: float | None = None,
) -> CheckResult:
    """Check one or more declared functions on every backend; see docs/functions.md."""
    functions = (
        load_target(target)
        if isinstance(target, str)
        else (list(target) if isinstance(target, (list, tuple)) else [target])
    )
    for f in functions:
        if not isinstance(f, Function):
            raise UsageError(
                f"{f!r} is not a declared function: decorate it with @gradxval.function"
            )
    loaded = load_backends(backends)
    for m in methods or ():
        if m not in METHODS:
            raise expected("method", m, METHODS)
    check_regimes(regimes)
    result = CheckResult()
    start = time.perf_counter()
    # records are appended as each case is judged, so a crash or an interrupt keeps them
    sink = None
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        sink = open(Path(out) / "results.jsonl", "w")  # noqa: SIM115
    try:
        for f in functions:
            if case_id:
                plan = [parse_case_id(case_id)]
                if plan[0].function != f.name:
                    continue
            else:
                plan = sample(f, cases, seed, dtypes, regimes)
            for c in plan:
                recs = check_case(f, c, loaded, methods, order or f.order, timeout)
                result.records.extend(recs)
                result.counts.update(r["outcome"] for r in recs)
                if sink:
                    sink.writelines(json.dumps(r, default=_plain) + "\n" for r in recs)
                    sink.flush()
                if progress:
                    progress(c, recs)
    finally:
        if sink:
            sink.close()
    result.seconds = time.perf_counter() - start
    if out is not None:
        _write(Path(out), result, target)
    return result


def _write(out: Path, result: CheckResult, target) -> None:
    summary = result.summary()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_plain) + "\n")
    lines = [f"# gradxval check {target if isinstance(target, str) else ''}".rstrip(), "",
             f"{'OK' if result.ok else 'FAILED'}: " + ", ".join(
                 f"{o} {n}" for o, n in summary["counts"].items()), ""]  # fmt: skip
    lines += ["| backend/method/dtype | " + " | ".join(OUTCOMES) + " |",
              "|---|" + "---|" * len(OUTCOMES)]  # fmt: skip
    for k, v in summary["cells"].items():
        lines.append(f"| {k} | " + " | ".join(str(v.get(o, "")) for o in OUTCOMES) + " |")
    if summary["worst"]:
        lines += ["", "## Disagreements (worst first)", ""]
        for r in summary["worst"]:
            lines.append(f"- {describe(r)}")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def describe(r: dict) -> str:
    """One line per failing record: who, what, where, by how much, and how to reproduce."""
    where = f" at {tuple(r.get('index', ()))}" if r.get("index") else ""
    size = ""
    if r.get("ulps") is not None and r["outcome"] == "disagree" and "actual" in r:
        size = (
            f": actual {r['actual']:.6g} vs reference {r['expected']:.6g}{where}, "
            f"{r['ulps']:.3g} ulp, rel {r['rel']:.2e}, {r.get('bad', 1)} element(s)"
        )
    elif r.get("note"):
        size = f": {r['note']}"
    return (
        f"{r['backend']}/{r['method']} {r['quantity']} {r['outcome']} on {r['case']}{size}"
        f"  [repro: gradxval check TARGET --case {r['case']} --backends {r['backend']}]"
    )


def _plain(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)
