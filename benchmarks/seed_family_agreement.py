"""The seed family's references (double-double and mpmath, derived by hand) against the engine.

    python benchmarks/seed_family_agreement.py --cases 1000

For ||A phi(x)||^2 with phi = logistic, tanh, softplus, log-sigmoid, every dtype (complex A in
complex64 and complex128) and every regime: the reference of `gradxval run`
(gradxval.reference, first and second order) and the binary128 engine evaluating the problem's
declared body (model.problems.seed_function, the loss every backend differentiates) must agree
on every element: both rounded to float64 (a complex quantity part by part), non-finite exactly
where the other is, finite elements within 2 float64 ulps (or 4 ulps of the largest element,
where the quantity cancels) for float64 and complex128 cases, and within a millionth of the
dtype's ulp for the lower ones, whose hand-derived reference is computed only as accurately as
judging them needs.  Prints disagreements per problem x dtype x regime, and exits 1 if any.

    python benchmarks/seed_family_agreement.py --cases 1000 [--dtypes complex64,complex128]
        [--problems logistic,tanh]

--problems splits a long run over processes (the cases of a problem do not depend on the
others'); their tables add up.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np
from gradxval.dtypes import info
from gradxval.judge.engine import Quad, evaluate
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import sample_cases
from gradxval.model.problems import PROBLEMS

PHI = ("logistic", "tanh", "softplus", "logsigmoid")
REAL = ("float16", "bfloat16", "float32", "float64")
COMPLEX = ("complex64", "complex128")


def body(problem):
    return PROBLEMS[problem].function.fn


def close(engine: np.ndarray, ref: np.ndarray, dtype: str, floor=0.0):
    """Both rounded to float64: True where finite elements are within the bound and non-finite
    ones equal; "nonfinite" where the only differences have a non-finite side (the hand
    reference takes limits at infinite inputs and keeps outcome sets, the engine evaluates
    IEEE infinities as they are); False otherwise.

    ``floor``: an absolute difference no verdict can feel, eta * Reference.under (the judge's
    own underflow term at tol_u = 1; tolerances are 8 or more of it).  The double-double hand
    reference is no better than that where a factor is subnormal in float64 (its high word
    loses bits: sigma'(732) * 800 is 44 subnormal spacings off, seed 15)."""
    dtype = info(dtype).real  # complex64 is judged as float32, complex128 as float64
    floor = np.broadcast_to(np.asarray(floor, dtype=np.float64), np.shape(ref))
    if np.iscomplexobj(engine) or np.iscomplexobj(ref):
        e, r = np.asarray(engine, dtype=np.complex128), np.asarray(ref, dtype=np.complex128)
        parts = [close(e.real, r.real, dtype, floor), close(e.imag, r.imag, dtype, floor)]
        return False if False in parts else "nonfinite" if "nonfinite" in parts else True
    e = np.asarray(engine, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if e.shape != r.shape:
        return False
    fin = np.isfinite(r) & np.isfinite(e)
    if not np.array_equal(e[~fin], r[~fin], True):
        return "nonfinite" if _finite_close(e[fin], r[fin], dtype, floor[fin]) else False
    return _finite_close(e[fin], r[fin], dtype, floor[fin])


def _finite_close(e, r, dtype, floor) -> bool:
    if not r.size:
        return True
    d = np.abs(e - r)
    scale = np.max(np.abs(r))
    if dtype == "float64":
        return bool(np.all((d <= 2 * np.spacing(np.abs(r))) | (d <= 4 * np.spacing(scale))
                           | (d <= floor)))  # fmt: skip
    bound = 1e-6 * info(dtype).u
    return bool(np.all((d <= bound * np.abs(r)) | (d <= 2 * bound * scale)))


def compare(case) -> tuple[list[str], list[str]]:
    inputs = case.inputs()
    ref = reference_for(case, inputs, second_order=True)
    A = np.asarray(inputs.A)
    x = np.asarray(inputs.x)
    directions = {"x": inputs.v} if inputs.v is not None and "hvp_x" in ref.values else None
    out = evaluate(body(case.problem), {"A": A, "x": x}, ("A", "x"), Quad(), directions=directions)
    bad, nonfinite = [], []
    for q, engine_q in (("loss", "loss"), ("grad_x", "grad_x"), ("grad_A", "grad_A"),
                        ("hvp_x", "hvp_x")):  # fmt: skip
        if q not in ref.values or ref.values[q] is None:
            continue
        with np.errstate(all="ignore"):
            if f"{engine_q}.re" in out:  # a complex quantity comes back as its parts
                e = np.asarray(out[f"{engine_q}.re"]).astype(np.float64) + 1j * np.asarray(
                    out[f"{engine_q}.im"]
                ).astype(np.float64)
            else:
                e = np.asarray(out[engine_q]).astype(np.float64)
        floor = 0.0
        if q in ref.under and ref.under[q] is not None:
            floor = info(case.dtype).eta * np.asarray(ref.under[q], dtype=np.float64)
        verdict = close(e, ref.values[q], case.dtype, floor)
        if verdict == "nonfinite":
            nonfinite.append(q)
        elif not verdict:
            bad.append(q)
    return bad, nonfinite


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=1000, help="per problem")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtypes", default=",".join(REAL + COMPLEX))
    p.add_argument("--problems", default=",".join(PHI))
    args = p.parse_args()
    dtypes = tuple(args.dtypes.split(","))
    total, bad, conv = Counter(), Counter(), Counter()
    examples = []
    for problem in args.problems.split(","):
        if problem not in PHI:
            p.error(f"problem={problem!r}, expected one of {', '.join(PHI)}")
        cases = sample_cases(args.cases, args.seed, dtypes, problems=(problem,))
        for c in cases:
            key = (problem, c.dtype, c.regime)
            total[key] += 1
            with np.errstate(all="ignore"):
                b, nf = compare(c)
            conv[key] += bool(nf)
            if b:
                bad[key] += 1
                if len(examples) < 20:
                    examples.append(f"{c.id}: {', '.join(b)}")
    print("| problem | dtype | regime | cases | disagreements | non-finite conventions |")
    print("|---|---|---|---|---|---|")
    for key in sorted(total):
        print(f"| {' | '.join(key)} | {total[key]} | {bad[key]} | {conv[key]} |")
    for e in examples:
        print(e)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
