"""How a case's cost grows with n, against the memory-bandwidth bound of one pass over A.

    python benchmarks/scaling.py [--sizes 10,30,100,300,1000,2000,3000,4000] [--reps 5]

For square float64 cases normal-float64-m{n}n{n} (in this process, started and tuned as
gradxval starts its workers: gradxval/tuning.py), the median time of
  - the reference alone (reference_for: double-double values, condition scales),
  - a full case: run_cases with numpy, autograd, jax and torch, 7 results x 3 quantities,
    inputs drawn, every verdict made (what a worker and the parent do for one case, without
    the pipes),
and one pass over A: 8 m n bytes at the bandwidth this machine streams a 256 MB float64 array
with (numpy sum, the best of 5).  "Passes" is the full case over that.  The exponent is the
least-squares slope of log time against log n, over n >= 1000 and over every n.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _median(fn, reps: int) -> float:
    fn()  # warm-up: compiles, first touch
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bandwidth() -> float:
    import numpy as np

    a = np.ones(32 << 20)  # 256 MB
    best = min(_median(a.sum, 1) for _ in range(5))
    return a.nbytes / best


def slope(ns, ts) -> float:
    import numpy as np

    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,30,100,300,1000,2000,3000,4000")
    ap.add_argument("--reps", type=int, default=5)
    opts = ap.parse_args()
    from gradxval.run.tuning import process_env, tune_own_process

    if process_env():  # start again as gradxval starts its workers (glibc reads it at start)
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **process_env()})
    tune_own_process()
    import numpy as np
    from gradxval.judge.known import load_registry
    from gradxval.judge.problem_reference import reference_for
    from gradxval.model.cases import Case
    from gradxval.run.runner import run_cases

    np.seterr(all="ignore")
    bw = bandwidth()
    registry = load_registry()
    rows = []
    for n in [int(s) for s in opts.sizes.split(",")]:
        reps = opts.reps if n <= 2000 else max(2, opts.reps // 2)
        case = Case("normal", "float64", n, n, None, 7)
        inputs = case.inputs()
        ref = _median(lambda c=case, i=inputs: reference_for(c, i), reps)
        full = _median(
            lambda c=case: run_cases(
                [c],
                ["numpy", "autograd", "jax", "torch"],
                lambda v: None,
                isolate=False,
                known=registry,
            ),
            reps,
        )
        one_pass = 8 * n * n / bw
        rows.append((n, ref, full, one_pass))
    print(f"One pass over A at {bw / 1e9:.1f} GB/s (numpy sum of 256 MB).\n")
    print("| n | reference (ms) | full case (ms) | one pass over A (ms) | passes per case |")
    print("|---|---|---|---|---|")
    for n, ref, full, p in rows:
        print(f"| {n} | {ref * 1e3:.2f} | {full * 1e3:.1f} | {p * 1e3:.3f} | {full / p:.0f} |")
    big = [r for r in rows if r[0] >= 1000]
    print()
    for label, sel in (("n >= 1000", big), ("every n", rows)):
        if len(sel) >= 2:
            ns = [r[0] for r in sel]
            ref_exp = slope(ns, [r[1] for r in sel])
            full_exp = slope(ns, [r[2] for r in sel])
            print(
                f"Fitted exponent, {label}: reference n^{ref_exp:.2f}, full case n^{full_exp:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
