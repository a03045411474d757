"""One case of a declared function on every backend and method, judged against one expectation.

The expectation (binary128 reference and derived tolerance) is computed once per case, when a
result first needs it, and every backend's every method is judged against it.  Each backend
call runs in a thread with a timeout; a backend past it is not called again in the run.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import replace

import numpy as np
from gradxval.errors import GradxvalError, Unsupported, UsageError
from gradxval.judge import verdict
from gradxval.judge.expectation import expect
from gradxval.judge.known_functions import explain, explain_error
from gradxval.judge.verdict import OUTCOMES, Verdict, judge, judge_parts
from gradxval.model.functions import Function
from gradxval.model.sampling import FunctionCase, draw

__all__ = ["METHODS", "TIMEOUT", "method_quantities", "load_backends", "check_case"]


# every method a backend may offer for declared functions (Backend.function_methods)
METHODS = ("autodiff", "jit", "forward", "vjp", "hvp", "value", "formula", "vmap")


def method_quantities(method: str, function: Function) -> tuple[str, ...]:
    """The quantities a method computes."""
    if method in ("autodiff", "jit", "vmap"):
        return function.quantities(1)
    if method == "value":
        return ("loss",)
    if method == "forward":
        return ("jvp",)
    if method == "vjp":
        return tuple(f"vjp_{k}" for k in function.wrt)
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


def _run_one(backend, method, function, arrays, dtype, extra, timeout=None):
    hung = getattr(backend, "_gradxval_hung", None)
    if hung:
        return None, ("error", f"not run: this backend {hung}")
    box: dict = {}

    def call():
        try:
            with warnings.catch_warnings():
                # the cases are empty, extreme and non-finite on purpose: a backend's numeric
                # warnings (numpy's "Mean of empty slice" at a batch of 0) are expected, and
                # in this process they reached the terminal (`gradxval run` logs a worker's)
                warnings.simplefilter("ignore", RuntimeWarning)
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
        return None, ("error", f"{type(exc).__name__}: {exc}", exc)
    raise exc  # KeyboardInterrupt, SystemExit


class _Expected:
    """One input set's expectations: the plain one and a registered fault's model, each
    computed once and only when a result needs it, and the judging of a result against them."""

    def __init__(self, function, case_id, arrays, directions, dtype, order, seed, jvp,
                 cotangent=None):  # fmt: skip
        self.function, self.case_id, self.dtype = function, case_id, dtype
        self.arrays, self.directions = arrays, directions
        self.order, self.seed, self.jvp = order, seed, jvp
        # a VJP's expectations: reverse mode seeded with this cotangent, quantities vjp_NAME
        self.cotangent = cotangent
        self.models: dict = {}
        self.keeps: bool | None = None  # body_keeps_dtype, once asked

    def model(self, flush=False, variants=frozenset()):
        key = (flush, variants)
        if key not in self.models:
            try:
                exps = expect(self.function, self.arrays, self.dtype, self.directions,
                              self.order if self.cotangent is None else 1, self.seed,
                              tangents=self.jvp, flush=flush, variants=variants,
                              cotangent=self.cotangent)  # fmt: skip
                if self.cotangent is not None:  # grad_NAME[.re|.im] seeded with c: vjp_NAME
                    exps = {"vjp" + q[4:]: e for q, e in exps.items() if q.startswith("grad_")}
                self.models[key] = exps
            except (AttributeError, TypeError, ValueError, IndexError, NotImplementedError,
                    ArithmeticError) as exc:  # fmt: skip
                # the body uses what the engine's xp and nn lack (docs/functions.md lists
                # what they have), or returns what is not a real scalar: the user's to fix
                raise UsageError(
                    f"function {self.function.name}: the reference engine cannot evaluate it "
                    f"({self.case_id}): {type(exc).__name__}: {exc}"
                ) from None
        return self.models[key]

    def body_keeps_dtype(self) -> bool:
        """numpy, whose Python scalars are weak (NEP 50), evaluates the body in the case's dtype
        and its value stays there: a wider result is then a library's promotion, not the
        function's own (a float64 array it closes over), which no registered fault explains."""
        if self.keeps is None:
            from gradxval.backends import load
            from gradxval.dtypes import info

            try:
                out = load("numpy").run_function("value", self.function, self.arrays, self.dtype)
                keeps = np.asarray(out["loss"]).dtype == info(self.dtype).np_real
            except Exception:  # noqa: BLE001 -- no answer here: nothing is explained by it
                keeps = False
            self.keeps = keeps
        return self.keeps

    def used(self) -> frozenset:
        """The nn operations the function called, or none where the reference cannot run."""
        try:
            exps = self.model()
        except UsageError:
            return frozenset()
        return next(iter(exps.values())).used if exps else frozenset()

    def verdict(self, bname: str, method: str, result, q: str) -> Verdict:
        """``result`` for quantity ``q`` judged; a disagreement a registered fault's model
        reproduces element by element (an overflow, kink or NaN somewhere in the model's runs
        excuses nothing as a whole) is ``known``."""
        exps = self.model()
        parts = f"{q}.re" in exps  # a complex quantity: judged by its parts
        if not parts and q not in exps:
            return Verdict("error", note=f"no reference for {q}")

        def judged(r, e, strict=False) -> Verdict:
            if parts:
                return judge_parts(r, e, q, self.dtype, strict=strict)
            return judge(r, e[q], self.dtype, strict=strict)

        def passes(r, e, specific=True) -> bool:
            """``r`` within the plain expectation, element by element, or (``e``: a fault's
            model) each element it is not explained by the model's specific prediction"""
            if e is None:
                return judged(r, exps, True).outcome in ("agree", "overflow")
            if parts:
                return verdict.reproduces_parts(r, exps, e, q, self.dtype, specific)
            return verdict.reproduces(r, exps[q], e[q], self.dtype, specific)

        v = judged(result, exps)
        used = exps[f"{q}.re" if parts else q].used
        # a VJP runs the reverse-mode kernels: the faults registered for autodiff apply
        method = "autodiff" if method == "vjp" else method
        if v.outcome == "disagree":
            fault = explain(bname, method, result, self.dtype, passes, self.model, used,
                            quantity=q, keeps_dtype=self.body_keeps_dtype)  # fmt: skip
            if fault:
                v.outcome, v.note = "known", fault
            else:
                # a registered fault whose model scatters too widely here to predict the result
                # (a cancellation residue of any size): named as a hint, the outcome stays
                hint = explain(bname, method, result, self.dtype, passes, self.model, used,
                               specific=False, quantity=q,
                               keeps_dtype=self.body_keeps_dtype)  # fmt: skip
                if hint:
                    hint = (f"consistent with registered fault {hint}, whose model scatters "
                            "here and does not predict this value")  # fmt: skip
                    v.note = f"{v.note}; {hint}" if v.note else hint
        return v


