"""Accuracy across a run: error distributions, and backends that are systematically worse.

Each case alone is judged against a condition-scaled tolerance, so a fault that moves every
result by a small relative amount (1e-3 in float16, 1e-7 in float32) passes case by case.  Over
a run it shows: the mean signed relative error of each agreeing result (``bias_u``, in units of
roundoff, compare.bias_u) sits on one side of the honest closed forms' on almost every case.

The rule, per backend x method x dtype x quantity: on the cases that both it and the honest
closed forms judged, take d = bias_u - (median bias_u of the honest closed forms, the group
itself left out; 0 where none ran).  It is an **accuracy outlier** when

- a two-sided sign test rejects "d is as often positive as negative" at ALPHA = 1e-6 (at
  least 21 cases of one sign, none of the other, are needed),
- the median |d| is at least MIN_SHIFT_U = 0.5 u: honest libraries round differently by
  fractions of an ulp, and a shift that small is not a fault, and
- the group's own median bias_u is at least 0.5 u from 0, on the side of the shift: it is
  further from the truth, not only apart from a peer that is itself biased.

A group whose bias a registered systematic fault predicts (an entry in scope whose evidence is
in SYSTEMATIC, e.g. numpy's bfloat16 sums accumulating in bfloat16: the results sit within 0.5 u,
median, of the bias of the fault's own model) is still reported, marked ``known``, and does not
fail the run; a bias beyond the model's is not excused.

ALPHA is a false-alarm rate per group; a default run tests about 100 groups.  The soak
(docs/soak-normal.md) checks that no built-in backend trips it.
"""

from __future__ import annotations

import math

from gradxval.sketch import Sketch

__all__ = [
    "ALPHA",
    "MIN_SHIFT_U",
    "HONEST",
    "SYSTEMATIC",
    "distributions",
    "distribution_figures",
    "accuracy_outliers",
    "OutlierTest",
    "sign_test",
]

ALPHA = 1e-6
MIN_SHIFT_U = 0.5
MIN_CASES = 10
# the honest closed forms: sigma(x) sigma(-x), written once (problems.py), in each framework
# evidence that describes a systematic shift of results that still agree case by case
SYSTEMATIC = ("sequential_sum_in_dtype",)
HONEST = ("numpy/closed_form", "torch/closed_form", "jax/closed_form", "autograd/closed_form")


def distributions(records: list[dict]) -> dict[str, dict]:
    """Per 'backend/method dtype': count, median, p99 and max of error_u over judged results."""
    sketches: dict[str, Sketch] = {}
    for r in records:
        e = r.get("error_u")
        if r["verdict"] in ("agree", "overflow", "disagree", "known") and e is not None:
            sketches.setdefault(f"{r['backend']}/{r['method']} {r['dtype']}", Sketch()).add(
                float(e)
            )
    return distribution_figures(sketches)


def distribution_figures(sketches: dict[str, Sketch]) -> dict[str, dict]:
    """summary.json's "accuracy" from one sketch of error_u per cell (exact up to EXACT
    values a cell, else within a histogram bin: gradxval.sketch)."""
    out = {}
    for key in sorted(sketches):
        s = sketches[key]
        p99 = s.quantile(0.99, finite=True)
        out[key] = {
            "results": s.n,
            "median_u": _r(s.median()),
            "p99_u": None if p99 is None else _r(p99),
            "max_u": _r(s.top),
        }
    return out


def _r(x) -> float | str:
    x = float(x)
    return "inf" if math.isinf(x) else round(x, 4)


def _median(values: list[float]) -> float:
    """np.median of a few floats (the peers of one case), without numpy's per-call cost."""
    v = sorted(values)
    k = len(v) // 2
    return v[k] if len(v) % 2 else (v[k - 1] + v[k]) / 2


def sign_test(positive: int, negative: int) -> float:
    """Two-sided p-value of ``positive`` successes in positive + negative fair coin flips."""
    n, k = positive + negative, min(positive, negative)
    if n == 0:
        return 1.0
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
        for i in range(k + 1)
    ]
    top = max(log_terms)
    p = 2 * math.exp(top) * sum(math.exp(t - top) for t in log_terms)
    return min(1.0, p)


def accuracy_outliers(records: list[dict]) -> list[dict]:
    """The backend x method x dtype x quantity groups that are systematically less accurate
    than the honest closed forms on the same cases (see the module docstring)."""
    test = OutlierTest()
    by: dict[str, list[dict]] = {}
    for r in records:
        by.setdefault(r["case_id"], []).append(r)
    for rs in by.values():
        test.add_case(rs)
    return test.outliers()


