"""Synthetic verdict records through the real aggregation and writing path, at campaign scale.

    python benchmarks/campaign_scale.py --records 1000000
    python benchmarks/campaign_scale.py --records 27000000 --report

Records are the default run's (reports/default/results.jsonl.gz: its real mix of backends,
methods, dtypes, verdicts, messages and error_u), tiled with fresh case ids (one per 27
records, as a case of the default mix gives).  The measured path is what a campaign's client
does per batch of records: the streaming summary (gradxval.output.tally.Tally.add_batch) and
the columnar store (gradxval.output.store.StoreWriter).  Prints wall time, records per
second, peak RSS and the store's bytes per record; with --report, the time to rebuild the
summary from the store alone (read every part, tally it), as `gradxval report` would.
Run each size in its own process: peak RSS is per process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def template():
    import pyarrow as pa
    from gradxval.output.store import _schema

    recs = [json.loads(line) for line in gzip.open(ROOT / "reports/default/results.jsonl.gz", "rt")]
    recs = [r for r in recs if "case_done" not in r]
    schema = _schema()
    cols = {k: [] for k in schema.names}
    for r in recs:
        for k in schema.names:
            v = r.get(k)
            if k in ("error_u", "tolerance_u"):
                v = None if v is None else float("inf") if v == "inf" else float(v)
            elif k == "extra":
                v = json.dumps(v) if v else None
            cols[k].append(v)
    return pa.table(cols, schema=schema)


def batches(t, total: int, size: int):
    """``total`` records in tables of ``size``, case ids made unique per tile."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    reps = -(-size // t.num_rows)
    block = pa.concat_tables([t] * reps).slice(0, size)
    rng = np.random.default_rng(0)
    done = tile = 0
    while done < total:
        n = min(size, total - done)
        b = block.slice(0, n)
        suffix = pa.array([f"-t{tile}"] * n)  # the next tile: other case ids, same mix
        ids = pc.binary_join_element_wise(b["case_id"], suffix, "")
        # the values differ from record to record as in a real run: error_u, the worst
        # element's actual and reference values, the seconds a call took
        jitter = rng.uniform(0.5, 1.5, n)
        err = pc.multiply(b["error_u"], pa.array(jitter))
        val = pa.array(rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n))
        ref = pc.cast(val, pa.string())
        act = pc.cast(pc.multiply(val, pa.array(1 + jitter * 1e-7)), pa.string())
        secs = pc.cast(pa.array(np.round(rng.exponential(1e-3, n), 6)), pa.string())
        extra = pc.binary_join_element_wise(pa.array(['{"seconds": '] * n), secs,
                                            pa.array(["}"] * n), "")  # fmt: skip
        for name, col in (("case_id", ids), ("error_u", err), ("actual", act),
                          ("reference", ref), ("extra", extra)):  # fmt: skip
            b = b.set_column(b.schema.get_field_index(name), name, col)
        yield b
        done += n
        tile += 1


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    from gradxval.output.store import StoreWriter, iter_batches
    from gradxval.output.tally import Tally

    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1 << 17)
    p.add_argument("--dir", type=Path, help="store directory (default: a temporary one)")
    p.add_argument("--report", action="store_true", help="also rebuild the summary from it")
    args = p.parse_args()
    out = args.dir or Path(tempfile.mkdtemp(prefix="gradxval-store-"))
    shutil.rmtree(out / "results", ignore_errors=True)
    t = template()
    before = rss_mb()
    tally, writer = Tally(), StoreWriter(out)
    gen = spent = agg = 0.0
    it = batches(t, args.records, args.batch)
    while True:
        t0 = time.perf_counter()
        b = next(it, None)
        gen += time.perf_counter() - t0
        if b is None:
            break
        t0 = time.perf_counter()
        tally.add_batch(b)
        t1 = time.perf_counter()
        writer.append_table(b)
        spent += time.perf_counter() - t0
        agg += t1 - t0
    writer.close()
    size = sum(f.stat().st_size for f in (out / "results").glob("*.parquet"))
    s = tally.summary()
    assert s["records"] == args.records, (s["records"], args.records)
    print(f"records {args.records:,}: aggregate + write {spent:.2f} s "
          f"({args.records / spent:,.0f} records/s; aggregation {agg:.2f} s, writing "
          f"{spent - agg:.2f} s; generating them took {gen:.2f} s)")  # fmt: skip
    print(f"  store {size / 2**20:.1f} MiB, {size / args.records:.1f} bytes/record; "
          f"peak RSS {rss_mb():.0f} MiB (with the template loaded: {before:.0f} MiB)")  # fmt: skip
    if args.report:
        t0 = time.perf_counter()
        again = Tally()
        for b in iter_batches(out):
            again.add_batch(b)
        s2 = again.summary()
        took = time.perf_counter() - t0
        same = s2["counts"] == s["counts"] and s2["matrix"] == s["matrix"]
        print(f"  summary rebuilt from the store in {took:.2f} s (counts, matrix equal: {same});"
              f" peak RSS {rss_mb():.0f} MiB")  # fmt: skip
    if args.dir is None:
        shutil.rmtree(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
