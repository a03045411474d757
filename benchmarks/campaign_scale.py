"""A campaign's store at scale: synthetic worker batches through the real writing path.

    python benchmarks/campaign_scale.py --records 1000000 --report
    python benchmarks/campaign_scale.py --records 27000000 --report

With ``gradxval run --executor dask --store`` each Dask worker writes its own parts
(gradxval.output.store.WorkerStore): a finished task (8 cases of one shape and dtype) is packed
(pack_batch: an Arrow table of its records and their streaming summary, output.tally.Tally) and
appended to the worker's StoreWriter (``append_batch``: concatenate, merge the summary; a
Parquet part with the summary of its cases in its footer every PART_ROWS records).  The
client gets a record count per task, and at the end reads the parts' footers (store_state).

Measured here, in one process: the writing path of one worker (append_batch, timed; packing
is the worker's judging work and is not), then the client's end of the run (store_state over
every part), and with --report the three reports from it (`gradxval report`).  The batches
are the default run's (reports/default/results.jsonl.gz: its real mix of backends, methods,
dtypes, verdicts and messages), packed once, then tiled with fresh case ids and per-record
values (error_u, the worst element's values, call times) so the store compresses as a real
one.  With --per-case, also the local executor's path (one case at a time).  Run each size
in its own process: peak RSS is per process.
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


def worker_batches():
    """The default run's cases packed in tasks of 8 (as run.dask_executor batches them)."""
    from gradxval.output.store import pack_batch
    from gradxval.output.tally import group_cases
    from gradxval.run.dask_executor import BATCH

    recs = [json.loads(line) for line in gzip.open(ROOT / "reports/default/results.jsonl.gz", "rt")]
    cases = [(rs[0]["case_id"], rs) for rs in group_cases(recs)]
    out = []
    for i in range(0, len(cases), BATCH):
        chunk = cases[i : i + BATCH]
        table, tally = pack_batch(chunk)
        out.append(([c for c, _ in chunk], table, tally))
    return out


def tiles(batches, total: int):
    """At least ``total`` records of whole batches, each tile with fresh case ids and
    per-record values."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(0)
    done = tile = 0
    while done < total:
        for ids, b, tally in batches:
            if done >= total:
                return
            n = b.num_rows  # whole batches: the last tile may pass total by a few records
            suffix = f"{tile}"  # "...-s123" -> "...-s1230": another case id, the same mix
            new_ids = pc.binary_join_element_wise(b["case_id"], pa.array([suffix] * n), "")
            jitter = rng.uniform(0.5, 1.5, n)
            val = pa.array(rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n))
            act = pc.cast(pc.multiply(val, pa.array(1 + jitter * 1e-7)), pa.string())
            secs = pc.cast(pa.array(np.round(rng.exponential(1e-3, n), 6)), pa.string())
            extra = pc.binary_join_element_wise(pa.array(['{"seconds": '] * n), secs,
                                                pa.array(["}"] * n), "")  # fmt: skip
            err = pc.multiply(b["error_u"], pa.array(jitter))
            ref = pc.cast(val, pa.string())
            for name, col in (("case_id", new_ids), ("actual", act), ("error_u", err),
                              ("reference", ref), ("extra", extra)):  # fmt: skip
                b = b.set_column(b.schema.get_field_index(name), name, col)
            yield [i + suffix for i in ids], b, tally
            done += n
        tile += 1


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    from gradxval.output.store import StoreWriter, store_state

    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--dir", type=Path, help="run directory (default: a temporary one)")
    p.add_argument("--report", action="store_true", help="also rebuild the reports from it")
    p.add_argument("--per-case", action="store_true", help="also the one-case-at-a-time path")
    args = p.parse_args()
    out = args.dir or Path(tempfile.mkdtemp(prefix="gradxval-store-"))
    shutil.rmtree(out, ignore_errors=True)
    batches = worker_batches()
    before = rss_mb()
    w = StoreWriter(out, "worker0")
    spent = gen = 0.0
    n = 0
    it = tiles(batches, args.records)
    while True:
        t0 = time.perf_counter()
        item = next(it, None)
        gen += time.perf_counter() - t0
        if item is None:
            break
        t0 = time.perf_counter()
        w.append_batch(*item)
        spent += time.perf_counter() - t0
        n += item[1].num_rows
    t0 = time.perf_counter()
    w.close()
    spent += time.perf_counter() - t0
    size = sum(f.stat().st_size for f in (out / "results").glob("*.parquet"))
    parts = len(list((out / "results").glob("*.parquet")))
    print(f"records {n:,}: a worker's writing path {spent:.2f} s ({n / spent:,.0f} records/s; "
          f"making the synthetic batches took {gen:.2f} s, not counted)")  # fmt: skip
    print(f"  store {size / 2**20:.1f} MiB in {parts} parts, {size / n:.1f} bytes/record; peak "
          f"RSS {rss_mb():.0f} MiB (with the template batches made: {before:.0f} MiB)")  # fmt: skip
    t0 = time.perf_counter()
    tally, done = store_state(out)
    took = time.perf_counter() - t0
    assert tally.records == n >= args.records, (tally.records, n)
    print(f"  the client's end of the run, the summary from {parts} parts' footers: {took:.2f} s "
          f"({len(done):,} cases, {n / took:,.0f} records/s); peak RSS "
          f"{rss_mb():.0f} MiB")  # fmt: skip
    if args.report:
        _report(out, tally)
    if args.per_case:
        _per_case(min(n, 200_000))
    if args.dir is None:
        shutil.rmtree(out)
    return 0


def _report(out: Path, tally) -> None:
    """summary.json, report.md and report.html from the store alone (gradxval report)."""
    from gradxval.output import summarize, write_reports
    from gradxval.output.rundir import RunDir
    from gradxval.output.store import store_state

    t0 = time.perf_counter()
    again, done = store_state(out)
    run = {"cases": len(done), "planned_cases": len(done), "seed": 0, "seconds": None}
    env = {"python": sys.version.split()[0], "platform": "", "gradxval": "", "backends": {},
           "flags": {}}  # fmt: skip
    summary = summarize(again, env, run)
    write_reports(RunDir(out).write_atomic, again, summary, None)
    took = time.perf_counter() - t0
    print(f"  summary.json, report.md and report.html rebuilt from the store in {took:.2f} s "
          f"(verdict counts {summary['counts']}); peak RSS {rss_mb():.0f} MiB")  # fmt: skip


def _per_case(total: int) -> None:
    """The local executor's client: one case at a time, tallied in the client."""
    from gradxval.output.rundir import RunDir
    from gradxval.output.tally import group_cases

    recs = [json.loads(line) for line in gzip.open(ROOT / "reports/default/results.jsonl.gz", "rt")]
    cases = group_cases(recs)
    d = Path(tempfile.mkdtemp(prefix="gradxval-case-"))
    rd = RunDir(d / "run", results="parquet")
    rd.open()
    n, tile, spent = 0, 0, 0.0
    while n < total:
        for rs in cases:
            rs = [dict(r, case_id=f"{r['case_id']}{tile}") for r in rs]
            t0 = time.perf_counter()
            rd.append_case(rs[0]["case_id"], rs)
            spent += time.perf_counter() - t0
            n += len(rs)
        tile += 1
    t0 = time.perf_counter()
    rd.close()
    spent += time.perf_counter() - t0
    print(f"  one case at a time (the local executor's client): {n:,} records in {spent:.2f} s "
          f"({n / spent:,.0f} records/s)")  # fmt: skip
    shutil.rmtree(d)


if __name__ == "__main__":
    sys.exit(main())
