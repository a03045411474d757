"""Runs cases through backends, streams verdicts, and isolates faults.

With ``isolate=True`` (the default for ``gradxval run``) each backend lives in its own worker
process: a backend that hangs past the timeout is killed and recorded as ``error``, one that
crashes the interpreter is restarted, and process-wide framework switches (jax x64, torch
precision) cannot leak between backends.  Workers run concurrently with the reference.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .cases import Case, Inputs
from .compare import Verdict, attribute, judge
from .errors import BackendUnavailable, Unsupported
from .known import Registry, load_registry
from .problems import QUANTITIES
from .reference import compute_reference

__all__ = ["evaluate_backend", "run_cases", "RunStats", "reproduce_command"]

DEFAULT_TIMEOUT = 120.0


def reproduce_command(case_id: str, backend: str | None = None) -> str:
    """The one-line shell command that replays a case."""
    tail = f" --backends {backend}" if backend else ""
    return f"gradxval replay {case_id}{tail}"


def _digest(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def evaluate_backend(backend, case: Case, inputs: Inputs) -> dict[str, dict]:
    """Evaluate every method of one backend on one case; never raises.

    Returns method -> {"ok": {quantity: array}} | {"unsupported": reason} | {"error": message}.
    The backend gets its own copies, so a backend that writes into its inputs cannot affect
    the others; doing so is itself recorded as an error.
    """
    out: dict[str, dict] = {}
    for method in backend.methods:
        A, x = case.present(inputs.A), inputs.x.copy()
        before = (_digest(A), _digest(x))
        t0 = time.perf_counter()
        try:
            res = backend.evaluate(method, A, x, case.dtype)
            missing = [q for q in QUANTITIES if q not in res]
            if missing:
                raise TypeError(f"result lacks {', '.join(missing)}")
            for q in QUANTITIES:
                if not isinstance(res[q], np.ndarray) and not np.isscalar(res[q]):
                    raise TypeError(f"{q} is a {type(res[q]).__module__}.{type(res[q]).__name__},"
                                    " expected a numpy array")
            if (_digest(A), _digest(x)) != before:
                raise RuntimeError("modified its input arrays in place")
            out[method] = {"ok": {q: np.asarray(res[q]) for q in QUANTITIES},
                           "seconds": time.perf_counter() - t0}
        except Unsupported as exc:
            out[method] = {"unsupported": str(exc)}
        except Exception as exc:  # any backend fault becomes a recorded verdict
            tb = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" at {tb[0].filename}:{tb[0].lineno}" if tb else ""
            out[method] = {"error": f"{type(exc).__name__}: {exc}{where}"}
    return out


def _worker_main(conn, name: str, path: list[str]) -> None:
    sys.path[:] = path
    from gradxval.backends import describe, load

    info = describe(name)
    conn.send(info)
    if not info.available:
        return
    backend = load(name)
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                return
            case_id, A, x = msg
            case = Case.from_id(case_id)
            conn.send(evaluate_backend(backend, case, Inputs(A=A, x=x)))
    except (EOFError, BrokenPipeError):
        return  # the parent is gone: nobody is left to report to


class _Worker:
    """One backend in a child process, restarted after a timeout or crash."""

    def __init__(self, name: str, timeout: float):
        self.name, self.timeout = name, timeout
        self.proc = None
        self.conn = None
        self.info = None

    def start(self) -> None:
        self.launch()
        self.ready()

    def launch(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, self.name, list(sys.path)),
                                daemon=True)
        self.proc.start()
        self.conn = parent

    def ready(self) -> None:
        """Wait for the worker's BackendInfo; raise BackendUnavailable if it has none."""
        parent = self.conn
        if not parent.poll(self.timeout):
            self.stop()
            raise BackendUnavailable(f"backend {self.name!r} did not start in {self.timeout:g}s")
        self.info = parent.recv()
        if not self.info.available:
            self.stop()
            raise BackendUnavailable(self.info.reason)

    def submit(self, case: Case, inputs: Inputs) -> None:
        if self.proc is None or not self.proc.is_alive():
            self.start()
        self.conn.send((case.id, inputs.A, inputs.x))

    def collect(self, methods) -> dict[str, dict]:
        try:
            if self.conn.poll(self.timeout):
                return self.conn.recv()
            why = f"timed out after {self.timeout:g}s; worker killed"
        except (EOFError, OSError) as exc:
            why = f"worker process died ({type(exc).__name__}, exit code {self.proc.exitcode})"
        self.stop()
        return {m: {"error": why} for m in methods}

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.is_alive():
                try:
                    self.conn.send(None)
                except OSError:
                    pass
                self.proc.join(0.5)
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(2)
        self.proc = None


