"""Runs cases through backends, streams verdicts, and isolates faults.

With ``isolate=True`` (the default for ``gradxval run``) each backend lives in its own worker
process: a backend that hangs past the timeout is killed and recorded as ``error``, one that
crashes the interpreter is restarted, and process-wide framework switches (jax x64, torch
precision) cannot leak between backends.  Workers run concurrently with the reference.
"""

from __future__ import annotations

import functools
import os
import queue
import signal
import sys
import threading
import time
import traceback
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from gradxval.backends import JAX_CACHE_ENV
from gradxval.errors import BackendUnavailable, Unsupported
from gradxval.judge.compare import Verdict, attribute, judge
from gradxval.judge.known import Registry, load_registry
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import Case, Inputs
from gradxval.model.problems import (
    QUANTITIES,
    SECOND_ORDER,
    load_problem,
    parse_order,
)
from gradxval.run.tuning import keep_freed_memory, server_env, worker_context, worker_env

__all__ = [
    "evaluate_backend",
    "run_cases",
    "RunStats",
    "Limits",
    "reproduce_command",
    "stop_workers",
    "default_max_memory",
]

DEFAULT_TIMEOUT = 120.0
DEFAULT_STARTUP_TIMEOUT = 300.0  # importing a framework on a loaded machine can take minutes
_IN_FLIGHT = 4  # cases submitted ahead of the one being judged
_LABELS: dict[str, str] = {}  # backend spec -> the name its class declares, where they differ


def reproduce_command(case_id: str, backend: str | None = None, quantity: str = "") -> str:
    """The one-line shell command that replays a case, from any directory: a backend given as
    module:Class that is not installed gets the PYTHONPATH it was imported from; a second-order
    quantity replays with --order 2."""
    tail = f" --backends {backend}" if backend else ""
    if quantity in SECOND_ORDER:
        tail += " --order 2"
    prefix = ""
    if backend and ":" in backend:
        where = _import_root(backend.partition(":")[0])
        if where:
            prefix = f"PYTHONPATH={where} "
    return f"{prefix}gradxval replay {case_id}{tail}"


