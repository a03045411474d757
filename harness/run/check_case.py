"""One case of a declared function on every backend and method, judged against one expectation.

The expectation (binary128 reference and derived tolerance) is computed once per case, when a
result first needs it, and every backend's every method is judged against it.  Each backend
call runs in a thread with a timeout; a backend past it is not called again in the run.
"""

from __future__ import annotations

import threading

from gradxval.errors import GradxvalError, Unsupported, UsageError
from gradxval.judge.expectation import expect
from gradxval.judge.known_functions import explain
from gradxval.judge.verdict import Verdict, judge, judge_parts
from gradxval.model.functions import Function
from gradxval.model.sampling import FunctionCase, draw

__all__ = ["METHODS", "TIMEOUT", "method_quantities", "load_backends", "check_case"]


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
            try:
                models[key] = expect(function, arrays, case.dtype, directions, order,
                                     case.seed, flush=flush, variants=variants)  # fmt: skip
            except (AttributeError, TypeError, ValueError, IndexError, NotImplementedError) as exc:
                # the body uses what the engine's xp and nn lack (docs/functions.md lists
                # what they have), or returns what is not a real scalar: the user's to fix
                raise UsageError(
                    f"function {function.name}: the reference engine cannot evaluate it "
                    f"({case.id}): {type(exc).__name__}: {exc}"
                ) from None
        return models[key]

    def passes(result, q, exps=None) -> bool:
        """Whether a fault's model reproduces ``result``: element by element (an overflow,
        kink or NaN somewhere in the model's runs does not excuse the whole result)."""
        if exps is None:
            exps = model()
        return judge(result, exps[q], case.dtype, strict=True).outcome in ("agree", "overflow")

    def passes_parts(result, q, exps=None) -> bool:
        """passes() for a complex quantity: both parts, element by element."""
        exps = model() if exps is None else exps
        return judge_parts(result, exps, q, case.dtype, strict=True).outcome in (
            "agree", "overflow",
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
            if not isinstance(got, dict):
                note = f"{method} returned {type(got).__name__}; expected a dict of quantities"
                out.append(record(bname, method, "*", outcome="error", note=note))
                continue
            wanted = method_quantities(method, function)
            for q in wanted:
                if q not in got:
                    if method != "formula":
                        out.append(record(bname, method, q, outcome="error",
                                          note=f"{method} returned no {q}"))  # fmt: skip
                    continue
                exps = model()
                if f"{q}.re" in exps:  # a complex quantity: judged by its parts
                    v = judge_parts(got[q], exps, q, case.dtype)
                    if v.outcome == "disagree":
                        fault = explain(bname, method, got[q], case.dtype,
                                        lambda r, e, q=q: passes_parts(r, q, e), model,
                                        exps[f"{q}.re"].used)  # fmt: skip
                        if fault:
                            v.outcome, v.note = "known", fault
                    out.append(record(bname, method, q, **v.as_dict()))
                    continue
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