def cotangent(case: FunctionCase) -> float:
    """The VJP's output cotangent for a case: a random scalar of either sign over eight
    binades, in the case's dtype, from the case's own seed (it reproduces alone)."""
    from gradxval.dtypes import info

    rng = np.random.default_rng(np.random.SeedSequence([case.seed, 11]))
    sign, e = rng.choice([-1.0, 1.0]), int(rng.integers(-4, 4))
    c = float(np.asarray(sign * rng.uniform(1.0, 2.0) * 2.0**e).astype(info(case.dtype).np_real))
    if abs(c) in (1.0, 16.0) or abs(c) == 2.0 ** (e + 1):  # rounded onto a power of two
        c = sign * 1.5 * 2.0**e  # exact in every dtype: the cotangent still scales
    return c


def _sibling(case: FunctionCase) -> FunctionCase:
    """The vmap batch's second member: another draw of the same sizes, regime and dtype."""
    return replace(case, seed=(case.seed + 1) % 10**6)


def check_case(function: Function, case: FunctionCase, backends: dict, methods, order: int,
               timeout: float | None = None):  # fmt: skip
    """The records of one case on every backend and method."""
    arrays, directions = draw(function, case)
    # the JVP's honest runs propagate tangents (a second pass): only where one is judged
    jvp = any(
        "forward" in own and "forward" in (methods or own)
        for own in (getattr(b, "function_methods", ()) for b in backends.values())
    )
    this = _Expected(function, case.id, arrays, directions, case.dtype, order, case.seed, jvp)
    other = None  # the vmap batch's second member, drawn when a vmap result needs it
    along = None  # the VJP's expectations, computed when a vjp result needs them

    def record(bname, method, quantity, **fields):
        return {"case": case.id, "function": function.name, "dtype": case.dtype,
                "regime": case.regime, "backend": bname, "method": method,
                "quantity": quantity, **fields}  # fmt: skip

    # an empty input (a size 0) where the body cannot run (the max of no elements, 1 / sqrt(0)
    # in the body's own Python): the function has no value there, whatever a backend does
    undefined = None
    if any(np.asarray(a).size == 0 for a in arrays.values()):
        try:
            this.model()
        except UsageError as exc:
            # unless the body fails with every size 0 made 1 too: then it is broken (an
            # operation the engine lacks, a non-scalar return), the user's to fix
            filled = replace(case, sizes=tuple((k, v or 1) for k, v in case.sizes))
            filled_arrays, filled_dirs = draw(function, filled)
            _Expected(function, filled.id, filled_arrays, filled_dirs, case.dtype, order,
                      filled.seed, False).model()  # fmt: skip
            undefined = str(exc).split(f"({case.id}): ", 1)[-1]

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
            extra = directions if method in ("forward", "hvp") else None
            if method == "vjp":
                if along is None:
                    along = _Expected(function, case.id, arrays, directions, case.dtype, 1,
                                      case.seed, False, cotangent(case))  # fmt: skip
                extra = {"cotangent": along.cotangent}
            if method == "vmap":
                if other is None:
                    sib = _sibling(case)
                    sib_arrays, sib_dirs = draw(function, sib)
                    other = _Expected(function, sib.id, sib_arrays, sib_dirs, case.dtype, order,
                                      sib.seed, False)  # fmt: skip
                extra = other.arrays
            got, failure = _run_one(backend, method, function, arrays, case.dtype, extra,
                                    timeout)  # fmt: skip
            if undefined and (not failure or failure[0] == "error"):
                note = f"no value at this empty input (the reference: {undefined})"
                if failure:
                    note += f"; {bname} raised {failure[1]}"
                out.append(record(bname, method, "*", outcome="undefined", note=note))
                continue
            if failure and len(failure) > 2:
                # a registered library fault that raises where the function has a value
                fault = explain_error(bname, "autodiff" if method == "vjp" else method,
                                      failure[2], this.used())  # fmt: skip
                failure = ("known", fault) if fault else failure[:2]
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
                if method == "vjp":
                    v = _vjp_verdict(bname, got[q], q, along, this)
                    out.append(record(bname, method, q, **v.as_dict()))
                    continue
                if method != "vmap":
                    out.append(record(bname, method, q, **this.verdict(bname, method, got[q], q)
                                      .as_dict()))  # fmt: skip
                    continue
                v, member = _batched(bname, got[q], q, (this, other))
                # the batch member the verdict is about, where it is the sibling draw
                extra_fields = {"member": member} if member else {}
                out.append(record(bname, method, q, **v.as_dict(), **extra_fields))
            for q in set(got) - set(wanted):
                out.append(record(bname, method, q, outcome="error",
                                  note=f"{method} returned {q!r}; expected {wanted}"))  # fmt: skip
    return out


