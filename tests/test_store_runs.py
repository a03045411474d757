"""A run into the columnar store (``gradxval run --store``) is the same run as into
results.jsonl: the same summary and verdicts; killed at any moment and resumed, nothing lost or
judged twice; shards merge by their parts' footers; report, diff and export read it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason='the store needs pyarrow: pip install "gradxval[store]"')

from gradxval.cli import main  # noqa: E402
from gradxval.output.rundir import RunDir  # noqa: E402
from gradxval.output.store import FLUSH_ENV  # noqa: E402

pytestmark = pytest.mark.waits  # first in the run: see conftest.py

TESTS = str(Path(__file__).parent)
RUN = ["run", "--backends", "numpy,mutants:FactorTwo", "--dtypes", "float32,float64,bfloat16",
       "--cases", "30", "--seed", "4", "--quiet", "--no-follow-up"]  # fmt: skip


def _summary(d: Path) -> dict:
    s = json.loads((d / "summary.json").read_text())
    for k in ("seconds", "resumed", "logs", "rebuilt"):
        s["run"].pop(k, None)
    s.pop("environment")
    return s


def _verdicts(d: Path) -> Counter:
    """Every verdict of a run (timings aside), counted: a duplicate shows."""
    out = Counter()
    for r in RunDir(d).records():
        (r.get("extra") or {}).pop("seconds", None)
        out[json.dumps(r, sort_keys=True)] += 1
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, monkeypatch_module):
    d = tmp_path_factory.mktemp("runs")
    monkeypatch_module.setenv(FLUSH_ENV, "0")  # a part per case: several parts
    assert main([*RUN, "--in-process", "--out", str(d / "jsonl")]) == 1
    assert main([*RUN, "--in-process", "--store", "--out", str(d / "store")]) == 1
    return d


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_a_store_run_is_the_jsonl_run(runs):
    store = runs / "store"
    assert not (store / "results.jsonl").exists()
    assert len(list((store / "results").glob("part-*.parquet"))) > 1
    assert json.loads((store / "manifest.json").read_text())["results"] == "parquet"
    assert _summary(store) == _summary(runs / "jsonl")
    assert _verdicts(store) == _verdicts(runs / "jsonl")
    for name in ("report.md", "report.html"):
        assert (store / name).stat().st_size > 1000


def test_report_rebuilds_from_the_parts_footers(runs, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(runs / "store", d)
    (d / "summary.json").unlink()
    assert main(["report", str(d)]) == 1
    assert _summary(d) == _summary(runs / "store")


def test_diff_and_export_read_the_store(runs, tmp_path, capsys):
    assert main(["diff", str(runs / "store"), str(runs / "jsonl")]) == 0
    out = tmp_path / "all.jsonl"
    assert main(["export", str(runs / "store"), "--jsonl", str(out)]) == 0
    assert len(out.read_text().splitlines()) == sum(_verdicts(runs / "jsonl").values())
    base = tmp_path / "base"
    args = [a for a in RUN if a != "numpy,mutants:FactorTwo"]
    args[args.index("--backends") + 1 : args.index("--backends") + 1] = ["numpy"]
    assert main([*args, "--in-process", "--store", "--out", str(base)]) == 0
    capsys.readouterr()
    assert main(["diff", str(base), str(runs / "store")]) == 1
    assert "mutants:FactorTwo/closed_form" in capsys.readouterr().out
    # matched in Arrow, the store's diff says what the records' diff says
    from gradxval.output.diff import diff_runs

    base_jsonl = tmp_path / "base_jsonl"
    assert main([*args, "--in-process", "--out", str(base_jsonl)]) == 0
    a = diff_runs(base, runs / "store").to_json()
    b = diff_runs(base_jsonl, runs / "jsonl").to_json()
    assert a["new_problems"] and {k: v for k, v in a.items() if k not in ("base", "new")} == {
        k: v for k, v in b.items() if k not in ("base", "new")
    }


def test_store_shards_merge_as_the_whole_run(runs, tmp_path, monkeypatch_module):
    shards = [tmp_path / f"s{i}" for i in (1, 2, 3)]
    for i, d in enumerate(shards, 1):
        assert main([*RUN, "--in-process", "--store", "--shard", f"{i}/3", "--out", str(d)]) == 1
    merged = tmp_path / "merged"
    assert main(["merge", str(merged), *map(str, shards)]) == 1
    assert _summary(merged) == _summary(runs / "store") | {"run": _summary(merged)["run"]}
    assert _verdicts(merged) == _verdicts(runs / "store")
    # a jsonl shard does not merge with store shards
    other = tmp_path / "j1"
    assert main([*RUN, "--in-process", "--shard", "1/3", "--out", str(other)]) == 1
    assert main(["merge", str(tmp_path / "bad"), str(other), *map(str, shards[1:])]) == 2


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_then_resume_loses_nothing_and_judges_nothing_twice(runs, tmp_path, trial):
    d = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    env[FLUSH_ENV] = "0"  # a part per case: kill after a random number of them
    cmd = [sys.executable, "-m", "gradxval"]
    p = subprocess.Popen([*cmd, *RUN, "--store", "--out", str(d)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    parts, deadline = random.Random(trial).randint(3, 15), time.time() + 120
    while time.time() < deadline and len(list(d.glob("results/part-*.parquet"))) < parts:
        time.sleep(0.005)
    p.kill()
    p.communicate()
    assert 0 < len(RunDir(d).done()) < 30 and not (d / "summary.json").exists()
    assert main(["run", "--resume", str(d), "--quiet", "--no-follow-up"]) == 1
    assert _summary(d) == _summary(runs / "store")
    assert _verdicts(d) == _verdicts(runs / "store")


def test_sigterm_writes_the_buffered_part_then_resume_finishes(tmp_path):
    """SIGTERM: the cases judged so far are written as a part (not left in the buffer of a
    30 s flush interval), the summary says interrupted, and a resume finishes the run with the
    verdicts of an uninterrupted one."""
    import signal

    slow = [*RUN[:2], "numpy,mutants:Slow", *RUN[3:]]  # 50 ms a call: time to interrupt
    slow[slow.index("--cases") + 1] = "12"
    d, whole = tmp_path / "run", tmp_path / "whole"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    env.pop(FLUSH_ENV, None)  # the default interval: nothing is written before the signal
    cmd = [sys.executable, "-m", "gradxval"]
    p = subprocess.Popen([*cmd, *slow, "--store", "--out", str(d)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (d / "manifest.json").exists():
        time.sleep(0.01)
    time.sleep(0.4)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=120) == 143
    summary = json.loads((d / "summary.json").read_text())
    done = RunDir(d).done()
    assert summary["run"]["interrupted"] and 0 < len(done) < 12 == summary["run"]["planned_cases"]
    assert summary["run"]["cases"] == len(done)
    code = main(["run", "--resume", str(d), "--quiet", "--no-follow-up"])
    assert code == main([*slow, "--in-process", "--store", "--out", str(whole)])
    assert _summary(d) == _summary(whole)
    assert _verdicts(d) == _verdicts(whole)


def test_a_batch_written_twice_counts_once_and_a_bad_part_is_named(runs, tmp_path, capsys):
    """A worker lost between writing a part and reporting its task can get the batch written
    again elsewhere: each case counts once.  A part that cannot be read is a usage error that
    names it (exit 2), never a traceback."""
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(runs / "store", d)
    first = sorted((d / "results").glob("part-*.parquet"))[0]
    shutil.copyfile(first, d / "results" / "part-zz.again-000000.parquet")
    (d / "summary.json").unlink()
    assert main(["report", str(d)]) == 1
    assert _summary(d) == _summary(runs / "store")
    assert _verdicts(d) == _verdicts(runs / "store")
    (d / "results" / "part-zz.torn-000000.parquet").write_bytes(b"")
    capsys.readouterr()
    assert main(["report", str(d)]) == 2
    assert "part-zz.torn-000000.parquet: not a readable Parquet part" in capsys.readouterr().err
