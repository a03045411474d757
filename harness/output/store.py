"""A columnar result store: verdict records in compressed Parquet part files (pyarrow).

    DIR/results/part-<writer>-<n>.parquet     whole cases, zstd

Records go into column buffers case by case, and a buffer becomes one part once it holds
PART_ROWS records or FLUSH_SECONDS have passed, written to a temporary name and renamed: a
reader never sees half a part, a crash loses at most the buffer (those cases are judged again
on resume), and writers with different names (Dask workers, shards) can write into one
directory without talking to each other.  Each part carries, in its Parquet key-value
metadata, the ids of the cases it completes (``gradxval.cases``) and the streaming summary of
those cases (``gradxval.tally``, output.tally.Tally.to_state), each as JSON compressed with
zstd and base64-encoded ("<bytes>:<base64>"): resuming, rebuilding the report
and merging shards read the parts' footers, not their records.  Low-cardinality strings
(backend, method, dtype, verdict, ...) are dictionary-encoded by Parquet, so a record costs
tens of bytes on disk instead of the ~540 of its JSON line (benchmarks/campaign_scale.py).
Query it with pyarrow or DuckDB, e.g. every torch bfloat16 disagreement in the saturated
regime:

    duckdb -c "select * from 'DIR/results/*.parquet' where backend = 'torch'
               and dtype = 'bfloat16' and regime = 'saturated' and verdict = 'disagree'"

``export_jsonl`` writes the records back as results.jsonl lines (``gradxval export``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from gradxval.errors import UsageError

__all__ = ["StoreWriter", "iter_records", "records_of", "export_jsonl",
           "import_jsonl", "table_of", "pack_batch", "WorkerStore", "store_state", "store_done",
           "iter_dtype",
           "has_store", "flush_seconds", "PART_ROWS", "FLUSH_SECONDS", "FLUSH_ENV",
           "require_pyarrow"]  # fmt: skip

PART_ROWS = 1 << 16  # records per part file: ~65k, ~20 MB in memory before it is written
FLUSH_SECONDS = 30.0  # and at least this often, so that a kill loses little work
FLUSH_ENV = "GRADXVAL_STORE_FLUSH_SECONDS"  # another interval for a run's store (seconds)
TALLY_KEY, CASES_KEY = b"gradxval.tally", b"gradxval.cases"
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
    return None if v is None else float(v)  # "inf" parses


class StoreWriter:
    """Append records (dicts as in results.jsonl); ``close`` writes what is buffered."""

    def __init__(self, path: str | Path, name: str = "w0", part_rows: int = PART_ROWS,
                 flush_seconds: float = FLUSH_SECONDS):  # fmt: skip
        require_pyarrow()
        self.dir = Path(path) / "results"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name, self.part_rows, self.flush_seconds = name, part_rows, flush_seconds
        self.schema = _schema()
        taken = [int(p.stem.rsplit("-", 1)[1]) for p in self.dir.glob(f"part-{name}-*.parquet")]
        self._n = max(taken, default=-1) + 1  # appending: after the last part, never over one
        self._lock = threading.RLock()  # a Dask worker's flush comes from another thread
        self._reset()

    @contextlib.contextmanager
    def _whole(self):
        """One step at a time, and whole: SIGINT and SIGTERM wait until it is done (an
        interrupt between a case's rows and its id would write half a case; inside a flush,
        lose the buffer), and so does another thread."""
        with self._lock:
            if threading.current_thread() is threading.main_thread():
                with _signals_deferred():
                    yield
                return
            mask = getattr(signal, "pthread_sigmask", None)  # a worker thread: the kernel's
            old = mask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}) if mask else None
            try:
                yield
            finally:
                if mask:
                    mask(signal.SIG_SETMASK, old)

    def _reset(self) -> None:
        from gradxval.output.tally import Tally

        self._cols: dict[str, list] = {k: [] for k in self.schema.names}
        self._tables: list = []  # whole batches, as workers built them (append_batch)
        self._rows = 0
        self._cases: list[str] = []
        self._tally = Tally()
        self._since = time.monotonic()

    def append_case(self, case_id: str, records: list[dict]) -> None:
        """A whole case: its records, its id among the part's completed cases, and its share
        of the part's summary.  The part is written once full, or once FLUSH_SECONDS old when
        the next case comes."""
        with self._whole():
            for r in records:
                self._row(r)
            self._cases.append(case_id)
            self._tally.add_case(records)
            self._maybe_flush()

    def append_batch(self, case_ids: list[str], table, tally) -> None:
        """Whole cases at once, as a worker made them: their records as a table of the store's
        schema (``table_of``) and their streaming summary.  Nothing per record happens here:
        the client of a cluster only concatenates tables and merges summaries."""
        with self._whole():
            self._tables.append(table)
            self._rows += table.num_rows
            self._cases.extend(case_ids)
            self._tally.merge(tally)
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        if self._rows >= self.part_rows or time.monotonic() - self._since >= self.flush_seconds:
            self.flush()

    def append(self, r: dict) -> None:
        """One record, outside any case (a part without case metadata)."""
        self._row(r)
        if self._rows >= self.part_rows:
            self.flush()

    def _row(self, r: dict) -> None:
        _add_row(self._cols, r)
        self._rows += 1

    def flush(self) -> None:
        with self._whole():
            self._flush()

    def _flush(self) -> None:
        if not self._rows and not self._cases:
            return
        pa = require_pyarrow()
        table = pa.table(self._cols, schema=self.schema)
        if self._tables:
            table = pa.concat_tables([table, *self._tables])
        if self._cases:
            table = table.replace_schema_metadata({
                TALLY_KEY: _pack_json(self._tally.to_state()),
                CASES_KEY: _pack_json(self._cases),
            })  # fmt: skip
        self._write(table)
        self._reset()  # after the part is on disk: a failed write keeps the buffer

    def _write(self, table) -> None:
        import pyarrow.parquet as pq

        final = self.dir / f"part-{self.name}-{self._n:06d}.parquet"
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True)
        with open(tmp, "rb") as f:  # on disk before it has its name: no empty part after a crash
            os.fsync(f.fileno())
        try:
            os.link(tmp, final)  # fails where the part exists: another writer of this name
        except FileExistsError:
            raise UsageError(f"{final} exists: two store writers named {self.name!r}") from None
        finally:
            tmp.unlink()
        self._n += 1

    def close(self) -> None:
        self.flush()


@contextlib.contextmanager
def _signals_deferred():
    """In the main thread: SIGINT and SIGTERM are recorded, then raised again once the block
    is done.  A signal mask would not do: the kernel hands a process-directed signal to any
    thread that does not block it (torch's and jax's pools), and CPython then runs the
    handler in the main thread at once."""
    got: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda n, frame: got.append(n)) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for n in got:
            signal.raise_signal(n)


def flush_seconds() -> float:
    """The part interval of a run's store: FLUSH_ENV, else FLUSH_SECONDS."""

    raw = os.environ.get(FLUSH_ENV)
    try:
        value = FLUSH_SECONDS if raw is None else float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UsageError(f"{FLUSH_ENV}={raw!r}: expected a number of seconds >= 0")
    return value


