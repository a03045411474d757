"""Soak: many random cases through every backend; count unexplained disagreements and measure
how tight the tolerance is (worst honest error / tolerance, per dtype and quantity).

    python scripts/soak.py --cases 10000 --regimes normal --out out/soak
    python scripts/soak.py --cases 10000 --regimes normal --order 2 --problems all --out out/soak2

Writes OUT/results.jsonl as it goes and OUT/soak.json and OUT/soak.md at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from gradxval.backends import parse_backends
from gradxval.dtypes import parse_dtypes
from gradxval.judge.known import load_registry
from gradxval.model.cases import parse_regimes, sample_cases
from gradxval.model.problems import parse_problems
from gradxval.output import JsonlWriter
from gradxval.run.runner import run_cases


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--regimes", default="normal")
    p.add_argument("--dtypes", default="all")
    p.add_argument("--backends", default="all")
    p.add_argument("--order", default="1", choices=("1", "2", "all"))
    p.add_argument("--problems", default="logistic", help="comma list or 'all'")
    p.add_argument("--pool", type=int, default=60, help="distinct shapes (bounds jit compiles)")
    p.add_argument("--out", type=Path, default=Path("out/soak"))
    a = p.parse_args()
    names, explicit = parse_backends(a.backends)
    cases = sample_cases(
        a.cases,
        a.seed,
        parse_dtypes(a.dtypes),
        parse_regimes(a.regimes),
        pool_size=a.pool,
        problems=parse_problems(a.problems),
    )
    worst: dict = defaultdict(lambda: (0.0, None))
    records: list[dict] = []  # compact: what the accuracy-outlier test needs
    counts: Counter = Counter()
    unexplained = []
    a.out.mkdir(parents=True, exist_ok=True)
    with JsonlWriter(a.out / "results.jsonl") as w:

        def on_verdict(v) -> None:
            w.write(v)
            if "bias_u" in v.extra:
                records.append(
                    {
                        "case_id": v.case_id,
                        "backend": v.backend,
                        "method": v.method,
                        "quantity": v.quantity,
                        "dtype": v.dtype,
                        "verdict": v.verdict,
                        "extra": {
                            k: v.extra[k]
                            for k in ("bias_u", "explained_by", "model_bias_u")
                            if k in v.extra
                        },
                    }
                )
            counts[v.verdict] += 1
            if v.verdict == "agree" and v.error_u is not None:
                key = (v.dtype, v.quantity, v.method)
                ratio = v.error_u / v.tolerance_u
                if ratio > worst[key][0]:
                    worst[key] = (
                        ratio,
                        f"{v.case_id} {v.backend}/{v.method} {v.error_u:.3g}u/{v.tolerance_u:.3g}u",
                    )
            elif v.verdict in ("disagree", "error"):
                unexplained.append(v.to_json())

        done = [0]

        def on_case(c) -> None:
            done[0] += 1
            if done[0] % 200 == 0:
                print(f"{done[0]}/{len(cases)} cases, {dict(counts)}", file=sys.stderr, flush=True)

        t0 = time.perf_counter()
        stats = run_cases(
            cases,
            names,
            on_verdict,
            known=load_registry(),
            on_case=on_case,
            skip_unavailable=not explicit,
            order=a.order,
        )
    from gradxval.judge.accuracy import accuracy_outliers

    outliers = accuracy_outliers(records)
    result = {
        "accuracy_outliers": outliers,
        "cases": stats.cases,
        "seconds": round(time.perf_counter() - t0, 1),
        "regimes": a.regimes,
        "order": a.order,
        "problems": a.problems,
        "backends": [b.name for b in stats.backends],
        "counts": dict(counts),
        "unexplained": len(unexplained),
        "tightness": {
            f"{d}/{q}/{m}": {"worst_over_tol": round(r, 3), "where": where}
            for (d, q, m), (r, where) in sorted(worst.items())
        },
        "unexplained_examples": unexplained[:20],
    }
    (a.out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"Soak: {stats.cases} cases ({a.regimes}, order {a.order}, problems {a.problems}), "
        f"{result['seconds']} s, backends "
        f"{', '.join(result['backends'])}; verdicts {dict(counts)}; unexplained "
        f"{len(unexplained)}; accuracy outliers {len(outliers)}"
        + "".join(f"\n- {o['message']}" for o in outliers)
        + ".",
        "",
        "| dtype/quantity/method | worst agreeing error / tolerance | where |",
        "|---|---|---|",
    ]
    lines += [
        f"| {k} | {v['worst_over_tol']} | {v['where']} |" for k, v in result["tightness"].items()
    ]
    (a.out / "soak.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if unexplained or [o for o in outliers if not o.get("known")] else 0


if __name__ == "__main__":
    raise SystemExit(main())
