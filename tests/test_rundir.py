"""Fault injection: a run never loses or mixes results (kills, interrupts, hangs, concurrency)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradxval.cli import main
from gradxval.output import read_jsonl

pytestmark = pytest.mark.waits  # first in the run: see conftest.py

TESTS = str(Path(__file__).parent)
RUN = ["--backends", "numpy,mutants:FactorTwo", "--cases", "24", "--seed", "5", "--quiet"]
# 24 calls of 50 ms each beside: still running when the SIGKILL comes
KILLED = [*RUN[:1], "numpy,mutants:FactorTwo,mutants:Slow", *RUN[2:]]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TESTS, env.get("PYTHONPATH", "")])
    return env


def _gradxval(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gradxval", *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _summary(d: Path) -> dict:
    s = json.loads((d / "summary.json").read_text())
    for k in ("seconds", "resumed", "logs"):
        s["run"].pop(k, None)
    s.pop("environment")
    return s


def _verdicts(d: Path) -> list[str]:
    out = []
    for r in read_jsonl(d / "results.jsonl"):
        r.pop("extra", None)
        out.append(json.dumps(r, sort_keys=True))
    return sorted(out)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("whole")
    assert main(["run", *KILLED, "--out", str(d), "--no-follow-up"]) == 1  # FactorTwo disagrees
    return d


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_at_a_random_point_then_resume_equals_the_uninterrupted_run(
    tmp_path, uninterrupted, trial
):
    d = tmp_path / "run"
    p = _gradxval("run", *KILLED, "--out", str(d), "--no-follow-up")
    # wait until some cases are written, then kill at a random moment
    deadline = time.time() + 120
    while time.time() < deadline and not (d / "results.jsonl").exists():
        time.sleep(0.05)
    time.sleep(random.Random(trial).uniform(0.0, 0.6))
    kids = _children(p.pid)  # workers, the server they fork from, the resource tracker
    # still judging cases (a kill after the summary is written interrupts nothing)
    assert p.poll() is None and kids and not (d / "summary.json").exists()
    p.kill()
    p.communicate()
    # nobody is left to stop them: each dies with its parent (runner._die_with_parent)
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.05)
    assert not [k for k in kids if _alive(k)], "processes outlived a killed run"
    # a killed run leaves no summary; `gradxval report` rebuilds one from what was kept
    if not (d / "summary.json").exists():
        assert main(["report", str(d)]) in (1, 4)
        assert json.loads((d / "summary.json").read_text())["run"]["interrupted"] in (True, False)
    assert main(["run", "--resume", str(d), "--quiet", "--no-follow-up"]) == 1
    assert _summary(d) == _summary(uninterrupted)
    assert _verdicts(d) == _verdicts(uninterrupted)


def _children(pid: int) -> set[int]:
    """Every descendant of a process, from /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_a_backend_hangs_stops_every_process_and_writes_the_summary(
    tmp_path, sig, code
):
    d = tmp_path / "run"
    p = _gradxval(
        "run",
        "--backends",
        "numpy,mutants:Hangs",
        "--cases",
        "20",
        "--timeout",
        "60",
        "--quiet",
        "--out",
        str(d),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (d / "manifest.json").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # the hung call is in flight
    kids = _children(p.pid)
    assert kids, "the run should have worker processes"
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert "Traceback" not in err
    assert f"resume with: gradxval run --resume {d}" in err
    summary = json.loads((d / "summary.json").read_text())
    assert summary["run"]["interrupted"] is True
    assert (
        (d / "report.md").read_text().startswith("# gradxval agreement report\n\n**Interrupted**")
    )
    time.sleep(0.5)
    left = [k for k in kids if _alive(k)]
    assert not left, f"processes left behind: {left}"


def test_a_killed_run_leaves_no_hung_worker_behind(tmp_path):
    """SIGKILL while a backend hangs: the worker cannot read its pipe, so only the signal its
    parent's death sends stops it (and the forkserver it came from must not wait for it)."""
    d = tmp_path / "run"
    p = _gradxval("run", "--backends", "numpy,mutants:Hangs", "--cases", "6", "--timeout", "60",
                  "--quiet", "--out", str(d))  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (d / "manifest.json").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # the hung call is in flight
    kids = _children(p.pid)
    assert p.poll() is None and kids
    p.kill()
    p.wait(timeout=30)  # not communicate(): a leaked worker would hold its pipes open
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.05)
    assert not [k for k in kids if _alive(k)], "processes outlived a killed run"


