"""results.jsonl: one line per verdict, flushed as it is made, so a crash loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

from gradxval.judge.compare import Verdict

__all__ = ["JsonlWriter", "read_jsonl"]


class JsonlWriter:
    """Append verdicts to a JSON-lines file, one flushed line each."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("w", encoding="utf-8")

    def write(self, verdict: Verdict) -> None:
        self._f.write(json.dumps(verdict.to_json(), sort_keys=True) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_jsonl(path: str | Path) -> list[dict]:
    """Read verdict records back; a truncated last line (a crash mid-write) and the
    ``case_done`` markers (rundir.py) are skipped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "verdict" in obj:
            out.append(obj)
    return out
