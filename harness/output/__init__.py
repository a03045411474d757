"""Report writers: results.jsonl (streamed), summary.json and report.md (at the end)."""

from __future__ import annotations

from gradxval.output.jsonl import JsonlWriter, read_jsonl
from gradxval.output.markdown import render_markdown, write_markdown
from gradxval.output.summary import SCHEMA, build_summary, environment

__all__ = [
    "JsonlWriter",
    "read_jsonl",
    "write_markdown",
    "render_markdown",
    "SCHEMA",
    "build_summary",
    "environment",
]
