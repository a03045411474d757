"""Campaigns on a Dask distributed cluster (``gradxval run --executor dask``).

Placement: each Dask task is a batch of cases of one (shape, dtype); inside the Dask worker the
backends run in the same isolated subprocesses as a local run (runner.run_cases), kept alive
between tasks (a compiling backend compiles each program once per worker; a hung or crashing
backend is still killed and recorded; jax x64 and torch precision cannot leak).

Judging happens in the worker, next to the results: the reference needs the inputs, which the
worker draws from the case id anyway, and a verdict is a few hundred bytes of JSON where a
result is up to a megabyte of arrays.  Only records travel back; the client writes them as
batches arrive, and the summary does not depend on scheduling.  Into a columnar store the
workers also pack their batch (``pack``: an Arrow table and the batch's streaming summary), so
the client only concatenates tables and merges summaries.

Consistent environments: every worker reports its Python and distribution versions at start;
workers that differ from the client are left out, by name.  Dask reruns the task of a lost
worker on another one; the client writes a batch once, when its task completes, so no case is
judged twice in the output.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from gradxval.errors import UsageError

__all__ = ["fingerprint", "run_on_dask", "check_on_dask", "require_dask", "BATCH"]

BATCH = 8  # cases per task: enough to amortise scheduling, few enough to balance
# gradxval's own numerical dependencies; the backends' come from the registry
_CORE = (
    "gradxval",
    "numpy",
    "ml_dtypes",
    "mpmath",
    "array-api-compat",
    "scipy",
    "numpy-quaddtype",
    "python-flint",
)
_POOLS: dict = {}  # per Dask worker process: backend name -> runner pool, kept between tasks


def fingerprint() -> dict:
    """What must match between client and workers for verdicts to match."""
    out = {"python": sys.version.split()[0]}
    from gradxval.backends import distributions

    for d in dict.fromkeys(_CORE + distributions()):
        try:
            out[d] = version(d)
        except PackageNotFoundError:
            out[d] = None
    return out


def _worker_fingerprint() -> dict:
    """fingerprint(), looked up by name in the worker's own copy of this module."""
    return fingerprint()


def _task(
    case_ids: list[str],
    names: list[str],
    method_spec,
    limits: dict,
    path: list[str],
    env: dict,
    order: str = "1",
    pack: Callable | None = None,
):
    """Run and judge a batch in a Dask worker: [(case id, [record, ...]), ...] (or what
    ``pack`` makes of it) and the backends' infos and skips."""
    os.environ.update(env)  # the client's --check-determinism and --no-jax-cache
    for p in path:  # the client's import path: plug-ins given as module:Class must resolve
        if p not in sys.path:
            sys.path.append(p)
    from dataclasses import asdict

    from gradxval.model.cases import Case
    from gradxval.run.runner import Limits, run_cases

    by_case: dict[str, list] = {cid: [] for cid in case_ids}
    stats = run_cases(
        [Case.from_id(c) for c in case_ids],
        names,
        lambda v: by_case[v.case_id].append(v.to_json()),
        isolate=True,
        skip_unavailable=True,
        method_spec=method_spec,
        limits=Limits(**limits),
        pool_cache=_POOLS,
        order=order,
    )
    infos = [asdict(b) for b in stats.backends]
    results = [(cid, by_case[cid]) for cid in case_ids]
    if pack is not None and case_ids:
        results = (case_ids, pack(results))
    return results, infos, stats.skipped, stats.quarantined