def _pack_json(obj) -> bytes:
    """JSON, zstd-compressed and base64-encoded for a Parquet footer: "<size>:<base64>"."""
    import base64

    pa = require_pyarrow()
    raw = json.dumps(obj).encode()
    packed = pa.Codec("zstd").compress(raw, asbytes=True)
    return f"{len(raw)}:".encode() + base64.b64encode(packed)


def _unpack_json(value: bytes):
    import base64

    pa = require_pyarrow()
    size, _, data = value.partition(b":")
    raw = pa.Codec("zstd").decompress(base64.b64decode(data), int(size), asbytes=True)
    return json.loads(raw)


def _add_row(cols: dict[str, list], r: dict) -> None:
    for k in STRINGS:
        cols[k].append(r.get(k))
    cols["error_u"].append(_float(r.get("error_u")))
    cols["tolerance_u"].append(_float(r.get("tolerance_u")))
    cols["worst_index"].append(r.get("worst_index"))
    extra = r.get("extra")
    cols["extra"].append(json.dumps(extra) if extra else None)


def table_of(records: list[dict]):
    """Records as a pyarrow table of the store's schema (a worker's batch)."""
    pa = require_pyarrow()
    schema = _schema()
    cols: dict[str, list] = {k: [] for k in schema.names}
    for r in records:
        _add_row(cols, r)
    return pa.table(cols, schema=schema)


def pack_batch(results: list[tuple[str, list[dict]]]):
    """In a worker: a batch's [(case id, records), ...] as (table, streaming summary), what
    ``StoreWriter.append_batch`` takes (run.dask_executor's ``pack``)."""
    from gradxval.output.tally import Tally

    tally = Tally()
    for _, records in results:
        tally.add_case(records)
    return table_of([r for _, records in results for r in records]), tally


_WORKER_WRITERS: dict = {}  # per worker process: (store, run token) -> its own StoreWriter
_CLOSED: set = set()  # (store, run token) already flushed: a late task's cases are dropped


class WorkerStore:
    """Workers write their own parts (run.dask_executor's ``pack`` and ``finish``).

    Called in a Dask worker with a batch's [(case id, records), ...], it packs the batch and
    appends it to this process's own writer of the store at ``path`` (shared storage: every
    worker and the client see it), named after the host, the process and the run, so workers
    never write over each other.  Only the number of records goes back to the client.
    ``flush`` (run on every worker at the end) writes what each holds.  A worker that dies
    loses its unwritten cases: the client reads which cases the store holds, not which tasks
    finished.
    """

    def __init__(self, path: str | Path, token: str, flush_every: float):
        self.path, self.token, self.flush_every = str(path), token, flush_every

    def __call__(self, results: list[tuple[str, list[dict]]]) -> int:
        key = (self.path, self.token)
        if key in _CLOSED:  # a task still running when the run ended: the client took no
            return 0  # result of it, and runs its cases again where the store lacks them
        w = _WORKER_WRITERS.get(key)
        if w is None:
            name = f"{socket.gethostname()}.{os.getpid()}.{self.token}".replace("-", "_")
            w = _WORKER_WRITERS[key] = StoreWriter(self.path, name, flush_seconds=self.flush_every)
        table, tally = pack_batch(results)
        w.append_batch([cid for cid, _ in results], table, tally)
        return table.num_rows

    def flush(self) -> bool:
        _CLOSED.add((self.path, self.token))
        w = _WORKER_WRITERS.pop((self.path, self.token), None)
        if w is not None:
            w.close()
        return w is not None


