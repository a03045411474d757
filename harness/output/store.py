"""A columnar result store: verdict records in compressed Parquet part files (pyarrow).

    DIR/results/part-<writer>-<n>.parquet     one part per PART_ROWS records, zstd

Records go into column buffers as they come and a full buffer becomes one part, written to a
temporary name and renamed: a reader never sees half a part, a crash loses at most the buffer,
and writers with different names (Dask workers, shards) can write into one directory without
talking to each other.  Low-cardinality strings (backend, method, dtype, verdict, ...) are
dictionary-encoded by Parquet, so a record costs tens of bytes on disk instead of the ~540 of
its JSON line (benchmarks/campaign_scale.py).  Query it with pyarrow or DuckDB, e.g. every torch
bfloat16 disagreement in the saturated regime:

    duckdb -c "select * from 'DIR/results/*.parquet' where backend = 'torch'
               and dtype = 'bfloat16' and regime = 'saturated' and verdict = 'disagree'"

``export_jsonl`` writes the records back as results.jsonl lines (``gradxval export``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

from gradxval.errors import UsageError

__all__ = ["StoreWriter", "iter_batches", "iter_records", "export_jsonl", "import_jsonl",
           "PART_ROWS", "require_pyarrow"]  # fmt: skip

PART_ROWS = 1 << 17  # records per part file: ~131k, a few MB in memory before it is written
STRINGS = ("case_id", "backend", "method", "quantity", "dtype", "regime", "verdict",
           "classification", "message", "attribution", "reproduce", "actual", "reference",
           "shrunk_case", "standalone")  # fmt: skip
FLOATS = ("error_u", "tolerance_u")


def require_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError('the result store needs pyarrow: pip install "gradxval[store]"') from None
    import pyarrow as pa

    return pa


def _schema():
    pa = require_pyarrow()
    return pa.schema(
        [(k, pa.string()) for k in STRINGS]
        + [(k, pa.float64()) for k in FLOATS]
        + [("worst_index", pa.list_(pa.int32())), ("extra", pa.string())]
    )


def _float(v):
    if v is None:
        return None
    return math.inf if v == "inf" else float(v)


class StoreWriter:
    """Append records (dicts as in results.jsonl); ``close`` writes what is buffered."""

    def __init__(self, path: str | Path, name: str = "w0", part_rows: int = PART_ROWS):
        require_pyarrow()
        self.dir = Path(path) / "results"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name, self.part_rows = name, part_rows
        self.schema = _schema()
        taken = [int(p.stem.rsplit("-", 1)[1]) for p in self.dir.glob(f"part-{name}-*.parquet")]
        self._n = max(taken, default=-1) + 1  # appending: after the last part, never over one
        self._reset()

    def _reset(self) -> None:
        self._cols: dict[str, list] = {k: [] for k in self.schema.names}
        self._rows = 0

    def append(self, r: dict) -> None:
        cols = self._cols
        for k in STRINGS:
            cols[k].append(r.get(k))
        cols["error_u"].append(_float(r.get("error_u")))
        cols["tolerance_u"].append(_float(r.get("tolerance_u")))
        cols["worst_index"].append(r.get("worst_index"))
        extra = r.get("extra")
        cols["extra"].append(json.dumps(extra) if extra else None)
        self._rows += 1
        if self._rows >= self.part_rows:
            self.flush()

    def append_table(self, table) -> None:
        """Append a pyarrow table of this schema as it is (one part): the bulk path."""
        self.flush()
        self._write(table.select(self.schema.names).cast(self.schema))

    def flush(self) -> None:
        if not self._rows:
            return
        pa = require_pyarrow()
        table = pa.table(self._cols, schema=self.schema)
        self._reset()
        self._write(table)

    def _write(self, table) -> None:
        import pyarrow.parquet as pq

        final = self.dir / f"part-{self.name}-{self._n:06d}.parquet"
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True)
        try:
            os.link(tmp, final)  # fails where the part exists: another writer of this name
        except FileExistsError:
            raise UsageError(f"{final} exists: two store writers named {self.name!r}") from None
        finally:
            tmp.unlink()
        self._n += 1

    def close(self) -> None:
        self.flush()


def _parts(path: str | Path) -> list[Path]:
    parts = sorted((Path(path) / "results").glob("part-*.parquet"))
    if not parts:
        raise UsageError(f"{path}: no result store (results/part-*.parquet)")
    return parts


def iter_batches(path: str | Path, columns=None) -> Iterator:
    """The store's record batches, part by part: memory bounded by one batch."""
    import pyarrow.parquet as pq

    require_pyarrow()
    for part in _parts(path):
        yield from pq.ParquetFile(part).iter_batches(batch_size=1 << 16, columns=columns)


def _record(row: dict) -> dict:
    """A stored row as results.jsonl holds it (error_u 'inf' as a string, extra a dict)."""
    for k in FLOATS:
        if row[k] is not None and math.isinf(row[k]):
            row[k] = "inf"
    row["extra"] = json.loads(row["extra"]) if row["extra"] else {}
    for k in ("shrunk_case", "standalone"):
        if row.get(k, 0) is None:
            del row[k]
    return row


def iter_records(path: str | Path) -> Iterator[dict]:
    """The records, as results.jsonl holds them."""
    for batch in iter_batches(path):
        for row in batch.to_pylist():
            yield _record(row)


def export_jsonl(path: str | Path, out) -> int:
    """Write the store's records as JSON lines to ``out`` (a text file); returns the count."""
    n = 0
    for r in iter_records(path):
        out.write(json.dumps(r) + "\n")
        n += 1
    return n


def import_jsonl(records, path: str | Path) -> int:
    """Write verdict records (results.jsonl's, case_done markers skipped) into a new store."""
    if list((Path(path) / "results").glob("part-*.parquet")):
        raise UsageError(f"{path}/results already holds a store; move it away to export again")
    w = StoreWriter(path)
    n = 0
    for r in records:
        if "case_done" in r:
            continue
        w.append(r)
        n += 1
    w.close()
    return n
