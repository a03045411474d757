"""The output directory of a run: a small database that never mixes two runs or loses one.

- ``.gradxval.lock`` is held (flock) for the whole run: a second run into the same directory
  stops at once.
- ``manifest.json`` is written when the backends are ready: settings, seed, the case list's
  digest, and every backend's version.  ``--resume`` checks it.
- the verdicts, case by case, in one of two formats (the manifest's "results"):
  ``results.jsonl`` (the default), append-only: a case's verdict lines, then a
  ``{"case_done": id}`` line, flushed; or ``results/part-*.parquet`` (``--store``, the
  columnar store of output/store.py for large campaigns), whole parts each naming the cases it
  completes.  A resume keeps the verdicts of done cases only (a case in flight when the run
  was killed is judged again).
- ``summary.json``, ``report.md`` and the manifest are written to a temporary file and renamed:
  never half-written.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from gradxval.errors import GradxvalError, UsageError

__all__ = ["RunDir", "RUN_FILES", "RESULTS", "DirectoryError", "write_atomic"]

RESULTS = ("jsonl", "parquet")  # the formats a run's verdicts are kept in

RUN_FILES = (
    "manifest.json",
    "results.jsonl",
    "results",
    "summary.json",
    "report.md",
    "report.html",
    "gradxval.log",
)
_LOCK = ".gradxval.lock"


def write_atomic(target: Path, text: str) -> Path:
    """Write a file whole or not at all (temporary file, fsync, rename)."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


class DirectoryError(UsageError):
    """The output directory cannot take this run (busy, holds another run, or not a directory)."""


