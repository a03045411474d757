"""The reference engine's error against arb ball arithmetic (issue 21's accuracy table).

    python benchmarks/engine_accuracy.py [--cases 5] [--markdown]

The same tape runs in binary128 (the engine) and in arb at 250 bits (python-flint, rigorous
balls); per primitive (value and derivative on 64 points over magnitudes 1e-20 .. 700) and per
calibration-suite function (every quantity: loss, gradients, JVP, HVP; float64 inputs drawn in
the normal and saturated regimes), the worst and median relative error: elementwise for
primitives, normwise (max |error| / max |reference|) for functions.
"""

from __future__ import annotations

import argparse

import numpy as np
from gradxval.judge.engine import NN as NN_
from gradxval.judge.engine import XP, Quad, evaluate
from gradxval.judge.engine.arith import Arb
from gradxval.model.sampling import draw, sample
from gradxval.suite import SUITE

PRIMITIVES = {
    "exp": lambda x: XP.exp(x),
    "expm1": lambda x: XP.expm1(x),
    "log": lambda x: XP.log(XP.abs(x)),
    "log1p": lambda x: XP.log1p(XP.abs(x)),
    "sqrt": lambda x: XP.sqrt(XP.abs(x)),
    "tanh": lambda x: XP.tanh(x),
    "sin": lambda x: XP.sin(x),
    "cos": lambda x: XP.cos(x),
    "sigmoid": lambda x: NN_.sigmoid(x),
    "softplus": lambda x: NN_.softplus(x),
    "erf": lambda x: NN_.erf(x),
    "logaddexp": lambda x: XP.logaddexp(x, x * 0.5),
    "divide": lambda x: 1.0 / (x + 0.25),
    "power": lambda x: XP.abs(x) ** 1.5,
}


def _rel(q, r, elementwise: bool) -> np.ndarray:
    ar = Arb()
    qa = ar.const(np.asarray(q)).ravel()
    ra = np.asarray(r, dtype=object).ravel()
    diff = np.array([abs(float((x - y).mid())) for x, y in zip(qa, ra, strict=True)])
    ref = np.array([abs(float(y.mid())) for y in ra])
    if elementwise:
        with np.errstate(all="ignore"):
            return np.where(ref > 0, diff / np.where(ref > 0, ref, 1), diff)
    return np.array([diff.max() / ref.max() if ref.size and ref.max() > 0 else 0.0])


def primitives(points: np.ndarray):
    for name, op in PRIMITIVES.items():
        body = lambda x, *, xp, nn, op=op: xp.sum(op(x) * 1.0)  # noqa: E731
        errs = []
        for x in points:
            arr = {"x": np.array([x])}
            q = evaluate(body, arr, ("x",), Quad())
            r = evaluate(body, arr, ("x",), Arb())
            for k in ("loss", "grad_x"):
                errs.extend(_rel(q[k], r[k], True))
        yield name, np.asarray(errs)


def functions(cases: int):
    for f in SUITE:
        errs = []
        for regime in ("normal", "saturated"):
            widest = ("complex128",) if "complex128" in f.dtypes else ("float64",)
            for c in sample(f, cases, 11, widest, (regime,)):
                a, d = draw(f, c)
                q = evaluate(f.fn, a, f.wrt, Quad(), tangents=d, directions=d)
                r = evaluate(f.fn, a, f.wrt, Arb(), tangents=d, directions=d)
                for k in q:
                    e = _rel(q[k], r[k], False)
                    if np.isfinite(e).all():
                        errs.extend(e)
        yield f.name, np.asarray(errs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=5, help="cases per function and regime")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    mags = 10.0 ** rng.uniform(-20, np.log10(700), 64)
    points = mags * rng.choice([-1.0, 1.0], 64)
    print("| primitive (value and derivative, elementwise) | worst | median |")
    print("|---|---|---|")
    for name, e in primitives(points):
        print(f"| {name} | {e.max():.1e} | {np.median(e):.1e} |")
    print()
    print("| function (every quantity, normwise) | worst | median | quantities |")
    print("|---|---|---|---|")
    for name, e in functions(args.cases):
        print(f"| {name} | {e.max():.1e} | {np.median(e):.1e} | {e.size} |")


if __name__ == "__main__":
    main()
