"""report.html in a real browser: headless Chromium from the distribution, driven by Playwright.

Skipped, with the reason shown, where Playwright or /usr/bin/chromium is missing (.ci/run
installs both; nothing here downloads a browser).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from gradxval.cli import main

CHROMIUM = os.environ.get("GRADXVAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
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


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pytest.importorskip("matplotlib", reason="report.html plots need matplotlib")
    d = tmp_path_factory.mktemp("html") / "run"
    args = ["run", "--backends", "numpy,torch,mutants:FactorTwo", "--cases", "36", "--seed", "4"]
    # in this process: the report is under test, not the workers (a torch worker is a second
    # import of torch)
    assert main([*args, "--quiet", "--out", str(d), "--no-follow-up", "--in-process"]) == 1
    return d


@pytest.fixture(scope="module")
def page(report):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on(
            "request",
            lambda r: (
                errors.append(f"network request: {r.url}")
                if not r.url.startswith(("file:", "data:", "about:"))
                else None
            ),
        )
        pg.goto((report / "report.html").as_uri())
        pg.wait_for_load_state("load")
        yield pg, errors
        browser.close()


def test_report_html_is_small_and_self_contained(report):
    text = (report / "report.html").read_text()
    assert len(text.encode()) < 2 * 2**20
    assert "<script" not in text and "http://" not in text.split("</style>")[0]


def test_no_console_errors_and_no_network(page):
    _, errors = page
    assert errors == []


def test_every_plot_renders(page):
    pg, _ = page
    plots = pg.eval_on_selector_all(
        "div.plot svg",
        "els => els.map(e => {const r = e.getBoundingClientRect();"
        " return [r.width, r.height, e.querySelectorAll('path, use, line').length]})",
    )
    assert len(plots) == 2, plots
    assert all(w > 100 and h > 100 and n > 20 for w, h, n in plots), plots


def test_the_matrix_equals_summary_json(page, report):
    pg, _ = page
    summary = json.loads((report / "summary.json").read_text())
    cells = pg.eval_on_selector_all(
        "#matrix td",
        "els => els.map(e => [e.dataset.row, e.dataset.dtype, e.dataset.agree, e.dataset.known,"
        " e.dataset.disagree, e.dataset.error, e.dataset.unsupported, e.dataset.overflow])",
    )
    assert cells
    seen = {}
    for row, dtype, *nums in cells:
        cell = summary["matrix"][row].get(dtype, {})
        keys = ("agree", "known", "disagree", "error", "unsupported", "overflow")
        assert [int(n) for n in nums] == [cell.get(k, 0) for k in keys], (row, dtype)
        seen[(row, dtype)] = True
    assert len(seen) == sum(len(v) for v in summary["matrix"].values())
    counts = pg.eval_on_selector_all(
        "#verdicts b", "els => els.map(e => [e.dataset.count, e.textContent])"
    )
    assert {k: int(v) for k, v in counts} == summary["counts"]
    # the planted fault shows as a card
    assert pg.locator(".card").count() == summary["counts"]["disagree"] + summary["counts"]["error"]


def test_findings_open_the_report_above_the_matrix(page, report):
    """A plug-in author sees what is wrong on the first screen: the findings come before the
    matrix, every one of them, and each red matrix cell links to one."""
    pg, _ = page
    summary = json.loads((report / "summary.json").read_text())
    assert summary["findings"] and all(f["backend"] == "mutants:FactorTwo"
                                       for f in summary["findings"])  # fmt: skip
    box = pg.locator("#findings").bounding_box()
    first = pg.locator(".finding").first.bounding_box()
    assert box["y"] < pg.locator("#matrix").bounding_box()["y"]
    assert first["y"] + first["height"] <= 900  # within the first viewport, unscrolled
    assert pg.locator(".finding").count() == len(summary["findings"])
    links = pg.eval_on_selector_all("#matrix td a", "els => els.map(e => e.hash.slice(1))")
    ids = {f["id"] for f in summary["findings"]}
    assert links and set(links) <= ids
