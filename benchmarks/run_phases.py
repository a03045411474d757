"""Where a default run's CPU goes, phase by phase; its throughput; peak memory per process.

    python benchmarks/run_phases.py [--methods core|all] [--no-jax-cache]

1. The isolated run users get: `gradxval run --out DIR --quiet --no-follow-up` in a fresh
   process; wall seconds, CPU of the process and of its workers, and the peak resident memory
   of the parent and of the largest worker (getrusage's ru_maxrss).
2. The same cases in this process (`--in-process`, tuned as the CLI tunes its own process:
   gradxval/tuning.py), with each phase's CPU (time.process_time,
   every thread of the process) summed by wrappers around the functions that do it:
   start-up (importing each backend's framework), inputs (drawing the cases), backends (their
   methods, with jax's tracing, lowering and XLA compilation split out by jax.monitoring's
   duration events), reference, judge (verdicts, known-fault matching, attribution), results
   (results.jsonl), reports (summary.json, report.md, report.html).  What the isolated run
   costs beyond the in-process one is IPC and worker overhead (pickling inputs and results
   through pipes, each worker's own imports, polling).

Shares are of the in-process total plus that overhead.  jax's compilation cache is the user's
own (warm after the first run) unless --no-jax-cache.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

CPU: dict[str, float] = defaultdict(float)
JAX: dict[str, float] = defaultdict(float)


def _timed(phase: str, fn):
    def wrapper(*args, **kwargs):
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            CPU[phase] += time.process_time() - t

    return wrapper


def isolated(args: list[str], tmp: Path) -> dict:
    d = tmp / "isolated"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "gradxval", "run", "--out", str(d), "--quiet", "--no-follow-up"]
    # the child's own children (the workers) are reaped by it: time(1)-style accounting
    probe = (
        "import resource, runpy, sys; sys.argv = ['gradxval'] + sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_module('gradxval', run_name='__main__')\n"
        "finally:\n"
        "    s = resource.getrusage(resource.RUSAGE_SELF)\n"
        "    c = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "    print('RUSAGE', s.ru_maxrss, c.ru_maxrss, s.ru_utime + s.ru_stime, file=sys.stderr)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", probe, *cmd[3:], *args],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(ln for ln in p.stderr.splitlines() if ln.startswith("RUSAGE"))
    _, parent_rss, worker_rss, parent_cpu = line.split()
    summary = json.loads((d / "summary.json").read_text())
    verdicts = sum(1 for ln in (d / "results.jsonl").read_text().splitlines() if '"verdict"' in ln)
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "parent_cpu": float(parent_cpu),
        "parent_rss_mb": int(parent_rss) / 1024,
        "worker_rss_mb": int(worker_rss) / 1024,
        "cases": summary["run"]["cases"],
        "verdicts": verdicts,
    }


def in_process(args: list[str], tmp: Path) -> float:
    from gradxval.run.tuning import tune_own_process

    tune_own_process()  # what the CLI does for its own process, before numpy loads
    import jax.monitoring
    from gradxval import backends, campaign, cases, runner
    from gradxval.output import jsonl

    def on_duration(event: str, duration: float, **_kw) -> None:
        if event.startswith("/jax/core/compile/"):
            JAX[event.rsplit("/", 1)[-1]] += duration

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    backends.load = _timed("start-up", backends.load)
    cases.Case.inputs = _timed("inputs", cases.Case.inputs)
    runner.evaluate_jobs = _timed("backends", runner.evaluate_jobs)
    runner.reference_for = _timed("reference", runner.reference_for)
    runner._verdict = _timed("judge", runner._verdict)
    runner.attribute = _timed("judge", runner.attribute)
    jsonl.JsonlWriter.write = _timed("results", jsonl.JsonlWriter.write)
    campaign.write_reports = _timed("reports", campaign.write_reports)
    from gradxval.cli import main

    t0 = time.process_time()
    main(["run", "--in-process", "--out", str(tmp / "inproc"), "--quiet", "--no-follow-up", *args])
    return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="core")
    ap.add_argument("--no-jax-cache", action="store_true")
    opts = ap.parse_args()
    args = ["--methods", opts.methods] + (["--no-jax-cache"] if opts.no_jax_cache else [])
    tmp = Path(tempfile.mkdtemp(prefix="gradxval-phases-"))
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    iso = isolated(args, tmp)
    total_in = in_process(args, tmp)
    compile_s = sum(JAX.values())
    phases = dict(CPU)
    phases["backends"] -= compile_s
    phases["jax trace, lower, compile"] = compile_s
    phases["other (CLI, planning, summary)"] = total_in - sum(CPU.values())
    overhead = max(0.0, iso["cpu"] - total_in)
    phases["IPC and worker overhead"] = overhead
    grand = sum(phases.values())
    print(f"## Default run phases (--methods {opts.methods})\n")
    print(
        f"Isolated run: {iso['wall']:.1f} s wall, {iso['cpu']:.1f} CPU-s "
        f"(parent {iso['parent_cpu']:.1f}, workers {iso['cpu'] - iso['parent_cpu']:.1f}); "
        f"{iso['cases']} cases, {iso['verdicts']} verdicts: {iso['cases'] / iso['wall']:.1f} "
        f"cases/s, {iso['verdicts'] / iso['wall']:.0f} verdicts/s. "
        f"Peak resident memory: parent {iso['parent_rss_mb']:.0f} MB, largest worker "
        f"{iso['worker_rss_mb']:.0f} MB.\n"
    )
    print("| phase | CPU-s | share |")
    print("|---|---|---|")
    for name, sec in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {sec:.2f} | {100 * sec / grand:.0f} % |")
    print(f"| total | {grand:.2f} | 100 % |")
    if JAX:
        print("\njax compile events (s): " + ", ".join(f"{k} {v:.2f}" for k, v in JAX.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
