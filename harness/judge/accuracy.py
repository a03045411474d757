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
from collections import defaultdict

import numpy as np

__all__ = [
    "ALPHA",
    "MIN_SHIFT_U",
    "HONEST",
    "SYSTEMATIC",
    "distributions",
    "accuracy_outliers",
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
    groups: dict[str, list[float]] = defaultdict(list)
    for r in records:
        e = r.get("error_u")
        if r["verdict"] in ("agree", "overflow", "disagree", "known") and e is not None:
            groups[f"{r['backend']}/{r['method']} {r['dtype']}"].append(
                math.inf if e == "inf" else float(e)
            )
    out = {}
    for key in sorted(groups):
        a = np.asarray(groups[key])
        finite = a[np.isfinite(a)]
        out[key] = {
            "results": int(a.size),
            "median_u": _r(np.median(a)),
            "p99_u": _r(np.percentile(finite, 99)) if finite.size else None,
            "max_u": _r(a.max()),
        }
    return out


def _r(x) -> float | str:
    x = float(x)
    return "inf" if math.isinf(x) else round(x, 4)


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
    bias: dict[tuple, dict[str, float]] = defaultdict(dict)  # (case, quantity) -> who -> bias
    for r in records:
        b = (r.get("extra") or {}).get("bias_u")
        if b is not None and r["verdict"] in ("agree", "overflow"):
            bias[(r["case_id"], r["quantity"])][f"{r['backend']}/{r['method']}"] = float(b)
    diffs: dict[tuple, list[float]] = defaultdict(list)
    dtype_of = {r["case_id"]: r["dtype"] for r in records}
    for (case_id, quantity), by in bias.items():
        for who, b in by.items():
            peers = [v for w, v in by.items() if w in HONEST and w != who]
            base = float(np.median(peers)) if peers else 0.0
            diffs[(who, dtype_of[case_id], quantity)].append((b - base, b))
    out = []
    for (who, dtype, quantity), d in sorted(diffs.items()):
        d_arr = np.asarray([x for x, _ in d])
        own = float(np.median([b for _, b in d]))
        pos, neg = int((d_arr > 0).sum()), int((d_arr < 0).sum())
        if pos + neg < MIN_CASES:
            continue
        p = sign_test(pos, neg)
        shift = float(np.median(d_arr))
        # worse, not only different: the group itself must sit off the truth, on the side it
        # moved to (a biased peer in the baseline must not make an honest group look off)
        away = abs(own) >= MIN_SHIFT_U and own * shift > 0
        if p < ALPHA and abs(shift) >= MIN_SHIFT_U and away:
            backend, method = who.split("/", 1)
            out.append(
                {
                    "backend": backend,
                    "method": method,
                    "dtype": dtype,
                    "quantity": quantity,
                    "cases": int(d_arr.size),
                    "higher": pos,
                    "lower": neg,
                    "median_shift_u": round(float(np.median(d_arr)), 3),
                    "p_value": float(f"{p:.3g}"),
                    "median_bias_u": round(own, 3),
                    "message": (
                        f"{who} {quantity} in {dtype} is systematically "
                        f"{'above' if shift > 0 else 'below'} the honest closed forms: "
                        f"{max(pos, neg)} of {pos + neg} cases on one side, median shift "
                        f"{shift:+.3g} u, its own mean relative error {own:+.3g} u "
                        f"(sign test p = {p:.2g} < {ALPHA:g})"
                    ),
                }
            )
            known = _explained_by(records, backend, method, dtype, quantity)
            if known:
                out[-1]["known"] = known
                out[-1]["message"] += f" -- known: {known}"
    return out


def _explained_by(records, backend, method, dtype, quantity) -> str | None:
    """The registered systematic fault whose model predicts the group's bias: it applies to at
    least 90 % of the group's results, and the results sit within MIN_SHIFT_U (median) of the
    bias the model itself has.  A bias beyond the model's is not excused."""
    from collections import Counter

    key = (backend, method, dtype, quantity)
    rows = [
        r.get("extra") or {}
        for r in records
        if (r["backend"], r["method"], r["dtype"], r["quantity"]) == key
        and r["verdict"] in ("agree", "overflow")
        and "bias_u" in (r.get("extra") or {})
    ]
    marks = Counter(x.get("explained_by") for x in rows)
    best = max(((k, v) for k, v in marks.items() if k), key=lambda kv: kv[1], default=(None, 0))
    entry, n = best
    if not rows or n < 0.9 * len(rows):
        return None
    excess = [x["bias_u"] - x["model_bias_u"] for x in rows if x.get("explained_by") == entry]
    return entry if abs(float(np.median(excess))) < MIN_SHIFT_U else None
