"""The first screen of report.html for the default run with one planted-fault plug-in added.

    python scripts/findings_screenshot.py [OUT_DIR]
    python scripts/findings_screenshot.py --report DIR/report.html --png docs/NAME.png

Runs `gradxval run` with its defaults plus tests/planted_plugins.py:Rewrite (grad_x with
sigma = y/(1 + y) rewritten as 1 - 1/(1 + y)), then opens report.html in the distribution's
Chromium through Playwright at 1280 x 900 and writes docs/report-findings.png, and prints where
the findings section and the matrix start on the page (pixels from the top).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("out", nargs="?", type=Path, help="run directory (default: a temporary one)")
    p.add_argument("--report", type=Path, help="screenshot this report.html; run nothing")
    p.add_argument("--png", type=Path, default=ROOT / "docs" / "report-findings.png")
    args = p.parse_args()
    report = args.report
    if report is None:
        out = args.out or Path(tempfile.mkdtemp()) / "run"
        env = dict(os.environ, PYTHONPATH=str(ROOT / "tests"))
        backends = "numpy,autograd,jax,torch,mygrad,planted_plugins:Rewrite"
        cmd = [sys.executable, "-m", "gradxval", "run", "--backends", backends, "--out", str(out)]
        subprocess.run([*cmd, "--quiet", "--overwrite"], env=env, check=False)
        report = out / "report.html"
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(report.resolve().as_uri())
        page.screenshot(path=str(args.png))
        for sel in ("#findings", ".finding", "#matrix", ".card"):
            if page.locator(sel).count():
                print(f"{sel}: top at {page.locator(sel).first.bounding_box()['y']:.0f} px")
        browser.close()
    print(f"report: {report}; screenshot: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
