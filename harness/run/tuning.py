"""Settings for the processes gradxval owns: the CLI and its backend workers.

Library callers (run_cases in a user's process, the pytest plugin) keep their own, except that
the worker processes gradxval spawns for them get PROCESS_ENV too.

- Idle BLAS and OpenMP threads sleep instead of spinning.  OpenBLAS threads spin for about
  2**28 cycles after each call by default, and five workers share two cores: the warm default
  run took 2.8 CPU-s and 1.3 s more with them spinning (same thread counts, so the same bits).
- torch's large tensors get transparent huge pages (THP_MEM_ALLOC_ENABLE=1; numpy asks for
  them already).  Without, every fresh 4 KB page of a result faults on its own: at n = 4000
  torch's autodiff took 43 ms a call, 16 ms with.  (glibc.malloc.hugetlb=1 would give them to
  jax too, 121 -> 33 ms for its closed form there, but it costs small allocations more: the
  warm default run took 0.9 s longer with it.)
- glibc keeps freed memory for reuse.  A case allocates a few dozen temporaries the size of A,
  and glibc hands each freed one back to the kernel (an 8 MB array is above its mmap
  threshold), so the next one faults every page in again: two fresh 8 MB arrays cost 2.1 ms on
  this project's VM, 0.3 ms once freed memory is kept.  Arrays above 32 MB, glibc's largest
  mmap threshold, are still mapped afresh.

The figures: benchmarks/default_run.py and benchmarks/micro.py (docs/performance.md).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from contextlib import contextmanager

from gradxval.errors import expected

# read by OpenBLAS, libgomp and torch when they load: they must be in a process's environment
# before then; a user's own value wins
PROCESS_ENV = {
    "OPENBLAS_THREAD_TIMEOUT": "4",
    "OMP_WAIT_POLICY": "PASSIVE",
    "THP_MEM_ALLOC_ENABLE": "1",
}


_OWN_PROCESS = False  # set by tune_own_process: the CLI's process, whose settings gradxval owns


def process_env(environ=None) -> dict:
    """The variables of PROCESS_ENV that ``environ`` (default: os.environ) does not set."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in PROCESS_ENV.items() if k not in environ}


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC = (
    (_M_MMAP_THRESHOLD, 32 << 20),  # glibc's maximum: arrays up to 32 MB come from the heap
    (_M_TRIM_THRESHOLD, 512 << 20),  # keep up to 512 MB of freed heap for reuse
    (_M_TOP_PAD, 64 << 20),  # grow the heap in 64 MB steps
)


def tune_own_process() -> None:
    """For the CLI's own process, before any framework loads: process_env() (its workers and
    other children inherit it), and freed memory kept."""
    global _OWN_PROCESS
    os.environ.update(process_env())
    keep_freed_memory()
    _OWN_PROCESS = True


@contextmanager
def _env_defaults(values: dict):
    """The variables of ``values`` that os.environ does not set, set for the block only."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def worker_env():
    """process_env() for the processes started inside; os.environ as it was afterwards."""
    return _env_defaults(PROCESS_ENV)


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory for reuse; False where there is no glibc mallopt."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return all(mallopt(param, value) == 1 for param, value in _MALLOC)


# What every worker imports before its backend: a forkserver imports it once, and each worker
# forks from there instead of importing it again at each start and restart
_PRELOAD = "gradxval.run.runner"
WORKER_START_ENV = "GRADXVAL_WORKER_START"  # forkserver or spawn; unset: see worker_context
_STARTS = ("forkserver", "spawn")


def worker_context():
    """The multiprocessing context for backend workers.

    In a process gradxval owns (the CLI), Python's forkserver: a fresh interpreter (no jax or
    torch threads are ever forked) that has imported gradxval and numpy once, and each worker
    forks from it and takes its parent's os.environ at launch (``runner._worker_main``).  What
    numpy's BLAS reads when it loads is the server's, that is the CLI's environment at its
    first worker, which the CLI set before (tune_own_process); torch and jax load in each
    worker, under its own.  The server starts with PYTHONSAFEPATH (Python >= 3.11), so a
    module in the working directory cannot shadow what it preloads.  Workers die with the
    server, and the server with the run.

    Elsewhere (a library caller: its process-wide forkserver, its preload list and its
    environment are its own), or on Python 3.10, or with GRADXVAL_WORKER_START=spawn: spawn,
    a fresh interpreter per worker that imports everything again.
    GRADXVAL_WORKER_START=forkserver asks a library caller's process for the forkserver.
    """
    start = os.environ.get(WORKER_START_ENV) or ("forkserver" if _OWN_PROCESS else "spawn")
    if start not in _STARTS:
        raise expected(WORKER_START_ENV, start, _STARTS)
    if (start == "spawn" or "forkserver" not in mp.get_all_start_methods()
            or sys.version_info < (3, 11)):  # fmt: skip
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    from multiprocessing import forkserver

    # keep what a caller preloads (CPython's default: __main__); a private attribute, read
    # defensively: without it only the preload is lost
    preload = list(getattr(forkserver._forkserver, "_preload_modules", ["__main__"]))
    if _PRELOAD not in preload:
        ctx.set_forkserver_preload([*preload, _PRELOAD])
    return ctx


def server_env(ctx):
    """Where ``ctx`` may start the forkserver: PYTHONSAFEPATH for it (CPython 3.11's
    forkserver runs ``python -c`` and ignores the sys.path it is given, so the working
    directory would come first).  Its workers restore their parent's os.environ."""
    forks = ctx.get_start_method() == "forkserver"
    return _env_defaults({"PYTHONSAFEPATH": "1"} if forks else {})
