"""Wall and CPU time of whole `gradxval run` processes, cold and warm.

    python benchmarks/default_run.py

Each row runs `gradxval run --out DIR --quiet --no-follow-up` in a fresh process (imports and
worker start-up included; PYTHONDONTWRITEBYTECODE as this environment sets it) and reports wall
seconds, CPU seconds of the process and all its descendants, and whether its verdicts equal
the first row's (results.jsonl minus each result's seconds: values, errors, bias, everything
else).  The jax compilation cache lives in a temporary XDG_CACHE_HOME: "cold" starts it empty,
"warm" reuses it."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _verdicts(d: Path) -> list[str]:
    out = []
    for line in (d / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "verdict" in r:
            r.get("extra", {}).pop("seconds", None)  # timings are all that may differ
            out.append(json.dumps(r, sort_keys=True))
    return sorted(out)


def _adopt_orphans() -> None:
    """Linux: become the subreaper of the runs' descendants.  Workers fork from a forkserver
    that outlives its run by a moment and is nobody's to wait for; adopted and reaped here,
    its CPU and its workers' count in RUSAGE_CHILDREN with the run's own."""
    import ctypes

    ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def _reap() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _run(label: str, args: list[str], env: dict, tmp: Path) -> tuple:
    d = tmp / label.replace(" ", "_")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gradxval",
            "run",
            "--out",
            str(d),
            "--quiet",
            "--no-follow-up",
            *args,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - t0
    _reap()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys_cpu = after.ru_stime - before.ru_stime
    cpu = (after.ru_utime - before.ru_utime) + sys_cpu
    summary = json.loads((d / "summary.json").read_text())
    return label, wall, cpu, sys_cpu, summary["run"]["cases"], d


def main() -> int:
    _adopt_orphans()
    tmp = Path(tempfile.mkdtemp(prefix="gradxval-bench-"))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp / "cache"), PYTHONDONTWRITEBYTECODE="1")
    rows = [
        _run("default, jax cache cold", [], env, tmp),
        _run("default, jax cache warm", [], env, tmp),
        # what gradxval/tuning.py changes, undone or added (cache warm): OpenBLAS's default
        # spinning of idle threads (an empty value is its default and wins over gradxval's),
        # and glibc's huge pages for every allocation, tried and left out
        _run(
            "default, jax cache warm, OPENBLAS_THREAD_TIMEOUT unset by the user (spinning)",
            [],
            dict(env, OPENBLAS_THREAD_TIMEOUT=""),
            tmp,
        ),
        _run(
            "default, jax cache warm, GLIBC_TUNABLES=glibc.malloc.hugetlb=1",
            [],
            dict(env, GLIBC_TUNABLES="glibc.malloc.hugetlb=1"),
            tmp,
        ),
        # workers as fresh interpreters, as before they forked from a preloaded forkserver
        _run(
            "default, jax cache warm, GRADXVAL_WORKER_START=spawn",
            [],
            dict(env, GRADXVAL_WORKER_START="spawn"),
            tmp,
        ),
        _run("default, --no-jax-cache", ["--no-jax-cache"], env, tmp),
        _run("--methods all, jax cache warm for core only", ["--methods", "all"], env, tmp),
        _run("--methods all, jax cache warm", ["--methods", "all"], env, tmp),
        _run("--methods all, --no-jax-cache", ["--methods", "all", "--no-jax-cache"], env, tmp),
    ]
    base = _verdicts(rows[0][-1])
    all_base = _verdicts(rows[7][-1])
    print("| run | wall (s) | CPU (s) | of which system (s) | cases | verdicts equal |")
    print("|---|---|---|---|---|---|")
    for label, wall, cpu, sys_cpu, cases, d in rows:
        same = _verdicts(d) == (all_base if "methods all" in label else base)
        cells = [label, f"{wall:.1f}", f"{cpu:.1f}", f"{sys_cpu:.1f}", str(cases)]
        print("| " + " | ".join([*cells, "yes" if same else "NO"]) + " |")
    walls = {row[0]: row[1] for row in rows}
    print(
        "\n--methods all / default: "
        f"{walls['--methods all, jax cache warm'] / walls['default, jax cache warm']:.2f}x "
        "(cache warm), "
        f"{walls['--methods all, --no-jax-cache'] / walls['default, --no-jax-cache']:.2f}x "
        "(no cache)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