def _vjp_verdict(bname: str, result, q: str, along: _Expected, this: _Expected) -> Verdict:
    """A VJP judged against the engine seeded with its cotangent c; or, where that fails, as
    c times a gradient: computing the gradient and then scaling it is as honest an order, and
    its rounding differs where the gradient is subnormal before the product (torch's norm
    VJP in float16: x / |x| rounds to a subnormal, then times c = 7.6, 2 % off the seeded
    order at one element).  A VJP that drops c or takes it as 1 passes neither."""
    v = along.verdict(bname, "vjp", result, q)
    if v.outcome != "disagree":
        return v
    r = np.asarray(result)
    if r.dtype.kind not in "fc" or not along.cotangent:
        return v
    with np.errstate(all="ignore"):
        wide = r.astype(np.complex128 if r.dtype.kind == "c" else np.float64)
        back = (wide / along.cotangent).astype(r.dtype)
    alt = this.verdict(bname, "vjp", back, "grad" + q[3:])
    if alt.outcome in ("agree", "overflow"):
        alt.note = f"as {along.cotangent:g} times the gradient" + (f"; {alt.note}" if alt.note
                                                                   else "")  # fmt: skip
        return alt
    return v


def _batched(bname: str, result, q: str, members) -> tuple[Verdict, str | None]:
    """A vmap result: one slice per batch member, each judged against its own expectation;
    the worst member's verdict, and that member's case id where it is not the first."""
    result = np.asarray(result)
    if result.shape[:1] != (len(members),):
        note = f"shape {result.shape}: no batch axis of {len(members)} members"
        return Verdict("disagree", note=note), None
    verdicts = [(m.verdict(bname, "vmap", result[i], q), i) for i, m in enumerate(members)]
    v, i = max(verdicts, key=lambda p: (OUTCOMES.index(p[0].outcome), p[0].ratio))
    return v, (members[i].case_id if i and v.outcome != "agree" else None)
