"""--shard I/N and gradxval merge: shards are disjoint and stable, and their merge equals the
unsharded run, byte for byte except timings."""

from __future__ import annotations

import json
import re

import pytest
from gradxval.campaign import parse_shard, shard_cases
from gradxval.cli import main
from gradxval.errors import UsageError
from gradxval.model.cases import sample_cases

ARGS = [
    "run",
    "--backends",
    "numpy,mutants:FactorTwo",
    "--cases",
    "30",
    "--seed",
    "2",
    "--in-process",  # what is tested is the split and the merge, not the workers
    "--quiet",
    "--no-follow-up",
]


def test_shards_are_disjoint_stable_and_cover_the_list():
    cases = sample_cases(47, 1)
    parts = [shard_cases(cases, (i, 4)) for i in range(1, 5)]
    ids = [c.id for p in parts for c in p]
    assert sorted(ids) == sorted(c.id for c in cases) and len(ids) == len(set(ids))
    assert [c.id for c in shard_cases(sample_cases(47, 1), (2, 4))] == [c.id for c in parts[1]]
    for bad in ("0/4", "5/4", "x", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def _untimed(text: str) -> str:
    text = re.sub(r'"seconds": [0-9.]+', '"seconds": null', text)
    text = re.sub(r"wall time [0-9.]+ s", "wall time None s", text)
    text = re.sub(r"cases in [0-9.]+ s<", "cases in None s<", text)
    return re.sub(r"<td>seconds</td><td>[0-9.]+</td>", "<td>seconds</td><td>None</td>", text)


def test_merge_of_shards_equals_the_unsharded_run(tmp_path, capsys):
    whole = tmp_path / "whole"
    assert main([*ARGS, "--out", str(whole)]) == 1
    shards = [tmp_path / f"s{i}" for i in (1, 2, 3)]
    for i, d in enumerate(shards, 1):
        assert main([*ARGS, "--shard", f"{i}/3", "--out", str(d)]) == 1
    merged = tmp_path / "merged"
    assert main(["merge", str(merged), *map(str, shards)]) == 1
    for name in ("summary.json", "report.md", "report.html"):
        a = _untimed((whole / name).read_text())
        b = _untimed((merged / name).read_text())
        assert a == b, name
    # a missing shard, a shard twice, or shards of other settings are refused
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "m2"), str(shards[0]), str(shards[1])]) == 2
    assert "a shard is missing" in capsys.readouterr().err
    assert (
        main(["merge", str(tmp_path / "m3"), str(shards[0]), str(shards[0]), str(shards[1])]) == 2
    )
    other = tmp_path / "other"
    assert main(
        [
            *ARGS[:-5],
            "--seed",
            "3",
            "--in-process",
            "--quiet",
            "--no-follow-up",
            "--shard",
            "3/3",
            "--out",
            str(other),
        ]
    ) in (0, 1)
    assert main(["merge", str(tmp_path / "m4"), str(shards[0]), str(shards[1]), str(other)]) == 2
    assert "other settings" in capsys.readouterr().err
    assert json.loads((merged / "manifest.json").read_text())["shard"] is None