def test_a_module_in_the_working_directory_does_not_shadow_what_workers_import(tmp_path):
    """The forkserver runs `python -c`, whose sys.path starts with the working directory: a
    user's queue.py there must not replace the standard library's in the workers.  (The
    console script's own sys.path starts with its directory; `python -m` would put the
    working directory first in the run's own process too.)"""
    script = Path(sys.executable).with_name("gradxval")
    if not script.exists():
        pytest.skip("no gradxval console script beside this interpreter")
    (tmp_path / "queue.py").write_text("X = 1  # a user's module, not the stdlib's\n")
    run = subprocess.run(
        [str(script), "run", "--backends", "numpy", "--cases", "2",
         "--quiet", "--no-follow-up", "--out", str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},  # no empty entry
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    records = read_jsonl(tmp_path / "out" / "results.jsonl")
    assert records and all(r["verdict"] == "agree" for r in records)


def test_a_second_run_into_a_busy_directory_stops_at_once(tmp_path):
    d = tmp_path / "run"
    long_run = [*RUN[:3], "40", *RUN[4:]]  # still running when the second one starts
    first = _gradxval("run", *long_run, "--out", str(d), "--no-follow-up")
    deadline = time.time() + 120
    while time.time() < deadline and not (d / "results.jsonl").exists():
        time.sleep(0.05)
    second = _gradxval("run", *long_run, "--out", str(d), "--no-follow-up")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and "is in use by another gradxval run" in err
    first.communicate(timeout=300)
    assert first.returncode == 1
    lines = (d / "results.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # one run's lines, none torn
    assert len({json.loads(x)["case_done"] for x in lines if "case_done" in x}) == 40


def test_a_directory_with_another_run_is_refused_or_moved_aside(tmp_path):
    d = tmp_path / "run"
    args = ["run", "--backends", "numpy", "--cases", "4", "--quiet", "--no-follow-up"]
    assert main([*args, "--out", str(d)]) == 0
    assert main([*args, "--out", str(d)]) == 2
    assert main([*args, "--seed", "9", "--out", str(d), "--overwrite"]) == 0
    aside = [p for p in d.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and (aside[0] / "results.jsonl").exists()
    assert json.loads((d / "summary.json").read_text())["run"]["seed"] == 9


def test_resume_refuses_other_settings(tmp_path, capsys):
    d = tmp_path / "run"
    assert main(["run", "--backends", "numpy", "--cases", "4", "--quiet", "--out", str(d)]) == 0
    assert main(["run", "--resume", str(d), "--cases", "5", "--quiet"]) == 2
    assert "cannot resume with other settings: --cases=5 (the run has 4)" in capsys.readouterr().err
    assert main(["run", "--resume", str(d), "--quiet"]) == 0  # nothing left: same summary


def test_a_failed_final_write_keeps_results_and_exits_3(tmp_path, monkeypatch, capsys):
    from gradxval.output.rundir import RunDir

    real = RunDir.write_atomic

    def failing(self, name, text):
        if name == "summary.json":
            raise OSError(28, "No space left on device")
        return real(self, name, text)

    monkeypatch.setattr(RunDir, "write_atomic", failing)
    d = tmp_path / "run"
    code = main(["run", "--backends", "numpy", "--cases", "4", "--quiet", "--out", str(d)])
    assert code == 3
    err = capsys.readouterr().err
    assert "could not write summary.json/report.md" in err and "Traceback" not in err
    assert len(read_jsonl(d / "results.jsonl")) == 4 * 3
    monkeypatch.setattr(RunDir, "write_atomic", real)
    assert main(["report", str(d)]) == 0 and (d / "summary.json").exists()


def test_a_hung_backend_costs_a_few_timeouts_not_one_per_case(tmp_path):
    t0 = time.perf_counter()
    code = main(
        [
            "run",
            "--backends",
            "numpy,mutants:Hangs",
            "--cases",
            "12",
            "--timeout",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    wall = time.perf_counter() - t0
    assert code == 1
    records = read_jsonl(tmp_path / "run" / "results.jsonl")
    hung = [r for r in records if r["backend"] == "mutants:Hangs"]
    timed_out = {r["case_id"] for r in hung if "timed out" in r["message"]}
    assert len(timed_out) == 2
    assert all(
        "quarantined after 2 consecutive timeouts" in r["message"]
        for r in hung
        if r["case_id"] not in timed_out
    )
    assert all(r["verdict"] == "agree" for r in records if r["backend"] == "numpy")
    assert wall < 120  # not 12 timeouts plus 12 restarts


def test_worker_output_goes_to_a_log_not_the_terminal(tmp_path, capfd):
    d = tmp_path / "run"
    assert (
        main(["run", "--backends", "mutants:Noisy", "--cases", "3", "--quiet", "--out", str(d)])
        == 0
    )
    out, err = capfd.readouterr()
    assert "junk" not in out and "junk" not in err
    assert f"see {d / 'logs' / 'mutants_Noisy.log'}" in err
    assert "junk on stderr" in (d / "logs" / "mutants_Noisy.log").read_text()


def test_a_greedy_backend_is_stopped_at_the_memory_limit(tmp_path):
    d = tmp_path / "run"
    code = main(
        [
            "run",
            "--backends",
            "numpy,mutants:MemoryHog",
            "--cases",
            "2",
            "--max-memory",
            "0.25",  # a numpy worker starts at about 0.1 GiB: the hog crosses it in 0.15 GiB
            "--quiet",
            "--out",
            str(d),
        ]
    )
    assert code == 1
    hog = [r for r in read_jsonl(d / "results.jsonl") if r["backend"] == "mutants:MemoryHog"]
    assert hog and all("exceeded --max-memory 0.25 GiB" in r["message"] for r in hog)
    honest = [r for r in read_jsonl(d / "results.jsonl") if r["backend"] == "numpy"]
    assert honest and all(r["verdict"] == "agree" for r in honest)  # under the limit: untouched


def test_a_run_killed_in_its_first_case_resumes_from_nothing(tmp_path):
    """No case_done marker yet: the verdict lines of the first case are not taken as done."""
    from gradxval.output.rundir import RunDir

    d = RunDir(tmp_path)
    d.open()
    d.write_manifest({"settings": {}})
    line = json.dumps({"case_id": "c0", "backend": "numpy", "verdict": "agree"})
    (tmp_path / "results.jsonl").write_text(f'{line}\n{{"case_id": "c0", "torn')
    records, done = d.completed(rewrite=True)
    assert (records, done) == ([], set())
    assert (tmp_path / "results.jsonl").read_text() == ""
    d.close()
