"""Report writers: results.jsonl (streamed), then summary.json, report.md and report.html.

REPORTS is the one list of what a run writes at its end; ``write_reports`` writes them through
any ``write(name, text)`` (a run directory's atomic writer, or a plain file writer).
"""

from __future__ import annotations

import json
from pathlib import Path

from gradxval.output.jsonl import JsonlWriter, read_jsonl
from gradxval.output.markdown import render_markdown, write_markdown
from gradxval.output.summary import SCHEMA, build_summary, environment, summarize

__all__ = [
    "JsonlWriter",
    "read_jsonl",
    "write_markdown",
    "render_markdown",
    "SCHEMA",
    "build_summary",
    "summarize",
    "environment",
    "REPORTS",
    "write_reports",
    "file_writer",
]


def _summary_json(tally, summary, registry) -> str:
    return json.dumps(summary, indent=1) + "\n"


def _html(tally, summary, registry) -> str:
    from gradxval.output.html import render_html

    return render_html(tally, summary, registry)


# (file name, render(tally, summary, registry) -> text), in the order they are written; the
# tally is the run's streaming summary (output.tally.Tally), never the whole list of records
REPORTS = (
    ("summary.json", _summary_json),
    ("report.md", render_markdown),
    ("report.html", _html),
)


def write_reports(write, tally, summary: dict, registry) -> None:
    """Render and write every report: ``write(name, text)``."""
    for name, render in REPORTS:
        write(name, render(tally, summary, registry))


def file_writer(directory: str | Path):
    """A ``write(name, text)`` into a plain directory."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return lambda name, text: (d / name).write_text(text, encoding="utf-8")