def _parts(path: str | Path) -> list[Path]:
    parts = sorted((Path(path) / "results").glob("part-*.parquet"))
    if not parts:
        raise UsageError(f"{path}: no result store (results/part-*.parquet)")
    return parts


def _footer(part: Path) -> dict:
    """A part's key-value metadata; a part that cannot be read is a usage error naming it."""
    pq = _parquet()
    try:
        return pq.read_schema(part).metadata or {}
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise UsageError(f"{part}: not a readable Parquet part ({exc}); move it out of "
                         "results/: its cases are judged again on --resume") from None  # fmt: skip


def _parquet():
    require_pyarrow()
    import pyarrow.parquet as pq

    return pq


def _ownership(path: str | Path) -> list[tuple[Path, dict, set[str]]]:
    """Each part with its footer and the case ids it must not count: cases an earlier part
    (in name order) already completed.  A Dask worker lost between writing a part and
    reporting its task, or a task still running when its client was killed, can write a batch
    twice; each case counts once.  Parts without case ids (records appended one by one) may
    cut a case in two and drop nothing."""
    seen: set[str] = set()
    out = []
    for part in _parts(path):
        meta = _footer(part)
        cases = _unpack_json(meta[CASES_KEY]) if CASES_KEY in meta else ()
        out.append((part, meta, seen.intersection(cases)))
        seen.update(cases)
    return out


def _rows(part: Path, drop: set[str], columns=None, filters=None):
    """A part's table without the rows of ``drop``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pq = _parquet()
    t = pq.read_table(part, columns=columns, filters=filters)
    if drop:
        t = t.filter(pc.invert(pc.is_in(t["case_id"], pa.array(sorted(drop)))))
    return t


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


def records_of(batch) -> list[dict]:
    """A pyarrow batch or table of the store's schema as records (results.jsonl's dicts)."""
    return [_record(row) for row in batch.to_pylist()]


def iter_records(path: str | Path, case_ids=None) -> Iterator[dict]:
    """The records, as results.jsonl holds them; only those of ``case_ids`` if given."""
    filters = None
    if case_ids is not None:
        import pyarrow.compute as pc

        filters = pc.field("case_id").isin(list(case_ids))
    for part, _, drop in _ownership(path):
        for batch in _rows(part, drop, filters=filters).to_batches(1 << 16):
            yield from records_of(batch)


def iter_dtype(path: str | Path, dtype: str, columns: list[str]):
    """One dtype's records of a store, these columns only, as one Arrow table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = list(dict.fromkeys(["case_id", *columns]))
    tables = [_rows(part, drop, cols, pc.field("dtype") == dtype).select(columns)
              for part, _, drop in _ownership(path)]  # fmt: skip
    return pa.concat_tables(tables)


def has_store(path: str | Path) -> bool:
    return any((Path(path) / "results").glob("part-*.parquet"))


def store_done(path: str | Path) -> set[str]:
    """The ids of the cases a store completes (its parts' metadata; else the cases it holds)."""
    done: set[str] = set()
    for part, meta, _ in _ownership(path):
        if CASES_KEY in meta:
            done.update(_unpack_json(meta[CASES_KEY]))
        else:
            done.update(_rows(part, set(), ["case_id"])["case_id"].to_pylist())
    return done


def store_state(path: str | Path):
    """(Tally, completed case ids) of a store, from its parts' footers.  A part without one (a
    store of records only), or one that repeats cases of an earlier part, is tallied from its
    rows (its own cases only): memory bounded by one part."""
    from gradxval.output.tally import Tally, group_cases

    tally, done = Tally(), set()
    for part, meta, drop in _ownership(path):
        if TALLY_KEY in meta and not drop:
            try:
                saved = Tally.from_state(_unpack_json(meta[TALLY_KEY]))
            except (KeyError, TypeError, ValueError):
                saved = None  # written by an older gradxval: tallied from its rows below
            if saved is not None:
                tally.merge(saved)
                done.update(_unpack_json(meta[CASES_KEY]))
                continue
        for rs in group_cases(records_of(_rows(part, drop))):
            tally.add_case(rs)
            done.add(rs[0]["case_id"])
        if CASES_KEY in meta:  # a case with no record at all is still done
            done.update(set(_unpack_json(meta[CASES_KEY])) - drop)
    return tally, done


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
    from gradxval.output.tally import group_cases

    w = StoreWriter(path, flush_seconds=math.inf)
    n = 0
    for rs in group_cases(records):
        w.append_case(rs[0]["case_id"], rs)
        n += len(rs)
    w.close()
    return n