@dataclass
class RunStats:
    cases: int = 0
    seconds: float = 0.0
    backends: list = field(default_factory=list)  # BackendInfo of each backend that ran
    skipped: dict = field(default_factory=dict)  # name -> why it could not run


def run_cases(
    cases: Iterable[Case],
    backend_names: Iterable[str],
    on_verdict: Callable[[Verdict], None],
    *,
    isolate: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    known: Registry | None = None,
    on_case: Callable[[Case], None] | None = None,
    skip_unavailable: bool = False,
) -> RunStats:
    """Run every case through every backend; call ``on_verdict`` for each verdict as it is made.

    A backend that cannot load raises BackendUnavailable, or with ``skip_unavailable`` is left
    out and listed in ``RunStats.skipped``.
    """
    from .backends import describe, load

    known = known or load_registry()
    stats = RunStats()
    t0 = time.perf_counter()
    methods, workers, inline = {}, {}, {}
    launched = {}
    if isolate:  # start every worker first: their framework imports overlap
        for name in backend_names:
            launched[name] = _Worker(name, timeout)
            launched[name].launch()
    try:
        for name in backend_names:
            try:
                if isolate:
                    w = launched[name]
                    w.ready()
                    workers[name], info = w, w.info
                else:
                    inline[name], info = load(name), describe(name)
            except BackendUnavailable as exc:
                if not skip_unavailable:
                    raise
                stats.skipped[name] = str(exc)
                continue
            methods[name] = info.methods
            stats.backends.append(info)
        names = list(methods)
        for case in cases:
            _run_one(case, names, methods, workers, inline, known, on_verdict)
            stats.cases += 1
            if on_case:
                on_case(case)
    finally:
        for w in launched.values():
            w.stop()
    stats.seconds = time.perf_counter() - t0
    return stats


def _run_one(case, names, methods, workers, inline, known, on_verdict) -> None:
    inputs = case.inputs()
    for name in workers:
        workers[name].submit(case, inputs)
    ref_error = None
    try:
        ref = compute_reference(case, inputs)
    except Exception as exc:  # keep going: the backends' verdicts say what went wrong
        ref, ref_error = None, f"reference failed: {type(exc).__name__}: {exc}"
    outcomes = {}
    for name in names:
        if name in workers:
            outcomes[name] = workers[name].collect(methods[name])
        else:
            outcomes[name] = evaluate_backend(inline[name], case, inputs)
    for q in QUANTITIES:
        verdicts, results = [], {}
        for name in names:
            for method, oc in outcomes[name].items():
                v = _verdict(case, name, method, q, oc, ref, ref_error, known)
                if "ok" in oc:
                    results[(name, method)] = oc["ok"][q]
                verdicts.append(v)
        if ref is not None:
            attribute(case, q, verdicts, results, ref)
        for v in verdicts:
            on_verdict(v)


def _verdict(case, name, method, q, oc, ref, ref_error, known) -> Verdict:
    base = dict(case_id=case.id, backend=name, method=method, quantity=q, dtype=case.dtype,
                regime=case.regime)
    if "unsupported" in oc:
        v = Verdict(**base, verdict="unsupported", message=oc["unsupported"])
    elif "error" in oc:
        v = Verdict(**base, verdict="error", message=oc["error"])
    elif ref is None:
        v = Verdict(**base, verdict="error", message=ref_error)
    else:
        v = judge(case, name, method, q, oc["ok"][q], ref, known)
    v.reproduce = reproduce_command(case.id, name)
    if "seconds" in oc:
        v.extra["seconds"] = round(oc["seconds"], 6)
    return v