class OutlierTest:
    """The accuracy-outlier test as mergeable state, fed one case's records at a time: per
    group the signs of d (exact counts), d and bias_u in sketches (their medians exact up to
    gradxval.sketch.EXACT cases a group), and the registered systematic fault marks with the
    excess of the group's bias over their models'."""

    def __init__(self):
        self.groups: dict[tuple, dict] = {}

    @staticmethod
    def _group() -> dict:
        t = MIN_SHIFT_U  # the decisions compare medians with it: decided exactly (Sketch.side)
        return {"pos": 0, "neg": 0, "n": 0, "d": Sketch(t), "b": Sketch(t), "marks": {}}

    def add_case(self, records: list[dict]) -> None:
        by: dict[str, dict[str, tuple]] = {}
        for r in records:
            extra = r.get("extra") or {}
            if extra.get("bias_u") is not None and r["verdict"] in ("agree", "overflow"):
                by.setdefault(r["quantity"], {})[f"{r['backend']}/{r['method']}"] = (
                    float(extra["bias_u"]), extra, r["dtype"])  # fmt: skip
        for quantity, whos in by.items():
            for who, (b, extra, dtype) in whos.items():
                peers = [v[0] for w, v in whos.items() if w in HONEST and w != who]
                d = b - (_median(peers) if peers else 0.0)
                g = self.groups.setdefault((who, dtype, quantity), self._group())
                g["pos"] += d > 0
                g["neg"] += d < 0
                g["n"] += 1
                g["d"].add(d)
                g["b"].add(b)
                mark = extra.get("explained_by")
                if mark:
                    m = g["marks"].setdefault(mark, [0, Sketch(MIN_SHIFT_U)])
                    m[0] += 1
                    m[1].add(b - extra["model_bias_u"])

    def merge(self, other: OutlierTest) -> None:
        for key, g in other.groups.items():
            mine = self.groups.setdefault(key, self._group())
            for k in ("pos", "neg", "n"):
                mine[k] += g[k]
            mine["d"].merge(g["d"])
            mine["b"].merge(g["b"])
            for entry, (n, s) in g["marks"].items():
                m = mine["marks"].setdefault(entry, [0, Sketch(MIN_SHIFT_U)])
                m[0] += n
                m[1].merge(s)

    def to_state(self) -> list:
        return [[list(k), {"pos": g["pos"], "neg": g["neg"], "n": g["n"],
                           "d": g["d"].to_state(), "b": g["b"].to_state(),
                           "marks": {e: [n, s.to_state()] for e, (n, s) in g["marks"].items()}}]
                for k, g in self.groups.items()]  # fmt: skip

    @classmethod
    def from_state(cls, state: list) -> OutlierTest:
        t = cls()
        for k, g in state:
            t.groups[tuple(k)] = {
                "pos": g["pos"], "neg": g["neg"], "n": g["n"],
                "d": Sketch.from_state(g["d"]), "b": Sketch.from_state(g["b"]),
                "marks": {e: [n, Sketch.from_state(v)] for e, (n, v) in g["marks"].items()},
            }  # fmt: skip
        return t

    def outliers(self) -> list[dict]:
        out = []
        for (who, dtype, quantity), g in sorted(self.groups.items()):
            pos, neg = g["pos"], g["neg"]
            if pos + neg < MIN_CASES:
                continue
            p = sign_test(pos, neg)
            shift, own = g["d"].median(), g["b"].median()
            # worse, not only different: the group itself must sit off the truth, on the side
            # it moved to (a biased peer in the baseline must not make an honest group look off)
            side = g["d"].side()
            if not (p < ALPHA and side and g["b"].side() == side):
                continue
            backend, method = who.split("/", 1)
            o = {"backend": backend, "method": method, "dtype": dtype, "quantity": quantity,
                 "cases": g["n"], "higher": pos, "lower": neg,
                 "median_shift_u": round(shift, 3), "p_value": float(f"{p:.3g}"),
                 "median_bias_u": round(own, 3),
                 "message": (f"{who} {quantity} in {dtype} is systematically "
                             f"{'above' if shift > 0 else 'below'} the honest closed forms: "
                             f"{max(pos, neg)} of {pos + neg} cases on one side, median shift "
                             f"{shift:+.3g} u, its own mean relative error {own:+.3g} u "
                             f"(sign test p = {p:.2g} < {ALPHA:g})")}  # fmt: skip
            # the registered systematic fault whose model predicts the group's bias: it marks
            # at least 90 % of the group's results, and they sit within MIN_SHIFT_U (median)
            # of the model's own bias (a bias beyond the model's is not excused)
            best = max(g["marks"].items(), key=lambda kv: kv[1][0], default=None)
            if best and best[1][0] >= 0.9 * g["n"] and best[1][1].side() == 0:
                o["known"] = best[0]
                o["message"] += f" -- known: {best[0]}"
            out.append(o)
        return out
