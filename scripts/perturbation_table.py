"""The smallest systematic relative perturbation a default run catches, per dtype.

A planted backend returns numpy's closed form times (1 + d) for every quantity of every case.
For each dtype and d, over the default run's cases (300, seed 20261126), this script reports
- per case: whether any result of the planted backend is judged `disagree`;
- across the run: whether the planted backend is flagged as an accuracy outlier against the
  honest closed forms of numpy, torch and jax on the same cases (gradxval/accuracy.py).

    python scripts/perturbation_table.py > docs/perturbation.md
"""

from __future__ import annotations

import sys
import time

import numpy as np
from gradxval.cli import DEFAULT_CASES, DEFAULT_SEED
from gradxval.dtypes import DTYPES, info
from gradxval.judge.accuracy import accuracy_outliers
from gradxval.judge.compare import judge
from gradxval.judge.known import load_registry
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import sample_cases
from gradxval.model.problems import QUANTITIES
from gradxval.run.runner import evaluate_backend, run_cases

DELTAS = [m * 10.0**-e for e in range(1, 17) for m in (5, 2, 1)]
PEERS = ("numpy", "torch", "jax")
NAME = "planted"


def _perturb(v: np.ndarray, d: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (v * (1 + d)).astype(v.dtype)


def main() -> int:
    from gradxval.backends import describe, load

    registry = load_registry()
    peers = [p for p in PEERS if describe(p).available]
    cases = sample_cases(DEFAULT_CASES, DEFAULT_SEED)
    honest: list[dict] = []
    t0 = time.perf_counter()
    run_cases(
        cases,
        peers,
        lambda v: honest.append(v.to_json()),
        isolate=False,
        method_spec=("closed_form",),
    )
    numpy_backend = load("numpy")
    base = {}  # case id -> (case, ref, numpy's closed-form results)
    for case in cases:
        inputs = case.inputs()
        ref = reference_for(case, inputs)
        oc = evaluate_backend(numpy_backend, case, inputs, ("closed_form",))["closed_form"]
        if "ok" in oc:
            base[case.id] = (case, ref, oc["ok"])
    rows = []
    for dtype in DTYPES:
        u = info(dtype).u
        per_case = across = None
        for d in DELTAS:
            records = [r for r in honest if r["dtype"] == dtype]
            caught = False
            for case, ref, res in (v for v in base.values() if v[0].dtype == dtype):
                for q in QUANTITIES:
                    v = judge(case, NAME, "closed_form", q, _perturb(res[q], d), ref, registry)
                    caught |= v.verdict in ("disagree", "error")
                    records.append(v.to_json())
            flagged = any(o["backend"] == NAME for o in accuracy_outliers(records))
            if caught:
                per_case = d
            if flagged:
                across = d
        rows.append((dtype, u, per_case, across))
        print(f"{dtype} done", file=sys.stderr)
    print(
        "| dtype | u | smallest d caught case by case | smallest d caught as an accuracy "
        "outlier | gain |"
    )
    print("|---|---|---|---|---|")
    for dtype, u, per_case, across in rows:
        gain = f"{per_case / across:.0f}x" if per_case and across else "n/a"
        # smallest d detected; detection is monotone in d here (checked by eye in the output)
        print(
            f"| {dtype} | {u:.3g} | {per_case:.0e} | {across:.0e} | {gain} |"
            if across
            else f"| {dtype} | {u:.3g} | {per_case} | not caught | n/a |"
        )
    print()
    print(
        f"({len(cases)} cases, seed {DEFAULT_SEED}; peers {', '.join(peers)}; "
        f"{time.perf_counter() - t0:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
