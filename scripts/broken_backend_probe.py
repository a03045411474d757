"""Plant a broken backend on top of jax and torch and count what the check calls it.

Plants: all-zero gradients and JVPs, all-NaN gradients and JVPs, results widened to float64
(complex128); each under the library's own name (registered faults of that library may
apply, but only where their model reproduces the result) and under another name (no fault
applies).  Five suite functions, 12 cases each (seed 3), methods autodiff, forward, vmap.

    python scripts/broken_backend_probe.py

Prints the outcome counts per backend and plant, then every result the plant got `known`
with (marked where the plant left the library's result as it was: a NaN planted on a NaN,
float64 widened to float64), and how many got `known` under another name.
"""

from __future__ import annotations

import collections

import numpy as np
from gradxval.backends import load
from gradxval.model.sampling import sample
from gradxval.run.check_case import check_case
from gradxval.suite import BY_NAME

FUNCTIONS = ("softmax_xent", "layer_norm_width1", "cosine_similarity", "entropy_softmax",
             "sq_norm_a_tanh_ridge")  # fmt: skip
PLANTS = {
    "zero": lambda q, v: v if q == "loss" else np.zeros_like(v),
    "nan": lambda q, v: v if q == "loss" else np.full_like(v, np.nan),
    "wide": lambda q, v: v.astype(np.complex128 if v.dtype.kind == "c" else np.float64),
}


def planted(backend, name, alter):
    class Planted(type(backend)):
        # method -> quantity -> whether the plant changed the library's result (a NaN
        # planted where the library returns NaN is the library's own result)
        changed: dict = {}

        def run_function(self, method, function, arrays, dtype, extra=None):
            out = super().run_function(method, function, arrays, dtype, extra)
            alt = {q: alter(q, np.asarray(v)) for q, v in out.items()}
            self.changed[method] = {
                q: a.dtype != np.asarray(out[q]).dtype
                or not np.array_equal(a, np.asarray(out[q]), equal_nan=True)
                for q, a in alt.items()
            }
            return alt

    Planted.name = name
    return Planted()


def main() -> None:
    counts, known, renamed = collections.Counter(), collections.Counter(), collections.Counter()
    for be in ("jax", "torch"):
        base = load(be)
        for pname, plant in PLANTS.items():
            for name in (be, f"{be}_copy"):
                b = planted(base, name, plant)
                for fn in FUNCTIONS:
                    f = BY_NAME[fn]
                    for c in sample(f, 12, 3):
                        for r in check_case(f, c, {name: b}, ("autodiff", "forward", "vmap"), 1):
                            if r["quantity"] == "loss" and pname != "wide":
                                continue  # the loss is not planted there
                            counts[(name, pname, r["outcome"])] += 1
                            if name == be and r["outcome"] == "known":
                                same = not b.changed[r["method"]].get(r["quantity"], True)
                                note = r["note"] + (" (the library's own result)" if same else "")
                                known[(be, pname, r["method"], r["quantity"], note)] += 1
                            if name != be and r["outcome"] == "known":
                                renamed[(name, pname, r["method"], r["quantity"])] += 1
    for k, v in sorted(counts.items()):
        print(*k, v)
    print("known under the library's own name:")
    for k, v in sorted(known.items()):
        print(" ", v, *k)
    print("known under another name:", sum(renamed.values()))


if __name__ == "__main__":
    main()
