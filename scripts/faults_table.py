"""Measure what gradxval does with each fault: exit status, the line it prints, what it keeps.

    python scripts/faults_table.py > docs/faults.md

Each row runs `gradxval run` (in a subprocess, tests/ on PYTHONPATH for the planted
backends of tests/mutants.py) into a fresh directory and reports the exit status, the last
`gradxval:` line on stderr (or the last line), and what the directory holds afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = ["--cases", "6", "--seed", "3", "--quiet", "--no-follow-up"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return env


def _kept(d: Path) -> str:
    if not d.exists():
        return "nothing (no directory)"
    parts = []
    res = d / "results.jsonl"
    if res.exists():
        lines = res.read_text().splitlines()
        verdicts = sum('"verdict"' in x for x in lines)
        done = sum('"case_done"' in x for x in lines)
        parts.append(f"results.jsonl ({verdicts} verdicts, {done} cases done)")
    for f in ("manifest.json", "summary.json", "report.md"):
        if (d / f).exists():
            extra = ""
            if f == "summary.json":
                s = json.loads((d / f).read_text())
                extra = " interrupted" if s["run"].get("interrupted") else ""
            parts.append(f + extra)
    logs = (
        [p.name for p in (d / "logs").glob("*.log") if p.stat().st_size]
        if (d / "logs").exists()
        else []
    )
    if logs:
        parts.append("logs/" + ",".join(logs))
    return ", ".join(parts) or "empty directory"


def _line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    mine = [x for x in lines if x.startswith("gradxval")]
    return (mine[-1] if mine else lines[-1] if lines else "").replace("|", "\\|")[:200]


def _run(args, d: Path, signal_after=None, sig=None, wait_for="manifest.json"):
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-m", "gradxval", "run", *args, "--out", str(d)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if sig is not None:
        deadline = time.time() + 120
        while time.time() < deadline and not (d / wait_for).exists():
            time.sleep(0.05)
        time.sleep(signal_after)
        p.send_signal(sig)
    _, err = p.communicate(timeout=600)
    return p.returncode, _line(err), time.perf_counter() - t0


def main() -> int:
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="gradxval-faults-"))

    def row(name, args, **kw):
        d = tmp / name.replace(" ", "_")
        code, line, wall = _run(args, d, **kw)
        rows.append((name, code, line, _kept(d), wall))
        print(f"{name}: {code}", file=sys.stderr)

    hang = ["--backends", "numpy,mutants:Hangs", "--timeout", "5"]
    row("none (baseline: numpy alone)", ["--backends", "numpy", "--timeout", "5", *BASE])
    row("hang", [*hang, *BASE])
    row("crash", ["--backends", "numpy,mutants:Crashes", *BASE])
    row("abort", ["--backends", "numpy,mutants:Aborts", *BASE])
    row("raise", ["--backends", "numpy,mutants:Raises", *BASE])
    row("junk output", ["--backends", "numpy,mutants:Noisy", *BASE])
    row("memory hog", ["--backends", "numpy,mutants:MemoryHog", "--max-memory", "1", *BASE])
    row("import failure", ["--backends", "numpy,broken_plugin:Backend", *BASE])
    row("not a backend", ["--backends", "numpy,mutants:NotABackend", *BASE])
    row("bad option", ["--backends", "numpy", "--timeout", "nan", *BASE])
    row("empty list", ["--backends", "numpy", "--dtypes", ",", *BASE])
    row("nothing tested", ["--backends", "numpy", "--methods", "autodiff", *BASE])
    # unwritable output: --out below a file, and a directory that cannot be created
    blocker = tmp / "a_file"
    blocker.write_text("")
    code, line, wall = _run(["--backends", "numpy", *BASE], blocker / "sub")
    rows.append(("unwritable output (--out below a file)", code, _line(line), "nothing", wall))
    # concurrent: a second run into the directory of one in progress
    d = tmp / "concurrent"
    first = subprocess.Popen(
        [sys.executable, "-m", "gradxval", "run", *hang, *BASE, "--out", str(d)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (d / "manifest.json").exists():
        time.sleep(0.05)
    code, line, wall = _run(["--backends", "numpy", *BASE], d)
    first.communicate()
    rows.append(("concurrent run (the second)", code, line, _kept(d) + " (the first run's)", wall))
    slow = ["--backends", "numpy,mutants:Hangs", "--timeout", "60", "--cases", "20", "--quiet"]
    row("SIGINT", slow, signal_after=1.0, sig=signal.SIGINT)
    row("SIGTERM (backend hung)", slow, signal_after=1.0, sig=signal.SIGTERM)
    row("SIGKILL", slow, signal_after=1.0, sig=signal.SIGKILL)

    base_wall, hang_wall = rows[0][4], rows[1][4]
    print(
        f"A backend that hangs forever (timeout 5 s) adds {hang_wall - base_wall:.1f} s to the "
        f"run ({hang_wall:.1f} s against {base_wall:.1f} s), "
        f"{(hang_wall - base_wall) / 5:.1f} timeouts.\n"
    )
    print("| fault | exit status | the line printed | what was kept | wall (s) |")
    print("|---|---|---|---|---|")
    for name, code, line, kept, wall in rows:
        print(f"| {name} | {code} | `{line}` | {kept} | {wall:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
