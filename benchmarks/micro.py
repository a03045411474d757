"""The single figures docs/performance.md and gradxval/tuning.py quote, one line each.

    python benchmarks/micro.py

- registry: load_registry's first call in a process, a later one reading everything again,
  and one that finds the registry kept;
- to_json: Verdict.to_json against dataclasses.asdict over reports/default's 8,100 records;
- dd_outer: grad_A's double-double outer product at n = 3000, in row blocks against the same
  operations on whole arrays;
- fresh arrays: two fresh 8 MB arrays in a process with glibc's defaults and in one where
  gradxval keeps freed memory (tuning.keep_freed_memory);
- worker start-up: every built-in backend's worker (and jax's second shard) started, then
  stopped;
- backend calls at n = 4000: torch's and jax's methods in fresh processes with
  THP_MEM_ALLOC_ENABLE unset, with it (gradxval's setting), and with glibc.malloc.hugetlb=1.
Medians of repeated calls; every process as this environment starts it.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _median_ms(fn, reps: int = 7) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def registry() -> str:
    from gradxval.judge import known

    t = time.perf_counter()
    known.load_registry()
    first = (time.perf_counter() - t) * 1e3
    kept = _median_ms(known.load_registry, 50)

    def again():
        known._LOADED.clear()
        known.load_registry()

    reread = _median_ms(again, 20)
    return f"registry: first load {first:.1f} ms, read again {reread:.1f} ms, kept {kept:.3f} ms"


def to_json() -> str:
    import numpy as np
    from gradxval.judge.compare import Verdict

    path = ROOT / "reports" / "default" / "results.jsonl.gz"
    rows = [json.loads(line) for line in gzip.open(path, "rt") if '"verdict"' in line]
    for r in rows:
        if r["error_u"] == "inf":
            r["error_u"] = float("inf")
    verdicts = [Verdict(**r) for r in rows]

    def old(v):
        d = asdict(v)
        if d["error_u"] is not None and not np.isfinite(d["error_u"]):
            d["error_u"] = "inf"
        return d

    assert [old(v) for v in verdicts] == [v.to_json() for v in verdicts]
    a = _median_ms(lambda: [old(v) for v in verdicts], 5)
    b = _median_ms(lambda: [v.to_json() for v in verdicts], 5)
    return f"to_json: {len(verdicts)} verdicts, asdict {a:.0f} ms, to_json {b:.0f} ms"


def outer() -> str:
    import numpy as np
    from gradxval.numerics import dd_outer, two_prod

    rng = np.random.default_rng(0)
    n = 3000
    a_hi, b_hi = rng.standard_normal((n, 1)), rng.uniform(0, 1, (1, n))
    a_lo, b_lo = a_hi * 2.0**-55, b_hi * 2.0**-55

    def whole():
        g_hi, g_lo = two_prod(a_hi, b_hi)
        g_lo += a_hi * b_lo
        g_lo += a_lo * b_hi
        g_hi += g_lo
        g_hi *= 2
        return g_hi

    assert np.array_equal(whole(), dd_outer(a_hi, a_lo, b_hi, b_lo, 2.0))
    w = _median_ms(whole, 5)
    b = _median_ms(lambda: dd_outer(a_hi, a_lo, b_hi, b_lo, 2.0), 5)
    return f"dd_outer at n = 3000: whole arrays {w:.0f} ms, row blocks {b:.0f} ms"


_FRESH = (
    "import time, numpy as np, statistics, sys\n"
    "if sys.argv[1] == 'kept':\n"
    "    from gradxval.run.tuning import keep_freed_memory; keep_freed_memory()\n"
    "a = np.ones((1024, 1024))\n"
    "def two():\n"
    "    b = a * 2; c = a * 3; return c\n"
    "two(); ts = []\n"
    "for _ in range(51):\n"
    "    t = time.perf_counter(); two(); ts.append(time.perf_counter() - t)\n"
    "print(statistics.median(ts) * 1e3)\n"
)


def fresh_arrays() -> str:
    out = {}
    for mode in ("default", "kept"):
        p = subprocess.run(
            [sys.executable, "-c", _FRESH, mode], capture_output=True, text=True, check=True
        )
        out[mode] = float(p.stdout)
    return (
        f"two fresh 8 MB arrays: {out['default']:.2f} ms with glibc's defaults, "
        f"{out['kept']:.2f} ms with freed memory kept"
    )


def worker_startup() -> str:
    from gradxval.backends import BUILTIN
    from gradxval.run.runner import Limits, _Pool, stop_workers
    from gradxval.run.tuning import tune_own_process

    tune_own_process()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    pools = [_Pool(name, Limits()) for name in BUILTIN]
    for p in pools:
        p.launch()
    for p in pools:
        p.ready(2)
    extra = [w for p in pools for w in p.workers[1:]]
    for w in extra:  # the shards a default run starts on first use
        w.start()
    wall = time.perf_counter() - t
    stop_workers([w for p in pools for w in p.workers])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    n = sum(len(p.workers) for p in pools)
    return f"worker start-up: {n} workers ready in {wall:.2f} s wall, {cpu:.2f} CPU-s"


_CALLS = (
    "import time, statistics\n"
    "from gradxval.model.cases import Case\n"
    "from gradxval.backends import load\n"
    "from gradxval.model.problems import load_problem\n"
    "i = Case('normal', 'float64', 4000, 4000, None, 7).inputs()\n"
    "p = load_problem('logistic')\n"
    "for b in ('jax', 'torch'):\n"
    "    be = load(b)\n"
    "    for m in ('autodiff', 'closed_form'):\n"
    "        be.evaluate_problem(p, m, i.A, i.x, 'float64'); ts = []\n"
    "        for _ in range(5):\n"
    "            t = time.perf_counter(); be.evaluate_problem(p, m, i.A, i.x, 'float64')\n"
    "            ts.append(time.perf_counter() - t)\n"
    "        print(f'{b}/{m} {statistics.median(ts) * 1e3:.0f}', end='; ')\n"
)


def backend_calls() -> str:
    envs = {
        "plain": {},
        "THP_MEM_ALLOC_ENABLE=1": {"THP_MEM_ALLOC_ENABLE": "1"},
        "glibc.malloc.hugetlb=1": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
    }
    lines = []
    for label, extra in envs.items():
        env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
        env.update(extra)
        p = subprocess.run(
            [sys.executable, "-c", _CALLS], capture_output=True, text=True, env=env, check=True
        )
        lines.append(f"  {label}: {p.stdout.strip()} (ms)")
    return "backend calls at n = 4000:\n" + "\n".join(lines)


def main() -> int:
    for part in (registry, to_json, outer, fresh_arrays, worker_startup, backend_calls):
        print(part(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
