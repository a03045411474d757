"""Screenshot a report.html in the distribution's headless Chromium (for README).

python scripts/screenshot.py reports/default/report.html reports/default/report.png
"""

from __future__ import annotations

import sys
from pathlib import Path

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(src: str, dest: str, chromium: str = "/usr/bin/chromium") -> int:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1700})
        page.goto(Path(src).resolve().as_uri())
        page.screenshot(path=dest)
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
