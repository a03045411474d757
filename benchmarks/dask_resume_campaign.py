"""A real campaign on a Dask LocalCluster, SIGKILLed and resumed, against a local run (issue 24).

    python benchmarks/dask_resume_campaign.py --cases 10000 --kill-after 600 --out /tmp/campaign

1. ``gradxval run --store`` of N cases with the local executor (the default case mix);
2. the same run with ``--executor dask --workers 2`` (a LocalCluster on this machine), killed
   with SIGKILL, client and cluster together, KILL_AFTER seconds in;
3. ``gradxval run --resume`` of that directory on a new LocalCluster;

then compares: summary.json (apart from timings, the environment and the resumed flag) and
every verdict (store rows, timings aside, counted: a verdict lost or written twice shows).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

COMMON = ["--quiet", "--no-follow-up", "--store"]


def gradxval(*args) -> list[str]:
    return [sys.executable, "-m", "gradxval", *args]


def summary(d: Path) -> dict:
    s = json.loads((d / "summary.json").read_text())
    for k in ("seconds", "resumed", "logs", "quarantined"):
        s["run"].pop(k, None)
    s.pop("environment")
    return s


def verdicts(d: Path) -> Counter:
    from gradxval.output.rundir import RunDir

    out = Counter()
    for r in RunDir(d).records():
        (r.get("extra") or {}).pop("seconds", None)
        out[json.dumps(r, sort_keys=True)] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--kill-after", type=float, default=600.0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--reuse-local", action="store_true",
                    help="keep OUT/local if it holds a finished run of these settings")  # fmt: skip
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    spec = ["--cases", str(a.cases), "--seed", str(a.seed)]
    local, dask = a.out / "local", a.out / "dask"
    if a.reuse_local and (local / "summary.json").exists():
        s = json.loads((local / "summary.json").read_text())
        assert (s["run"]["planned_cases"], s["run"]["seed"]) == (a.cases, a.seed), s["run"]
        rc_local, t_local = (
            (1 if s["counts"]["disagree"] + s["counts"]["error"] else 0),
            s["run"]["seconds"],
        )
    else:
        t = time.perf_counter()
        rc_local = subprocess.run(gradxval("run", *spec, *COMMON, "--out", str(local))).returncode
        t_local = time.perf_counter() - t

    t = time.perf_counter()
    p = subprocess.Popen(
        gradxval("run", *spec, *COMMON, "--executor", "dask", "--workers", "2", "--out", str(dask)),
        start_new_session=True,  # client and its LocalCluster: one process group to kill
    )
    try:
        p.wait(timeout=a.kill_after)
        sys.exit("the Dask run finished before the kill: give a shorter --kill-after")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    t_killed = time.perf_counter() - t
    from gradxval.output.rundir import RunDir

    done_at_kill = len(RunDir(dask).done())
    t = time.perf_counter()
    rc_resume = subprocess.run(
        gradxval(
            "run",
            "--resume",
            str(dask),
            "--quiet",
            "--no-follow-up",
            "--executor",
            "dask",
            "--workers",
            "2",
        )  # fmt: skip
    ).returncode
    t_resume = time.perf_counter() - t

    same_summary = summary(local) == summary(dask)
    vl, vd = verdicts(local), verdicts(dask)
    lost = sum((vl - vd).values())
    extra = sum((vd - vl).values())
    twice = sum(n - 1 for n in vd.values() if n > 1)
    parts = len(list((dask / "results").glob("part-*.parquet")))
    counts = json.loads((dask / "summary.json").read_text())["counts"]
    print("| cases | local run | Dask run until SIGKILL | cases kept at the kill | resume on "
          "Dask | exit local / resumed | summary equal | verdicts | lost | extra | twice | "
          "parts |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {a.cases} | {t_local:.0f} s | {t_killed:.0f} s | {done_at_kill} | {t_resume:.0f} s "
          f"| {rc_local} / {rc_resume} | {'yes' if same_summary else 'NO'} | {sum(vd.values())} "
          f"| {lost} | {extra} | {twice} | {parts} |")  # fmt: skip
    print(f"\ncounts: {counts}")
    if not same_summary:
        a_, b_ = summary(local), summary(dask)
        print("differs:", [k for k in a_ if a_[k] != b_.get(k)])


if __name__ == "__main__":
    main()
