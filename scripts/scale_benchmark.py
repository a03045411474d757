"""Throughput of a campaign: local workers against a Dask LocalCluster with 1 and 2 workers.

    python scripts/scale_benchmark.py [--cases 120] [--backends numpy,autograd,jax,torch]

Prints a Markdown table (docs/scale.md): wall seconds, cases/s and verdicts/s per executor,
after one warm-up run that is not counted (imports, jax compiles in the OS cache), and the
per-case overhead Dask adds, measured on tiny numpy-only cases where the backends cost
nothing.  Every configuration runs the same cases and must give the same counts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _run(settings, executor, workers):
    from gradxval.campaign import execute, plan
    from gradxval.run.runner import Limits

    p = plan(settings)
    t0 = time.perf_counter()
    outcome = execute(p, None, executor=executor, workers=workers, follow_up=False, limits=Limits())
    wall = time.perf_counter() - t0
    counts = outcome.summary["counts"]
    return wall, len(p.cases), sum(counts.values()), counts


def main() -> int:
    from gradxval.campaign import Settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=120)
    ap.add_argument("--backends", default="numpy,autograd,jax,torch")
    a = ap.parse_args()
    heavy = Settings(backends=a.backends, cases=a.cases, seed=5)
    tiny = Settings(backends="numpy", cases=200, seed=5, regimes="normal", dtypes="float64")
    rows = []
    _run(heavy, "local", 2)  # warm-up, not counted
    base = None
    for label, executor, workers in (
        ("local worker processes (the default)", "local", 2),
        ("Dask LocalCluster, 1 worker", "dask", 1),
        ("Dask LocalCluster, 2 workers", "dask", 2),
    ):
        wall, cases, verdicts, counts = _run(heavy, executor, workers)
        base = base or counts
        assert counts == base, (label, counts, base)
        rows.append((label, wall, cases / wall, verdicts / wall))
        print(f"{label}: {wall:.1f} s", file=sys.stderr)
    t_local = _run(tiny, "local", 1)[0]
    t_dask = _run(tiny, "dask", 1)[0]
    print(f"| executor | wall (s) | cases/s | verdicts/s |  ({a.cases} cases, {a.backends})")
    print("|---|---|---|---|")
    for label, wall, cps, vps in rows:
        print(f"| {label} | {wall:.1f} | {cps:.2f} | {vps:.1f} |")
    one, two = rows[1][2], rows[2][2]
    print()
    print(
        f"Dask scaling efficiency, 1 -> 2 workers on 2 cores: {two / (2 * one):.0%} "
        f"({two / one:.2f}x)."
    )
    print(
        f"Per-case overhead of Dask (200 tiny numpy cases, 1 worker, cluster start included): "
        f"{(t_dask - t_local) / 200 * 1000:.1f} ms ({t_local:.1f} s local, {t_dask:.1f} s "
        "Dask)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
