"""What writing a run's reports costs, and how much of it is the HTML report's two plots.

    python benchmarks/report_render.py [--cases 18] [--repeat 5] [--run DIR]

Every run with --out writes summary.json, report.md and report.html once, at its end, in the
process that ran it; the plots are matplotlib figures saved as inline SVG.  This measures:
1. cold: `gradxval report DIR` in a fresh process (imports, font loading, first draw): wall s;
2. warm: the same rebuild in this process, --repeat times after one warm-up: the median
   seconds of the whole rebuild and of each plot (error/tolerance boxes; |x| profile).
The run (default: every installed built-in backend, --cases cases, seed 0) is made first in
a temporary directory unless --run names one.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(module, name: str, spent: dict):
    inner = getattr(module, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t

    setattr(module, name, wrapper)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=18)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--run", type=Path, help="an existing run directory to rebuild")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    run = args.run
    if run is None:
        run = Path(tmp.name) / "run"
        subprocess.run(
            [sys.executable, "-m", "gradxval", "run", "--cases", str(args.cases), "--seed", "0",
             "--quiet", "--no-follow-up", "--out", str(run)],
            check=False, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gradxval", "report", str(run)], check=False,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    cold = time.perf_counter() - t

    from gradxval.campaign import rebuild
    from gradxval.output import html
    from gradxval.output.rundir import RunDir

    spent: dict = {}
    for name in ("_tightness_plot", "_profile_plot"):
        _timed(html, name, spent)
    rows = []
    for k in range(args.repeat + 1):
        spent.clear()
        d = RunDir(run)
        t = time.perf_counter()
        rebuild(d)
        whole = time.perf_counter() - t
        if k:  # the first is the warm-up
            rows.append((whole, spent.get("_tightness_plot", 0.0), spent.get("_profile_plot", 0)))
    med = [statistics.median(c) for c in zip(*rows, strict=True)]
    size = (run / "report.html").stat().st_size
    print(f"run: {run} ({size / 1024:.0f} KiB report.html)")
    print(f"cold `gradxval report`, fresh process: {cold:.2f} s")
    print(f"warm rebuild, median of {args.repeat}: {med[0]:.3f} s; tightness plot {med[1]:.3f} s, "
          f"profile plot {med[2]:.3f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
