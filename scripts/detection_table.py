"""The smallest relative error one case catches, per dtype and quantity (issue 20, section 2).

For each case of the default pool whose inputs are finite, a result (1 + e) times the reference
is caught when e |ref_i| exceeds the tolerance at some element i: e_min = min_i tol_i / |ref_i|.
Writes e_min per case as JSON for the gradxval it imports, and prints the median and the 90th
percentile of e_min over the cases and the share that catch a 50 % and a 10 % error, beside an
earlier checkout's JSON (--compare).  The before/after table in docs/tolerance.md:

    git worktree add /tmp/before 856275f && mkdir -p /tmp/old
    cp -r /tmp/before/harness /tmp/old/gradxval && cp -r /tmp/before/backends /tmp/old/gradxval/
    PYTHONPATH=/tmp/old python scripts/detection_table.py --json before.json
    python scripts/detection_table.py --json after.json --compare before.json
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections import defaultdict

import numpy as np
from gradxval.dtypes import DTYPES, info
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import REGIMES, sample_cases
from gradxval.model.tolerance import tolerance_u

QUANTITIES = ("loss", "grad_x", "grad_A")


def e_min_per_case(cases: int, seed: int) -> dict[str, list[float]]:
    takes_dtype = len(inspect.signature(tolerance_u).parameters) >= 5  # older checkouts: 4
    rows = defaultdict(list)
    for case in sample_cases(cases, seed, DTYPES, REGIMES):
        inputs = case.inputs()
        if not (np.isfinite(inputs.A).all() and np.isfinite(inputs.x).all()) or not inputs.A.size:
            continue
        ref = reference_for(case, inputs)
        di = info(case.dtype)
        for q in QUANTITIES:
            r = np.abs(np.asarray(ref.values[q], dtype=np.complex128)).ravel()
            if q == "loss" and not (di.tiny <= r[0] <= di.max):
                continue  # the loss is out of the dtype's normal range: nothing to scale
            bound = (di.u * np.asarray(ref.scale[q]) + di.eta * np.asarray(ref.under[q])).ravel()
            ok = (r > 0) & np.isfinite(r)
            if not ok.any():
                continue
            extra = (case.dtype,) if takes_dtype else ()
            t = tolerance_u(q, case.m, case.n, case.k, *extra)
            rows[f"{case.dtype}|{q}"].append(float(np.min(t * bound[ok] / r[ok])))
    return dict(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cases", type=int, default=300)
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--json", help="write e_min per case here")
    p.add_argument("--compare", help="an earlier --json to print beside this one")
    args = p.parse_args()
    after = e_min_per_case(args.cases, args.seed)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(after, f)
    before = after
    if args.compare:
        with open(args.compare) as f:
            before = json.load(f)
    print(
        "| dtype | quantity | cases | median e_min before | after | p90 before | after "
        "| 50 % caught before | after | 10 % caught before | after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for dt in DTYPES:
        for q in QUANTITIES:
            key = f"{dt}|{q}"
            if key not in after:
                continue
            b, a = np.array(before.get(key, [np.nan])), np.array(after[key])
            cells = [
                f"{np.median(b):.3g}",
                f"{np.median(a):.3g}",
                f"{np.percentile(b, 90):.3g}",
                f"{np.percentile(a, 90):.3g}",
                f"{np.mean(b < 0.5):.0%}",
                f"{np.mean(a < 0.5):.0%}",
                f"{np.mean(b < 0.1):.0%}",
                f"{np.mean(a < 0.1):.0%}",
            ]
            print(f"| {dt} | {q} | {a.size} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
