"""The smallest relative error one case catches, per dtype and quantity (issue 20, section 2).

For each case of the default pool whose inputs are finite, a result (1 + e) times the reference
is caught when e |ref_i| exceeds the tolerance at some element i: e_min = min_i tol_i / |ref_i|.
Prints the median and the 90th percentile of e_min over the cases, with the growth term at the
dtype's own u ("before") and at the accumulation the libraries use ("after"), and the share of
cases that catch a 50 % and a 10 % error of the loss.

    python scripts/detection_table.py --cases 300 --seed 20261126
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from gradxval.cases import REGIMES, sample_cases
from gradxval.dtypes import DTYPES, info
from gradxval.problems import reference_for
from gradxval.tolerance import tolerance_u


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cases", type=int, default=300)
    p.add_argument("--seed", type=int, default=20261126)
    args = p.parse_args()
    rows = defaultdict(lambda: {"before": [], "after": []})
    for case in sample_cases(args.cases, args.seed, DTYPES, REGIMES):
        inputs = case.inputs()
        if not (np.isfinite(inputs.A).all() and np.isfinite(inputs.x).all()) or not inputs.A.size:
            continue
        ref = reference_for(case, inputs)
        di = info(case.dtype)
        for q in ("loss", "grad_x", "grad_A"):
            r = np.abs(np.asarray(ref.values[q], dtype=np.complex128)).ravel()
            if q == "loss" and not (di.tiny <= r[0] <= di.max):
                continue  # the loss is out of the dtype's normal range: nothing to scale
            bound = (di.u * np.asarray(ref.scale[q]) + di.eta * np.asarray(ref.under[q])).ravel()
            ok = (r > 0) & np.isfinite(r)
            if not ok.any():
                continue
            for when, dt in (("before", None), ("after", case.dtype)):
                tol = tolerance_u(q, case.m, case.n, case.k, dt) * bound
                rows[(case.dtype, q)][when].append(float(np.min(tol[ok] / r[ok])))
    print("| dtype | quantity | cases | median e_min before | after | p90 before | after "
          "| 50 % caught before | after | 10 % caught before | after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (dt, q), v in sorted(rows.items(), key=lambda t: (DTYPES.index(t[0][0]), t[0][1])):
        b, a = np.array(v["before"]), np.array(v["after"])
        cells = [f"{np.median(b):.3g}", f"{np.median(a):.3g}",
                 f"{np.percentile(b, 90):.3g}", f"{np.percentile(a, 90):.3g}",
                 f"{np.mean(b < 0.5):.0%}", f"{np.mean(a < 0.5):.0%}",
                 f"{np.mean(b < 0.1):.0%}", f"{np.mean(a < 0.1):.0%}"]
        print(f"| {dt} | {q} | {b.size} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