def _batches(cases: list) -> list[list[str]]:
    """Cases grouped by (shape, dtype) in list order, cut into batches of BATCH."""
    groups: dict[tuple, list[str]] = {}
    for c in cases:
        groups.setdefault((c.m, c.n, c.k, c.dtype), []).append(c.id)
    out = []
    for ids in groups.values():
        out += [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
    return out


def require_dask() -> None:
    """Raise a usage error naming the extra when Dask distributed is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(
            '--executor dask needs Dask distributed: pip install "gradxval[dask]"'
        ) from None


def _client(scheduler: str | None, workers: int):
    require_dask()
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="30s"), None
    # backends run in subprocesses of the Dask workers, so workers must not be daemonic; and
    # the nanny's one-thread BLAS environment would change results against a local run
    dask.config.set({"distributed.worker.daemon": False, "distributed.nanny.pre-spawn-environ": {}})
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return Client(cluster), cluster


@contextlib.contextmanager
def _connected(scheduler: str | None, workers: int):
    """A client of the scheduler (or of a local cluster, closed with it)."""
    client, cluster = _client(scheduler, workers)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _by_environment(client) -> tuple[dict, list, dict]:
    """(the client's fingerprint, the workers whose fingerprint equals it, {worker: its
    fingerprint} of the others)."""
    mine = fingerprint()
    theirs = client.run(_worker_fingerprint)
    bad = {w: fp for w, fp in theirs.items() if fp != mine}
    return mine, [w for w in theirs if w not in bad], bad


def _gather(futures, take: Callable) -> None:
    """``take(result)`` as each future finishes; the rest are cancelled if one fails."""
    from distributed import as_completed

    try:
        for fut in as_completed(futures):
            take(fut.result())
            # forget a taken result: a worker lost later must not make the scheduler compute
            # it again (workers that write their own store parts would write it twice)
            fut.cancel()
    finally:
        for f in futures:
            f.cancel()


def run_on_dask(
    cases: list,
    names,
    method_spec,
    limits,
    on_case: Callable[[str, list[dict]], None],
    *,
    scheduler: str | None = None,
    workers: int = 2,
    on_ready: Callable | None = None,
    on_note: Callable[[str], None] | None = None,
    order: str = "1",
    pack: Callable | None = None,
    on_packed: Callable | None = None,
    finish: Callable | None = None,
) -> tuple[list, dict, dict]:
    """Run ``cases`` on a Dask cluster; call ``on_case(case_id, records)`` as batches arrive.

    With ``pack``, each worker hands its batch's [(case id, records), ...] to it and the client
    gets ``on_packed(case_ids, what pack returned)`` instead: into a columnar store the workers
    write their own parts (output.store.WorkerStore), and the client does no work per record.
    ``finish`` runs on every worker at the end, also after an interrupt (writing what they
    hold).  Returns (backend infos, skipped, quarantined).
    """
    from dataclasses import asdict

    from gradxval.backends import BackendInfo
    from gradxval.run.runner import WORKER_ENV

    with _connected(scheduler, workers) as client:
        mine, good, bad = _by_environment(client)
        for w, fp in bad.items():
            diff = {k: (fp.get(k), v) for k, v in mine.items() if fp.get(k) != v}
            msg = f"worker {w} refused: its environment differs from the client's: {diff}"
            if on_note:
                on_note(msg)
        if not good:
            raise UsageError(
                "no Dask worker has the client's environment; "
                + "; ".join(f"{w}: {fp}" for w, fp in bad.items())
            )
        lim = asdict(limits)
        lim["log_dir"] = None  # worker output goes to the Dask worker's log
        spec = method_spec if isinstance(method_spec, str) else list(method_spec)
        env = {k: os.environ[k] for k in WORKER_ENV if k in os.environ}
        # a probe starts the backends on one worker before any work is sent: the caller checks
        # versions (resume) and writes the manifest first, even when no case is left to run
        probe = client.submit(
            _task,
            [],
            list(names),
            spec,
            lim,
            list(sys.path),
            env,
            order,
            pure=False,
            workers=good[:1],
        )
        _, p_infos, p_skipped, _ = probe.result()
        infos = [BackendInfo(**b) for b in p_infos]
        skipped: dict = dict(p_skipped)
        if on_ready:
            on_ready(infos, skipped)
        futures = [
            client.submit(
                _task,
                batch,
                list(names),
                spec,
                lim,
                list(sys.path),
                env,
                order,
                pack,
                pure=False,
                workers=good,
                allow_other_workers=False,
                retries=3,
            )
            for batch in _batches(cases)
        ]
        quarantined: dict = {}

        def take(result) -> None:
            results, _, b_skipped, b_quar = result
            skipped.update(b_skipped)  # a backend that fails on any worker is reported
            quarantined.update(b_quar)
            if pack is not None:
                on_packed(*results)
                return
            for cid, records in results:
                on_case(cid, records)

        try:
            _gather(futures, take)
        finally:
            if finish is not None:
                with contextlib.suppress(Exception):
                    client.run(finish)
        return infos, skipped, quarantined


_CHECK_STATE: dict = {}  # per Dask worker process: the loaded target and backends, kept


def _check_task(target: str, case_ids: list, backends, methods, order, timeout, path,
                token: str = "") -> list:  # fmt: skip
    """Run on a worker: these cases of the declared functions ``target`` names.  What a worker
    loads is kept for this check only (``token``): a later check loads the target again (the
    user may have edited it) and starts its backends afresh."""
    from gradxval.model.sampling import parse_case_id
    from gradxval.model.targets import load_target
    from gradxval.run.check_case import check_case, load_backends

    for p in path:
        if p not in sys.path:
            sys.path.append(p)
    key = (token, target, str(backends))
    if key not in _CHECK_STATE:
        _CHECK_STATE.clear()
        _CHECK_STATE[key] = ({f.name: f for f in load_target(target)}, load_backends(backends))
    functions, loaded = _CHECK_STATE[key]
    out = []
    for cid in case_ids:
        case = parse_case_id(cid)
        f = functions[case.function]
        out.append((cid, check_case(f, case, loaded, methods, order or f.order, timeout)))
    return out


def check_on_dask(
    target: str,
    case_ids: list,
    backends,
    methods,
    order,
    timeout,
    on_case: Callable[[str, list[dict]], None],
    *,
    scheduler: str | None = None,
    workers: int = 2,
) -> None:
    """``gradxval check`` on a Dask cluster: batches of cases, ``on_case`` as they arrive.

    Workers load the target themselves (a FILE.py path is made absolute first), so it must be
    where they can read it: the same machine, or shared storage."""
    file, sep, name = target.rpartition(":")
    if sep and file.endswith(".py"):
        target = f"{Path(file).resolve()}:{name}"
    with _connected(scheduler, workers) as client:
        _, _, bad = _by_environment(client)
        if bad:
            raise UsageError(
                "Dask workers whose environment differs from the client's: "
                + "; ".join(f"{w}: {fp}" for w, fp in bad.items())
            )
        spec = backends if isinstance(backends, str) else ",".join(backends)
        token = os.urandom(8).hex()  # what workers load is kept for this check only
        futures = [
            client.submit(
                _check_task,
                target,
                case_ids[i : i + BATCH],
                spec,
                list(methods) if methods else None,
                order,
                timeout,
                list(sys.path),
                token,
                pure=False,
                retries=3,
            )  # fmt: skip
            for i in range(0, len(case_ids), BATCH)
        ]
        _gather(futures, lambda result: [on_case(cid, records) for cid, records in result])
