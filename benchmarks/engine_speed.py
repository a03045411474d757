"""Speed of the binary128 reference engine (issue 21): value + full gradient.

    python benchmarks/engine_speed.py            # sizes 1e3 .. 1e6, and the dense layer

Prints seconds per evaluation for an elementwise-heavy function of N elements
(sum(softplus(x) * tanh(x) + sigmoid(x) ** 2 + log1p(x * x))) and for a 1000 x 1000 dense layer
sum(tanh(W @ x + b)) with its gradients, and the time per element (linear cost: flat).
"""

from __future__ import annotations

import time

import numpy as np
from gradxval.judge.engine import Quad, evaluate


def elementwise(x, *, xp, nn):
    return xp.sum(nn.softplus(x) * xp.tanh(x) + nn.sigmoid(x) ** 2 + xp.log1p(x * x))


def dense(W, b, x, *, xp, nn):
    return xp.sum(xp.tanh(W @ x + b))


def _time(fn, arrays, wrt, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        evaluate(fn, arrays, wrt, Quad())
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'function':<12} {'elements':>10} {'seconds':>9} {'ns/element':>11}")
    for n in (10**3, 10**4, 10**5, 10**6):
        x = rng.standard_normal(n)
        s = _time(elementwise, {"x": x}, ("x",), repeat=3 if n < 10**6 else 1)
        print(f"{'elementwise':<12} {n:>10} {s:>9.3f} {s / n * 1e9:>11.0f}")
    for m in (100, 300, 1000):
        W, b, x = rng.standard_normal((m, m)), rng.standard_normal(m), rng.standard_normal(m)
        s = _time(dense, {"W": W, "b": b, "x": x}, ("W", "b", "x"))
        print(f"{'dense':<12} {m * m:>10} {s:>9.3f} {s / (m * m) * 1e9:>11.0f}")


if __name__ == "__main__":
    main()