@functools.cache
def _import_root(module: str) -> str | None:
    """The sys.path entry a module was found on, unless it is an installed location."""
    import importlib.util
    import site

    try:
        spec = importlib.util.find_spec(module.partition(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    origin = os.path.abspath(spec.origin)
    installed = [*site.getsitepackages(), site.getusersitepackages()]
    if any(origin.startswith(os.path.abspath(p) + os.sep) for p in installed):
        return None
    root = os.path.dirname(origin)
    if spec.submodule_search_locations:  # a package: its parent is on the path
        root = os.path.dirname(root)
    return root


_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64, 16: np.dtype((np.uint64, 2))}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays hold the same dtype, shape and bits (NaN payloads and -0.0 included).

    Compared in place through an unsigned-integer view, any layout: issue 12 measured hashing
    copies through tobytes at 10-25 % of a large case, and a blake2b digest still at 6 ms per
    8 MB; this is one pass.
    """
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    u = _BITS.get(a.dtype.itemsize)
    if u is None:
        return a.tobytes() == b.tobytes()
    return bool(np.array_equal(a.view(u), b.view(u)))


# The determinism check calls a method twice.  "sampled" (the default) repeats every call on a
# small case (m n k <= 4096, where a second call costs little) and one large case in ten by
# seed: the same cases in every run, local, sharded or on Dask; "all" repeats every call.  The
# CLI sets it with --check-determinism; worker processes inherit it.
DETERMINISM_ENV = "GRADXVAL_CHECK_DETERMINISM"
WORKER_ENV = (DETERMINISM_ENV, JAX_CACHE_ENV)  # what worker processes must see of the client's
_SMALL = 4096


def determinism_mode() -> str:
    return os.environ.get(DETERMINISM_ENV, "sampled")


def _should_repeat(case: Case) -> bool:
    if determinism_mode() == "all":
        return True
    return case.m * case.n * (case.k or 1) <= _SMALL or case.seed % 10 == 0


CORE_METHODS = ("autodiff", "closed_form")


def parse_methods(spec: str) -> str | tuple[str, ...]:
    """Parse a --methods value: 'core', 'all' or a comma list of names."""
    from gradxval.errors import UsageError

    if spec in ("core", "all"):
        return spec
    names = tuple(m.strip() for m in spec.split(",") if m.strip())
    if not names:
        raise UsageError("methods='', expected core, all or a comma list")
    return names


# every method a built-in backend has; plug-ins may add their own names
KNOWN_METHODS = ("autodiff", "closed_form", "forward", "vmap", "eager")
# the second-order methods (hvp_x): closed form, the autodiff routes, and the plug-in hook
HVP_METHODS = ("closed_form", "fwd_over_rev", "rev_over_rev", "hvp")


def select_methods(available, spec: str | Iterable[str] = "core") -> tuple[str, ...]:
    """The methods to run: 'core' (autodiff and closed_form, those the backend has), 'all' (every
    method it has), or names.  Names are kept whether or not the backend has them: a method
    asked for by name that a backend lacks is recorded as unsupported, never replaced."""
    if spec == "all":
        return tuple(available)
    if spec == "core":
        return tuple(m for m in available if m in CORE_METHODS)
    return tuple(spec)


def select_jobs(info, spec, quantities) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(first-order methods, second-order methods) to run for the quantities judged.

    'core' and 'all' take every second-order method the backend has: its routes are the point
    of a second-order run.  Names go to the order they belong to; with --order 2 alone, every
    name is a second-order method, so a first-order name is recorded as unsupported there.
    """
    first_q = any(q in QUANTITIES for q in quantities)
    second_q = any(q in SECOND_ORDER for q in quantities)
    hvp = tuple(getattr(info, "hvp_methods", ()) or ())
    if isinstance(spec, str):
        first = select_methods(info.methods, spec) if first_q else ()
        if "autodiff" in info.methods and not set(hvp) - {"closed_form"}:
            # a backend with autodiff but no second-order route shows that, unsupported with
            # the reason, instead of leaving its autodiff out of a second-order run unseen
            hvp = (*hvp, "hvp")
        return first, hvp if second_q else ()
    names = tuple(spec)
    if not first_q:
        return (), names
    second = tuple(m for m in names if m in HVP_METHODS or m in hvp) if second_q else ()
    first = tuple(m for m in names if m not in second or m in info.methods)
    return first, second


def evaluate_jobs(backend, case: Case, inputs: Inputs, jobs) -> tuple[dict, dict]:
    """evaluate_backend for (first-order methods, second-order methods)."""
    first, second = jobs
    return (
        evaluate_backend(backend, case, inputs, first) if first else {},
        evaluate_backend(backend, case, inputs, second, order=2) if second else {},
    )


def evaluate_backend(
    backend, case: Case, inputs: Inputs, methods=None, order: int = 1
) -> dict[str, dict]:
    """Evaluate the given methods (default: the core ones) of a backend on a case; never raises.

    Returns method -> {"ok": {quantity: array or None}} | {"unsupported": reason} |
    {"error": message}.  ``order=2`` computes hvp_x by the second-order methods.  The calls get
    read-only copies of the inputs, checked bit for bit after each call: a backend that writes
    into them, or whose second call does not return the same bits, is recorded as an error.
    """
    out: dict[str, dict] = {}
    call = _call if order == 1 else _call_hvp
    held: dict = {}  # the copies, shared by this backend's calls while they stay unwritten
    for method in select_methods(backend.methods) if methods is None else methods:
        t0 = time.perf_counter()
        try:
            res = call(backend, method, case, inputs, held)
            seconds = time.perf_counter() - t0
            repeated = _should_repeat(case)
            if repeated:
                _check_repeat(res, call(backend, method, case, inputs, held))
            out[method] = {"ok": res, "seconds": seconds, "repeated": repeated}
        except Unsupported as exc:
            out[method] = {"unsupported": str(exc)}
        except Exception as exc:  # any backend fault becomes a recorded verdict
            held.clear()  # a call that failed may have written before it raised: fresh copies
            tb = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" at {tb[0].filename}:{tb[0].lineno}" if tb else ""
            out[method] = {"error": f"{type(exc).__name__}: {exc}{where}"}
    return out


def _held(case: Case, inputs: Inputs, held: dict | None, names=("A", "x")) -> list:
    """Read-only copies of the named inputs: an in-place write raises at the backend's own
    line, and comparing with the case's own inputs after each call still catches writes through
    other views (a tensor sharing memory).  A copy found unchanged serves the next call (a fresh
    copy of A per call is a pass over A for each); one found written is dropped with the rest."""
    held = {} if held is None else held
    for name in names:
        if name not in held:
            a = case.present(inputs.A) if name == "A" else getattr(inputs, name).copy()
            a.flags.writeable = False
            held[name] = a
    return [held[name] for name in names]


def _unchanged(inputs: Inputs, held: dict | None, copies) -> bool:
    if all(same_bits(a, getattr(inputs, name)) for name, a in copies):
        return True
    if held is not None:
        held.clear()
    return False


def _call(backend, method: str, case: Case, inputs: Inputs, held: dict | None = None) -> dict:
    A, x = _held(case, inputs, held)
    if method not in backend.methods:
        raise Unsupported(
            f"{backend.name or 'this backend'} has no method {method!r}; it has "
            f"{', '.join(backend.methods)}"
        )
    res = backend.evaluate_problem(load_problem(case.problem), method, A, x, case.dtype)
    missing = [q for q in QUANTITIES if q not in res]
    if missing:
        raise TypeError(f"result lacks {', '.join(missing)}")
    for q in QUANTITIES:
        if res[q] is not None and not isinstance(res[q], np.ndarray) and not np.isscalar(res[q]):
            raise TypeError(
                f"{q} is a {type(res[q]).__module__}.{type(res[q]).__name__},"
                " expected a numpy array"
            )
    if not _unchanged(inputs, held, (("A", A), ("x", x))):
        raise RuntimeError("modified its input arrays in place")
    return {q: None if res[q] is None else np.asarray(res[q]) for q in QUANTITIES}


def _call_hvp(backend, method: str, case: Case, inputs: Inputs, held: dict | None = None) -> dict:
    """hvp_x by one second-order method, on read-only copies checked for writes."""
    A, x, v = _held(case, inputs, held, ("A", "x", "v"))
    hvp_methods = getattr(backend, "hvp_methods", ("closed_form",))
    if method == "hvp" and method not in hvp_methods:
        raise Unsupported(
            f"{backend.name or 'this backend'} has no second-order autodiff: it gives hvp_x by "
            "closed_form only (a backend gains it with hvp_routes or an hvp method)"
        )
    if method not in hvp_methods:
        raise Unsupported(
            f"{backend.name or 'this backend'} has no second-order method {method!r}; it has "
            f"{', '.join(hvp_methods)}"
        )
    out = backend.evaluate_hvp(load_problem(case.problem), method, A, x, v, case.dtype)
    if out is not None and not isinstance(out, np.ndarray) and not np.isscalar(out):
        raise TypeError(
            f"hvp_x is a {type(out).__module__}.{type(out).__name__}, expected a numpy array"
        )
    if not _unchanged(inputs, held, (("A", A), ("x", x), ("v", v))):
        raise RuntimeError("modified its input arrays in place")
    return {"hvp_x": None if out is None else np.asarray(out)}


def _check_repeat(first: dict, second: dict) -> None:
    """The same call twice must give the same bits (a stale cache or race shows up here)."""
    for q in first:
        a, b = first[q], second[q]
        if a is None or b is None:
            if (a is None) != (b is None):
                raise RuntimeError(f"repeating the call returned {q} only once")
            continue
        if not same_bits(a, b):
            where = ""
            if a.shape == b.shape and a.dtype == b.dtype and a.size:
                differs = (a != b).ravel()
                if differs.any():
                    i = np.unravel_index(int(np.argmax(differs)), a.shape)
                    where = f" at index {tuple(int(j) for j in i)}: {a[i]!r} then {b[i]!r}"
            raise RuntimeError(f"not deterministic: repeating the call changed {q}{where}")


def _worker_main(conn, name: str, path: list[str], log: str | None, environ: dict) -> None:
    # forked from a server started earlier: the parent's environment as it is now
    if environ != os.environ:
        os.environ.clear()
        os.environ.update(environ)
    sys.path[:] = path
    _leave_forkserver()
    if log:  # the backend's own prints and warnings go to its log, not the terminal
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    # the parent decides when to stop: a Ctrl-C at the terminal reaches the whole process group
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    keep_freed_memory()  # this process is ours: reuse freed arrays instead of faulting anew
    from gradxval.backends import describe, load

    info = describe(name)
    conn.send(info)
    if not info.available:
        return
    backend = load(name)
    # A reader thread drains the pipe, so the parent can send the next cases while this process
    # is still sending a large result back: one thread blocked on each side cannot deadlock.
    inbox: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            while True:
                msg = conn.recv()
                inbox.put(msg)
                if msg is None:
                    return
        except (EOFError, OSError):
            inbox.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        while True:
            msg = inbox.get()
            if msg is None:
                return
            case_id, A, x, v, jobs = msg
            case = Case.from_id(case_id)
            conn.send((case_id, evaluate_jobs(backend, case, Inputs(A=A, x=x, v=v), jobs)))
    except (EOFError, BrokenPipeError):
        return  # the parent is gone: nobody is left to report to


def _leave_forkserver() -> None:
    """A worker forked by the forkserver holds the write end of the server's "alive" pipe, as
    every client of the server does, and the server exits only once all of them are closed: a
    hung worker would keep it, and so itself (its parent-death signal is the server's), alive
    after the run is killed.  This worker starts no processes from that server; one it needs
    later comes from a fresh server."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:  # pragma: no cover
            pass
        server._forkserver_alive_fd = None


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when its parent dies, even by SIGKILL (a hung backend would
    otherwise outlive the run).  Elsewhere the closed pipe ends idle workers."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover
        pass


@dataclass(frozen=True)
class Limits:
    """What a backend may cost: seconds per case and at start-up, memory, and how many
    consecutive timeouts or crashes before its remaining cases are not run at all."""

    timeout: float = DEFAULT_TIMEOUT
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    max_memory: int | None = None  # bytes of resident memory per worker process
    quarantine_after: int = 2
    log_dir: str | None = None  # each backend's stdout and stderr go to <log_dir>/<name>.log


def default_max_memory() -> int:
    """A quarter of the machine's memory per worker: four workers cannot take it down."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 4 << 30


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def log_name(name: str) -> str:
    """A file name for a backend's log: its spec with path-like characters replaced."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) + ".log"


class _Worker:
    """One backend in a child process, restarted after a timeout or crash."""

    def __init__(self, name: str, limits: Limits):
        self.name, self.limits = name, limits
        self.proc = None
        self.conn = None
        self.info = None
        self.generation = 0  # bumped at each (re)start: replies of an older process are lost
        self.failed_start: str | None = None
        self.replies: dict = {}  # case id -> a reply that came while another was awaited
        self.pending: dict = {}  # case id -> (case, inputs, methods) sent and not answered

    def start(self) -> None:
        self.launch()
        self.ready()

    def launch(self) -> None:
        self.generation += 1
        ctx = worker_context()
        parent, child = ctx.Pipe()
        log = None
        if self.limits.log_dir:
            log = os.path.join(self.limits.log_dir, log_name(self.name))
        with worker_env():  # idle BLAS threads sleep: several workers share the cores
            args = (child, self.name, list(sys.path), log, dict(os.environ))
            self.proc = ctx.Process(target=_worker_main, args=args, daemon=True)
            with server_env(ctx):
                self.proc.start()
        child.close()
        self.conn = parent

    def ready(self) -> None:
        """Wait for the worker's BackendInfo; raise BackendUnavailable if it has none."""
        parent = self.conn
        try:
            started = parent.poll(self.limits.startup_timeout)
            self.info = parent.recv() if started else None
        except (EOFError, OSError):
            code = self.proc.exitcode if self.proc is not None else None
            self.stop()
            raise BackendUnavailable(
                f"backend {self.name!r} died while starting (exit code {code})"
            ) from None
        if not started:
            self.stop()
            raise BackendUnavailable(
                f"backend {self.name!r} did not start in {self.limits.startup_timeout:g}s "
                "(--startup-timeout)"
            )
        if not self.info.available:
            self.stop()
            raise BackendUnavailable(self.info.reason)

    def submit(self, case: Case, inputs: Inputs, methods) -> int:
        """Send a case; return the generation of the process that got it (0: it could not
        start, and ``failed_start`` says why).  A process started here first gets every case
        its predecessor left unanswered, in the order they were sent: it answers, hangs or
        crashes on them in that order, so a failure is the case's that was running."""
        # a case sent again keeps its place
        self.pending.setdefault(case.id, (case, inputs, methods))
        try:
            if self.proc is None or not self.proc.is_alive():
                self.start()
                sends = list(self.pending.values())
            else:
                if self.info is None:
                    self.ready()
                sends = [(case, inputs, methods)]
            for c, i, m in sends:
                self.conn.send((c.id, i.A, i.x, i.v, m))
        except (BackendUnavailable, OSError) as exc:
            self.failed_start = f"worker could not be (re)started: {exc}"
            self.stop()
            return 0
        return self.generation

    def collect(self, methods, case_id: str) -> tuple[dict[str, dict], str | None]:
        """The reply for case ``case_id``, or error results and why ('timeout', 'crash',
        'memory').  Replies are matched by case: after a restart the new process may hold a
        case sent later before the one sent again, and a reply that comes first is kept for
        its own case."""
        if case_id in self.replies:
            return self.replies.pop(case_id), None
        limit = self.limits.max_memory
        deadline = time.monotonic() + self.limits.timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if self.conn.poll(min(0.05, max(left, 0))):
                    got, reply = self.conn.recv()
                    self.pending.pop(got, None)
                    if got == case_id:
                        return reply, None
                    self.replies[got] = reply
                    continue
                if limit and (rss := _rss(self.proc.pid)) > limit:
                    why, kind = (
                        f"worker killed: resident memory {rss / 2**30:.2f} GiB exceeded "
                        f"--max-memory {limit / 2**30:.2f} GiB",
                        "memory",
                    )
                    break
                if left <= 0:
                    why, kind = (
                        f"timed out after {self.limits.timeout:g}s; worker killed",
                        "timeout",
                    )
                    break
        except (EOFError, OSError) as exc:
            code = self.proc.exitcode if self.proc is not None else None
            if code is None and self.proc is not None:
                self.proc.join(1)
                code = self.proc.exitcode
            why, kind = f"worker process died ({type(exc).__name__}, exit code {code})", "crash"
        # a hung or hogging worker is busy and cannot read a stop message: no grace period
        self.pending.pop(case_id, None)  # its result is this error; the others are sent again
        self.stop(grace=0 if kind in ("timeout", "memory") else 0.5)
        return _failed(methods, why), kind

    def signal_stop(self) -> None:
        """Ask the worker to finish (step one of stopping many workers at once)."""
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass

    def stop(self, grace: float = 0.5) -> None:
        if self.proc is not None:
            self.signal_stop()
            self.proc.join(grace)
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(2)
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.proc = None


def stop_workers(workers, grace: float = 0.5) -> None:
    """Stop many workers in parallel: ask all, wait once, then kill those still running."""
    for w in workers:
        w.signal_stop()
    deadline = time.monotonic() + grace
    for w in workers:
        if w.proc is not None:
            w.proc.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        w.stop(grace=0)


@dataclass
class RunStats:
    cases: int = 0
    seconds: float = 0.0
    backends: list = field(default_factory=list)  # BackendInfo of each backend that ran
    skipped: dict = field(default_factory=dict)  # name -> why it could not run
    quarantined: dict = field(default_factory=dict)  # name -> why its cases were not run
    logs: dict = field(default_factory=dict)  # name -> path of a non-empty worker log


def _shard(case: Case, count: int) -> int:
    """Stable worker index for a case: the same (shape, dtype) always goes to the same worker,
    so a compiling backend compiles each program once."""
    key = f"{case.m},{case.n},{case.k},{case.dtype}".encode()
    return zlib.crc32(key) % count


class _Pool:
    """A backend's worker processes: one, or one per core for backends that compile.

    After ``quarantine_after`` consecutive timeouts or crashes, the backend is quarantined: its
    remaining cases get an error verdict without being run, so a hung backend costs a few
    timeouts, not one per case.
    """

    def __init__(self, name: str, limits: Limits):
        self.name, self.limits = name, limits
        self.workers = [_Worker(name, limits)]
        self.info = None
        self.strikes = 0
        self.quarantined: str | None = None

    def launch(self) -> None:
        self.workers[0].launch()

    def ready(self, shards: int) -> None:
        if self.info is not None:  # kept from an earlier call (pool_cache)
            return
        self.workers[0].ready()
        self.info = self.workers[0].info
        if self.info.compiles and shards > 1:
            self.workers += [_Worker(self.name, self.limits) for _ in range(shards - 1)]
            # started on first use: a shard with no work costs nothing

    def submit(self, case: Case, inputs: Inputs, methods) -> _Worker | None:
        """The worker the case went to (None: quarantined); one that could not start gets
        it again at collect()."""
        if self.quarantined:
            return None
        w = self.workers[_shard(case, len(self.workers))]
        w.submit(case, inputs, methods)
        return w

    def collect(self, w, case: Case, inputs: Inputs, methods) -> dict[str, dict]:
        if self.quarantined or w is None:
            return _failed(methods, self.quarantined or "quarantined")
        if case.id not in w.replies and (w.proc is None or not w.proc.is_alive()):
            # the process that had this case was killed for an earlier one: a new one gets
            # every unanswered case again, in order (0: it could not start)
            generation = w.submit(case, inputs, methods)
        else:  # it holds the case: sent to it, sent again with the unanswered ones, or answered
            generation = w.generation
        if generation == 0:
            w.pending.pop(case.id, None)  # its result is this error
            out, kind = _failed(methods, w.failed_start), "crash"
        else:
            out, kind = w.collect(methods, case.id)
        if kind in ("timeout", "crash"):
            self.strikes += 1
            if self.strikes >= self.limits.quarantine_after:
                self.quarantined = (
                    f"quarantined after {self.strikes} consecutive "
                    f"{'timeouts' if kind == 'timeout' else 'failures'} (--quarantine-after): "
                    "not run"
                )
                stop_workers(self.workers)
        else:
            self.strikes = 0
        return out


def _failed(jobs, why: str) -> tuple[dict, dict]:
    """Error outcomes for every method of (first-order, second-order) jobs."""
    return tuple({m: {"error": why} for m in ms} for ms in jobs)


def run_cases(
    cases: Iterable[Case],
    backend_names: Iterable[str],
    on_verdict: Callable[[Verdict], None],
    *,
    isolate: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    known: Registry | None = None,
    on_case: Callable[[Case], None] | None = None,
    skip_unavailable: bool = False,
    shards: int | None = None,
    method_spec: str | Iterable[str] = "core",
    limits: Limits | None = None,
    on_ready: Callable[[list, dict], None] | None = None,
    pool_cache: dict | None = None,
    references: dict | None = None,
    order: str = "1",
) -> RunStats:
    """Run every case through every backend; call ``on_verdict`` for each verdict as it is made.

    A backend that cannot load raises BackendUnavailable, or with ``skip_unavailable`` is left
    out and listed in ``RunStats.skipped``.  With ``isolate``, a backend that compiles per shape
    runs in ``shards`` worker processes (default: the number of CPUs, at most 4).
    ``method_spec`` picks the methods: 'core' (autodiff and closed form), 'all' (with the
    extra modes: forward mode, vmap, eager), or names.  ``limits`` (isolated runs only) bounds
    what each backend may cost; by default the timeouts given, no memory limit, quarantine after
    2 consecutive timeouts.  Workers are stopped however the run ends, interrupts included.
    ``order`` is "1" (loss, grad_x, grad_A), "2" (hvp_x) or "all".
    """
    from gradxval.backends import describe, load

    quantities = parse_order(order)
    limits = limits or Limits(timeout=timeout, startup_timeout=startup_timeout)
    known = known or load_registry()
    shards = shards or min(4, os.cpu_count() or 1)
    stats = RunStats()
    t0 = time.perf_counter()
    methods, pools, inline = {}, {}, {}
    launched = {}
    if isolate:  # start every worker first: their framework imports overlap
        for name in backend_names:
            kept = pool_cache.get(name) if pool_cache is not None else None
            if kept is not None and kept.info is not None:  # quarantine lasts the whole run
                launched[name] = kept  # a long-lived caller (a Dask worker) reuses its workers
                continue
            launched[name] = _Pool(name, limits)
            launched[name].launch()
            if pool_cache is not None:
                pool_cache[name] = launched[name]
    try:
        for name in backend_names:
            try:
                if isolate:
                    pool = launched[name]
                    pool.ready(shards)
                    pools[name], info = pool, pool.info
                else:
                    inline[name], info = load(name), describe(name)
            except BackendUnavailable as exc:
                if not skip_unavailable:
                    raise
                stats.skipped[name] = str(exc)
                continue
            methods[name] = select_jobs(info, method_spec, quantities)
            stats.backends.append(info)
            if info.declared and info.declared != name:
                _LABELS[name] = info.declared
        names = list(methods)
        if on_ready:  # every backend started (or was skipped): the caller may still refuse
            on_ready(stats.backends, stats.skipped)
        # keep a few cases in flight so that sharded workers and the reference run in parallel
        window: deque = deque()
        ahead = _IN_FLIGHT if pools else 0

        def finish_oldest() -> None:
            flight = window.popleft()
            _finish(
                flight, names, methods, pools, inline, known, on_verdict, references, quantities
            )
            stats.cases += 1
            if on_case:
                on_case(flight[0])

        for case in cases:
            window.append(_dispatch(case, pools, methods))
            if len(window) > ahead:
                finish_oldest()
        while window:
            finish_oldest()
    finally:
        if pool_cache is None:
            stop_workers([w for pool in launched.values() for w in pool.workers])
        for name, pool in launched.items():
            if pool.quarantined:
                stats.quarantined[name] = pool.quarantined
            if limits.log_dir:
                log = os.path.join(limits.log_dir, log_name(name))
                if os.path.exists(log) and os.path.getsize(log):
                    stats.logs[name] = log
                elif os.path.exists(log):
                    os.remove(log)  # an empty log says nothing
    stats.seconds = time.perf_counter() - t0
    return stats


def _dispatch(case: Case, pools: dict, methods: dict) -> tuple:
    inputs = case.inputs()
    workers = {name: pool.submit(case, inputs, methods[name]) for name, pool in pools.items()}
    return case, inputs, workers


def _finish(
    flight, names, methods, pools, inline, known, on_verdict, references=None, quantities=QUANTITIES
) -> None:
    case, inputs, workers = flight
    ref_error = None
    second = any(q in SECOND_ORDER for q in quantities)
    try:
        # a caller that has the reference already (replay prints it) passes it in
        ref = (references or {}).get(case.id) or reference_for(case, inputs, second)
    except Unsupported as exc:  # the problem is not defined for this dtype
        ref, ref_error = None, f"unsupported: {exc}"
    except Exception as exc:  # keep going: the backends' verdicts say what went wrong
        ref, ref_error = None, f"reference failed: {type(exc).__name__}: {exc}"
    outcomes = {}
    for name in names:
        if name in pools:
            outcomes[name] = pools[name].collect(workers[name], case, inputs, methods[name])
        else:
            outcomes[name] = evaluate_jobs(inline[name], case, inputs, methods[name])
    for q in quantities:
        verdicts, results = [], {}
        for name in names:
            for method, oc in outcomes[name][q in SECOND_ORDER].items():
                v = _verdict(case, name, method, q, oc, ref, ref_error, known)
                if "ok" in oc and oc["ok"][q] is not None:
                    results[(name, method)] = oc["ok"][q]
                verdicts.append(v)
        if ref is not None:
            attribute(case, q, verdicts, results, ref)
        for v in verdicts:
            on_verdict(v)


def _verdict(case, name, method, q, oc, ref, ref_error, known) -> Verdict:
    base = dict(
        case_id=case.id,
        backend=name,
        method=method,
        quantity=q,
        dtype=case.dtype,
        regime=case.regime,
    )
    if "ok" in oc and oc["ok"][q] is None:
        v = Verdict(**base, verdict="unsupported", message=f"{name}/{method} does not compute {q}")
    elif ref is not None and q not in ref.values:
        v = Verdict(
            **base,
            verdict="unsupported",
            message=ref.missing.get(q) or f"problem {case.problem} defines no reference for {q}",
        )
    elif "unsupported" in oc:
        v = Verdict(**base, verdict="unsupported", message=oc["unsupported"])
    elif "error" in oc:
        v = Verdict(**base, verdict="error", message=oc["error"])
    elif ref is None:
        v = Verdict(
            **base,
            verdict="unsupported" if ref_error.startswith("unsupported") else "error",
            message=ref_error,
        )
    else:
        v = judge(case, name, method, q, oc["ok"][q], ref, known)
    v.reproduce = reproduce_command(case.id, name, q)
    if name in _LABELS:  # a plug-in by import string: say which backend it calls itself
        v.extra["backend_name"] = _LABELS[name]
    if "seconds" in oc:
        v.extra["seconds"] = round(oc["seconds"], 6)
    if oc.get("repeated"):
        v.extra["repeat_checked"] = True
    return v
