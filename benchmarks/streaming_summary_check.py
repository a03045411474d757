"""Does a run's summary.json (the streaming summary) equal the figures computed from its records?

    python benchmarks/streaming_summary_check.py DIR [DIR ...]

For each run directory (results.jsonl or a store), every figure of summary.json that comes
from records is computed here again, from all the records at once, the way gradxval did before
the streaming summary (numpy over lists; no gradxval.output.tally, no gradxval.sketch): counts,
the agreement matrix, the known entries seen, coverage, the |x| profiles, determinism, the
error distributions and the accuracy-outlier test.  Prints one markdown row per run: which
figures are equal, and for the error distributions (exact up to 2048 values a cell, a log
histogram past that) the largest relative deviation of a median or p99.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

JUDGED = ("agree", "overflow", "disagree", "known")
HONEST = ("numpy/closed_form", "torch/closed_form", "jax/closed_form", "autograd/closed_form")


def reference(records: list[dict]) -> dict:
    from gradxval.judge.accuracy import ALPHA, MIN_CASES, MIN_SHIFT_U, sign_test
    from gradxval.model.cases import SHAPE_CLASSES, Case, shape_classes

    out: dict = {"counts": Counter(r["verdict"] for r in records)}
    m: dict = defaultdict(Counter)
    for r in records:
        m[(f"{r['backend']}/{r['method']}", r["dtype"])][r["verdict"]] += 1
    out["matrix"] = {k: dict(v) for k, v in m.items()}
    known = [r.get("classification") or "" for r in records if r["verdict"] == "known"]
    out["known_seen"] = Counter(p for c in known for p in c.split("+") if p)
    judged = {r["case_id"] for r in records if r["verdict"] in JUDGED}
    shapes: dict = {}
    regimes: dict = defaultdict(Counter)
    for cid in judged:
        c = Case.from_id(cid)
        row = shapes.setdefault(c.dtype, dict.fromkeys(SHAPE_CLASSES, 0))
        for k in shape_classes(c):
            row[k] += 1
        regimes[c.dtype][c.regime] += 1
    out["coverage"] = (len(judged), shapes, {d: dict(v) for d, v in regimes.items()})
    prof: dict = {}
    for r in records:
        for b, rel in (r.get("extra") or {}).get("profile") or ():
            row = prof.setdefault(r["dtype"], {}).setdefault(f"{r['backend']}/{r['method']}", {})
            row[b] = max(row.get(b, 0.0), rel)
    out["profiles"] = {d: {w: sorted([b, v] for b, v in bins.items()) for w, bins in rows.items()}
                       for d, rows in prof.items()}  # fmt: skip
    repeat = sum(bool((r.get("extra") or {}).get("repeat_checked")) for r in records)
    out["determinism"] = (sum(r["verdict"] in JUDGED for r in records), repeat)
    groups: dict = defaultdict(list)
    for r in records:
        e = r.get("error_u")
        if r["verdict"] in JUDGED and e is not None:
            groups[f"{r['backend']}/{r['method']} {r['dtype']}"].append(float(e))
    out["accuracy"] = {k: (len(v), float(np.median(v)),
                           float(np.percentile([x for x in v if math.isfinite(x)], 99))
                           if any(math.isfinite(x) for x in v) else None, max(v))
                       for k, v in groups.items()}  # fmt: skip
    bias: dict = defaultdict(dict)
    for r in records:
        b = (r.get("extra") or {}).get("bias_u")
        if b is not None and r["verdict"] in ("agree", "overflow"):
            bias[(r["case_id"], r["quantity"])][f"{r['backend']}/{r['method']}"] = (
                float(b),
                r["dtype"],
            )
    diffs: dict = defaultdict(list)
    for (_, q), by in bias.items():
        for who, (b, dtype) in by.items():
            peers = [v for w, (v, _) in by.items() if w in HONEST and w != who]
            diffs[(who, dtype, q)].append((b - (float(np.median(peers)) if peers else 0.0), b))
    flags = set()
    for key, d in diffs.items():
        dd = np.array([x for x, _ in d])
        own = float(np.median([b for _, b in d]))
        pos, neg = int((dd > 0).sum()), int((dd < 0).sum())
        if pos + neg < MIN_CASES:
            continue
        shift = float(np.median(dd))
        if (sign_test(pos, neg) < ALPHA and abs(shift) >= MIN_SHIFT_U and abs(own) >= MIN_SHIFT_U
                and own * shift > 0):  # fmt: skip
            flags.add(key)
    out["outliers"] = flags
    return out


def check(d: Path) -> str:
    from gradxval.output.rundir import RunDir

    records = list(RunDir(d).records())
    s = json.loads((d / "summary.json").read_text())
    ref = reference(records)
    equal = {
        "counts": all(s["counts"].get(k, 0) == n for k, n in ref["counts"].items()),
        "matrix": {(w, dt): c for w, ds in s["matrix"].items() for dt, c in ds.items()}
        == ref["matrix"],
        "known": s["known_seen"] == dict(ref["known_seen"]),
        "coverage": (
            s["coverage"]["judged_cases"],
            s["coverage"]["shape_classes"],
            s["coverage"]["regimes"],
        )
        == ref["coverage"],  # fmt: skip
        "profiles": s["profiles"] == json.loads(json.dumps(ref["profiles"])),
        "determinism": (s["determinism"]["results"], s["determinism"]["repeat_checked"])
        == ref["determinism"],
        "outlier flags": {
            (o["backend"] + "/" + o["method"], o["dtype"], o["quantity"])
            for o in s["accuracy_outliers"]
        }
        == ref["outliers"],  # fmt: skip
    }
    worst, exact_cells, cells = 0.0, 0, 0
    for key, (n, med, p99, top) in ref["accuracy"].items():
        got = s["accuracy"][key]
        cells += 1
        exact_cells += n <= 2048
        assert got["results"] == n and (got["max_u"] == "inf" if math.isinf(top)
                                         else got["max_u"] == round(top, 4)), key  # fmt: skip
        for a, b in ((med, got["median_u"]), (p99, got["p99_u"])):
            if a in (None, 0) or b in (None, "inf") or math.isinf(a):
                continue
            # summary.json rounds to 4 decimals: deviation beyond that rounding
            worst = max(worst, max(0.0, abs(b - a) - 5e-5) / abs(a))
    ok = ", ".join(k for k, v in equal.items() if v)
    bad = ", ".join(k for k, v in equal.items() if not v) or "none"
    return (f"| {d} | {len(records):,} | {ok} | {bad} | {exact_cells}/{cells} | "
            f"{100 * worst:.2f} % |")  # fmt: skip


if __name__ == "__main__":
    print("| run | records | equal | differ | exact cells | worst median/p99 deviation |")
    print("|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        print(check(Path(arg)))