class RunDir:
    """One run's output directory."""

    def __init__(self, path: str | Path, results: str | None = None):
        self.path = Path(path)
        self._lock = None
        self._results = None
        self._store = None
        if results is not None and results not in RESULTS:
            raise UsageError(f"results format {results!r}; expected one of {', '.join(RESULTS)}")
        if results == "parquet":
            from gradxval.output.store import require_pyarrow

            require_pyarrow()
        self._format = results

    # -- opening -------------------------------------------------------------------------------
    def open(self, *, resume: bool = False, overwrite: bool = False) -> None:
        """Create and lock the directory; refuse one that holds another run unless told."""
        if self.path.exists() and not self.path.is_dir():
            raise DirectoryError(f"--out {self.path} exists and is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / _LOCK, "a+", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise DirectoryError(f"--out {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.seek(0)
            who = self._lock.read().strip() or "another process"
            self._lock.close()
            self._lock = None
            raise DirectoryError(
                f"--out {self.path} is in use by another gradxval run ({who}); wait for it or "
                "choose another directory"
            ) from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"pid {os.getpid()}\n")
        self._lock.flush()
        if resume:
            if not (self.path / "manifest.json").exists():
                raise DirectoryError(f"--resume {self.path}: no manifest.json, nothing to resume")
            return
        if self.holds_run():
            if not overwrite:
                raise DirectoryError(
                    f"--out {self.path} holds another run; resume it with "
                    f"`gradxval run --resume {self.path}`, or pass --overwrite to move it aside"
                )
            self.move_aside()

    def holds_run(self) -> bool:
        return any((self.path / f).exists() for f in RUN_FILES) or any(self.path.glob("repro_*.py"))

    def move_aside(self) -> Path:
        """Move the files of the run already here into previous-<time>/ (--overwrite)."""
        dest = self.path / time.strftime("previous-%Y%m%d-%H%M%S")
        n = 1
        while dest.exists():
            dest = dest.with_name(f"{dest.name.split('.')[0]}.{n}")
            n += 1
        dest.mkdir()
        for p in self.path.iterdir():
            if p.name == _LOCK or p.name.startswith("previous-"):
                continue
            shutil.move(str(p), dest / p.name)
        return dest

    def close_results(self) -> None:
        """Write what is buffered: a store's last part (a resume keeps its cases)."""
        if self._store is not None:
            store, self._store = self._store, None
            store.close()

    def close(self) -> None:
        self.close_results()
        if self._results is not None:
            self._results.close()
            self._results = None
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # -- files -----------------------------------------------------------------------------------
    def write_atomic(self, name: str, text: str) -> Path:
        """Write a file of the run whole or not at all."""
        return write_atomic(self.path / name, text)

    def write_manifest(self, manifest: dict) -> None:
        # insertion order kept: a merged run's report lists backends as the run did
        self.write_atomic("manifest.json", json.dumps(manifest, indent=1) + "\n")

    def read_manifest(self) -> dict:
        try:
            return json.loads((self.path / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DirectoryError(f"{self.path} has no manifest.json: not a gradxval run") from None
        except json.JSONDecodeError as exc:
            raise GradxvalError(f"{self.path}/manifest.json is corrupt: {exc}") from None

    @property
    def results(self) -> str:
        """The format of this run's verdicts: as opened with, else as its manifest says, else
        'parquet' where a store is, else 'jsonl'."""
        if self._format is None:
            from gradxval.output.store import has_store

            try:
                fmt = json.loads((self.path / "manifest.json").read_text(encoding="utf-8"))
                fmt = fmt.get("results")
            except (OSError, ValueError):
                fmt = None
            self._format = fmt or ("parquet" if has_store(self.path) else "jsonl")
        return self._format

    def append_case(self, case_id: str, records: list[dict]) -> None:
        """A whole case's verdicts, then its completion (both at once, in either format)."""
        if self.results == "parquet":
            self._writer().append_case(case_id, records)
            return
        if self._results is None:
            self._results = open(self.path / "results.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        lines = [json.dumps(r, sort_keys=True) + "\n" for r in records]
        self._results.write("".join(lines) + json.dumps({"case_done": case_id}) + "\n")
        self._results.flush()

    def _writer(self):
        if self._store is None:
            from gradxval.output.store import StoreWriter, flush_seconds

            self._store = StoreWriter(self.path, name="run", flush_seconds=flush_seconds())
        return self._store

    def done(self) -> set[str]:
        """The ids of the cases whose every verdict was written."""
        if self.results == "parquet":
            from gradxval.output.store import has_store, store_done

            return store_done(self.path) if has_store(self.path) else set()
        return self.completed()[1]

    def state(self, rewrite: bool = False):
        """(streaming summary of the done cases (output.tally.Tally), their ids); ``rewrite``
        as in ``completed``.  A store's comes from its parts' metadata, not its records."""
        from gradxval.output.tally import Tally, tally_of

        if self.results == "parquet":
            from gradxval.output.store import has_store, store_state

            return store_state(self.path) if has_store(self.path) else (Tally(), set())
        records, done = self.completed(rewrite=rewrite)
        return tally_of(records), done

    def records(self, case_ids=None):
        """The verdicts of the done cases (of ``case_ids`` only, if given), one at a time."""
        if self.results == "parquet":
            from gradxval.output.store import has_store, iter_records

            if has_store(self.path):
                yield from iter_records(self.path, case_ids)
            return
        wanted = None if case_ids is None else set(case_ids)
        for r in self.completed()[0]:
            if wanted is None or r["case_id"] in wanted:
                yield r

    def completed(self, rewrite: bool = False) -> tuple[list[dict], set[str]]:
        """The verdicts of the cases whose every verdict was written, and those case ids.

        Files without case_done lines (written by the pytest plugin) count as complete.  With
        ``rewrite``, results.jsonl is replaced (atomically) by exactly those lines: the torn
        last line and a case in flight are dropped before a resume appends.  A store's records
        are read whole (``records`` streams them).
        """
        if self.results == "parquet":
            from gradxval.output.store import has_store, store_done

            if not has_store(self.path):
                return [], set()
            return list(self.records()), store_done(self.path)
        path = self.path / "results.jsonl"
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
        elif path.with_suffix(".jsonl.gz").exists():  # a committed example keeps it gzipped
            import gzip

            lines = (
                gzip.decompress(path.with_suffix(".jsonl.gz").read_bytes()).decode().splitlines()
            )
        else:
            lines = []
        objs = []
        for line in lines:
            try:
                objs.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a kill
        done = {o["case_done"] for o in objs if "case_done" in o}
        if not done and not (self.path / "manifest.json").exists():
            # written by the pytest plugin, whole at the end: every case in it is complete
            done = {o["case_id"] for o in objs if "verdict" in o}
        keep = [o for o in objs if o.get("case_done") in done or o.get("case_id") in done]
        records = [o for o in keep if "verdict" in o]
        if rewrite:
            text = "".join(json.dumps(o, sort_keys=True) + "\n" for o in keep)
            self.write_atomic("results.jsonl", text)
        return records, done
