"""What one client pays per verdict record: writing results.jsonl, and holding it for the summary.

    python scripts/client_io_benchmark.py   # over reports/default's records

Writes every record of the committed default run as the client does (json.dumps with sorted
keys, write, flush per line) to a temporary file, and measures the memory of the records kept
as dicts (tracemalloc).  docs/scale.md scales these to a 10^6-case campaign.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "reports" / "default" / "results.jsonl.gz"


def main() -> int:
    lines = gzip.decompress(SOURCE.read_bytes()).decode().splitlines()
    records = [json.loads(x) for x in lines if '"verdict"' in x]
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    t0 = time.perf_counter()
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
            f.flush()
    seconds = time.perf_counter() - t0
    size = os.path.getsize(path)
    os.unlink(path)
    tracemalloc.start()
    kept = [json.loads(json.dumps(r)) for r in records]
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    n = len(records)
    print(
        f"{n} records: {size / n:.0f} bytes per line, {n / seconds:,.0f} lines/s "
        f"({size / seconds / 1e6:.0f} MB/s), {held / n:.0f} bytes per record held in memory"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
