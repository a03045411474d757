"""report.html: one self-contained file (no network, opens from disk) with tables and plots.

Plots are drawn with matplotlib into inline SVG.  matplotlib rather than a JavaScript plotting
library: the file needs no script and no runtime to render, stays small (a few hundred kB for
the default run), and renders the same in every browser and in CI.  Without matplotlib (the
``report`` extra), the file has every table and says how to get the plots.
"""

from __future__ import annotations

import html
import io
import math
from pathlib import Path

from gradxval.dtypes import DTYPES

__all__ = ["render_html", "write_html"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .55em;
text-align:left;vertical-align:top}th{background:#f4f4f4}
td.ok{background:#d9f2d9}td.known{background:#fff1c2}td.bad{background:#f8c9c9}
td.na{background:#eee;color:#777}.banner{padding:.6em 1em;border-radius:4px;margin:.5em 0}
.banner.bad{background:#f8c9c9}.banner.warn{background:#fff1c2}.banner.ok{background:#d9f2d9}
.card{border:1px solid #e2b4b4;border-left:5px solid #c33;padding:.5em 1em;margin:.8em 0}
code{background:#f4f4f4;padding:0 .2em}.plot svg{max-width:100%;height:auto}
small{color:#666}
.finding{border:1px solid #ccc;border-left:6px solid #999;padding:.3em .8em;margin:.4em 0}
.finding.unexplained,.finding.error{border-left-color:#c33;background:#fdf0f0}
.finding.dtype,.finding.shape{border-left-color:#d67f00;background:#fff6ea}
.finding.diagnosed{border-left-color:#3a6fb0;background:#f0f5fc}
.finding summary{cursor:pointer}td a{color:inherit}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _cell_class(c: dict) -> str:
    if not c or c.get("unsupported", 0) == sum(c.values()):
        return "na"
    if c.get("disagree") or c.get("error"):
        return "bad"
    return "known" if c.get("known") else "ok"


def _cell_text(c: dict) -> str:
    from collections import Counter

    from gradxval.output.markdown import cell_text

    return cell_text(Counter(c))


def _matrix(summary: dict) -> str:
    m = summary.get("matrix") or {}
    cols = [d for d in DTYPES if any(d in row for row in m.values())]
    links: dict = {}  # (backend/method, dtype) -> the most severe finding there
    for f in summary.get("findings", []):
        for d in f["dtypes"]:
            links.setdefault((f"{f['backend']}/{f['method']}", d), f["id"])
    out = ['<table id="matrix"><tr><th>backend/method</th>']
    out += [f"<th>{_e(c)}</th>" for c in cols] + ["</tr>"]
    for row, cells in m.items():
        out.append(f"<tr><th>{_e(row)}</th>")
        for c in cols:
            cell = cells.get(c, {})
            judged = sum(v for k, v in cell.items() if k != "unsupported")
            ok = cell.get("agree", 0) + cell.get("overflow", 0)
            attrs = " ".join(
                f'data-{k}="{cell.get(k, 0)}"'
                for k in ("agree", "overflow", "known", "disagree", "error", "unsupported")
            )
            text = _e(_cell_text(cell))
            target = links.get((row, c))
            if target:
                text = f'<a href="#{target}">{text}</a>'
            out.append(
                f'<td class="{_cell_class(cell)}" data-row="{_e(row)}" data-dtype="{_e(c)}" '
                f'data-ok="{ok}" data-judged="{judged}" {attrs}>{text}</td>'
            )
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _ratio(x) -> str:
    return "non-finite or of the wrong dtype" if x in ("inf", None) else f"{x:.3g} x tolerance"


def _finding(f: dict, few: bool = False) -> str:
    """One finding: collapsible, open for those nothing explains (and all, when few)."""
    head = (
        f"<b>{_e(f['id'])}</b> {_e(f['backend'])}/{_e(f['method'])} {_e(f['quantity'])}: "
        f"<b>{_e(f['signature'])}</b>, {f['count']} result(s) in {_e(', '.join(f['dtypes']))} "
        f"({_e(', '.join(f['regimes']))}); worst {_e(_ratio(f['worst_over_tolerance']))}"
    )
    body = [f"<p>{_e(f['worst_message'])}</p>"]
    for d in f["diagnoses"]:
        share = (
            "its model reproduces every element of every result"
            if d["reproduces"] == d["of"]
            else f"its model reproduces {d['reproduces']} of {d['of']} results"
        )
        body.append(f"<p>Diagnosis ({share}): {_e(d['text'])}</p>")
    for same in f["same_as"]:
        body.append(
            f"<p>Same signature as registered fault <b>{_e(same['id'])}</b> of "
            f"{_e(', '.join(same['libraries']))}: {_e(same['title'])}</p>"
        )
    body.append(
        f"<p>Smallest case <code>{_e(f['smallest_case'])}</code>"
        + (f", shrunk to <code>{_e(f['shrunk_case'])}</code>" if f["shrunk_case"] else "")
        + f"; reproduce: <code>{_e(f['reproduce'])}</code>"
        + (
            f'; standalone: <a href="{_e(f["standalone"])}">{_e(f["standalone"])}</a>'
            if f["standalone"]
            else ""
        )
        + "</p>"
    )
    opened = " open" if few or f["kind"] != "diagnosed" else ""
    return (
        f'<details class="finding {_e(f["kind"])}" id="{_e(f["id"])}"{opened}>'
        f"<summary>{head}</summary>{''.join(body)}</details>"
    )


def _findings(summary: dict) -> list[str]:
    """Findings per library, most severe first: every one, above the matrix."""
    found = summary.get("findings", [])
    parts = []
    conformance = summary["run"].get("conformance")
    if conformance is not None:  # check-backend
        parts.append(f'<h2 id="conformance">Conformance ({len(conformance)})</h2>')
        items = "".join(f"<li>{_e(p)}</li>" for p in conformance)
        parts.append(f"<ul>{items}</ul>" if items else "<p>No problem.</p>")
    parts.append(f'<h2 id="findings">Findings ({len(found)})</h2>')
    if not found:
        return parts + ["<p>None: every flagged result is a registered fault.</p>"]
    parts.append(
        "<p><small>Flagged results grouped by backend, method, quantity and what is wrong; "
        "red: nothing explains it, orange: wrong dtype or shape, blue: a diagnosis reproduces "
        "it.</small></p>"
    )
    by_backend: dict = {}
    for f in found:
        by_backend.setdefault(f["backend"], []).append(f)
    for backend, fs in by_backend.items():
        parts.append(f"<h3>{_e(backend)}: {len(fs)} finding(s), "
                     f"{sum(f['count'] for f in fs)} result(s)</h3>")  # fmt: skip
        parts += [_finding(f, few=len(found) <= 3) for f in fs]
    return parts


def _svg(fig, tight: bool = True) -> str:
    """The figure as inline SVG; ``tight`` fits the page to what was drawn, which costs a
    second draw (a figure laid out by hand does without)."""
    import matplotlib

    buf = io.StringIO()
    # no date, fixed ids: the same run gives the same bytes (a merged run equals an unsharded one)
    with matplotlib.rc_context({"svg.hashsalt": "gradxval"}):
        fig.savefig(
            buf, format="svg", bbox_inches="tight" if tight else None, metadata={"Date": None}
        )
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _laid_out(width, height, *, left, right, top, bottom, panel, gap):
    """A Figure laid out by hand in inches, margins and panels ``panel`` wide ``gap`` apart:
    one draw, not bbox_inches="tight"'s two.  No pyplot: no process-wide backend switch, no
    figure registry to close, and about half of pyplot's import time (each `gradxval run
    --out` is a fresh process)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=gap / panel)  # fmt: skip
    return fig


def _text_width(texts, size: float) -> float:
    """Inches the widest of ``texts`` takes in matplotlib's default font at ``size`` points."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    font, measure = FontProperties(size=size), TextToPath()
    return max(measure.get_text_width_height_descent(t, font, ismath=False)[0] for t in texts) / 72


def _decorate(ax, title: str) -> None:
    """A panel's title and ticks.  No minor ticks: over 10 to 19 decades they are a blur, and
    they were most of the drawing time; a title at a fixed height skips matplotlib's search
    for a place clear of the tick labels (a layout pass per panel)."""
    from matplotlib.ticker import FuncFormatter

    ax.set_title(title, fontsize=9, y=1.0, pad=4)
    ax.minorticks_off()
    ax.tick_params(labelsize=7)
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":  # 10⁻⁴ as plain text: mathtext's parser was a third of it
            axis.set_major_formatter(FuncFormatter(_power_of_ten))


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value: float, _pos=None) -> str:
    """A log axis's tick label: 10 with the exponent as Unicode superscripts."""
    if not value > 0:
        return ""
    e = math.log10(value)
    if abs(e - round(e)) > 1e-9:
        return f"{value:g}"
    return "10" + str(round(e)).translate(_SUPERSCRIPT)


_X_RANGE = (1e-4, 1e6)  # the tightness plot's axis: error/tolerance from far inside to far out


def _boxes(ax, stats: list[dict], pos: list[int]) -> None:
    """Horizontal box plots drawn as four collections (whiskers, caps, boxes, medians), not
    bxp's half a dozen artists per box: the same picture, drawn in a fraction of the time
    (each run with --out draws it once; benchmarks/report_render.py).  Values are clipped to
    the axis: a zero error has no place on a log scale."""
    from matplotlib.collections import PolyCollection

    lo, hi = _X_RANGE

    def col(key):
        return [min(max(s[key], lo), hi) for s in stats]

    whislo, q1, med, q3, whishi = (col(k) for k in ("whislo", "q1", "med", "q3", "whishi"))
    ax.hlines(pos, whislo, q1, color="k", lw=0.8)
    ax.hlines(pos, q3, whishi, color="k", lw=0.8)
    ax.vlines(whislo + whishi, [p - 0.15 for p in pos] * 2, [p + 0.15 for p in pos] * 2,
              color="k", lw=0.8)  # fmt: skip
    boxes = [[(a, p - 0.3), (b, p - 0.3), (b, p + 0.3), (a, p + 0.3)]
             for p, a, b in zip(pos, q1, q3, strict=True)]  # fmt: skip
    ax.add_collection(PolyCollection(boxes, facecolor="none", edgecolor="k", lw=0.8))
    ax.vlines(med, [p - 0.3 for p in pos], [p + 0.3 for p in pos], color="C1", lw=1.2)


def _tightness_plot(tally) -> str | None:
    """Per dtype, error_u / tolerance_u of every judged result per backend x method (log):
    boxes from the streaming summary's sketches (output.tally.Tally.box_stats)."""
    data = tally.box_stats()
    dtypes = [d for d in DTYPES if d in data]
    if not dtypes:
        return None
    rows = sorted({w for d in dtypes for w in data[d]})
    title = (
        "error_u / tolerance_u per result (box: 1st-99th percentile; dot: worst; dashed: the "
        "tolerance)"
    )
    # row labels on the left, panels 2.3 wide and 0.35 apart (room for the tick labels at
    # their ends), the title on top, tick labels and the axis label below
    left = _text_width(rows, 7) + 0.3
    width = left + 2.3 * len(dtypes) + 0.35 * (len(dtypes) - 1) + 0.25
    width = max(width, _text_width([title], 9) + 0.3)
    fig = _laid_out(width, 0.32 * len(rows) + 1.1, left=left, right=0.25, top=0.6, bottom=0.5,
                    panel=2.3, gap=0.35)  # fmt: skip
    axes = fig.subplots(1, len(dtypes), sharey=True, squeeze=False)[0]
    for ax, d in zip(axes, dtypes, strict=True):
        series = [data[d].get(w) for w in rows]
        pos = [i for i, s in enumerate(series) if s]
        _boxes(ax, [series[i] for i in pos], pos)
        worst = [series[i]["max"] for i in pos]
        ax.scatter(worst, pos, s=10, color="#c33", zorder=3, label="worst")
        ax.axvline(1.0, color="#c33", lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_xlim(*_X_RANGE)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        _decorate(ax, d)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(rows, fontsize=7)
        ax.set_xlabel("error / tolerance", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _svg(fig, tight=False)


def _profile_plot(summary: dict) -> str | None:
    """Worst relative error of grad_x against |x| (saturated and extreme cases)."""
    import matplotlib

    prof = summary.get("profiles") or {}
    dtypes = [d for d in DTYPES if d in prof]
    if not dtypes:
        return None
    title = "Where the result leaves the truth as |x| grows (saturated and extreme cases; 10 = NaN)"
    # one colour per series across the panels, and a legend naming every series of any panel
    series = sorted({who for d in dtypes for who in prof[d]})
    colours = dict(
        zip(series, matplotlib.colormaps["tab10"].colors * (len(series) // 10 + 1), strict=False)
    )
    # panels 2.6 wide and 0.3 apart, the y label and tick labels on the left, tick labels,
    # |x| and the legend's rows below
    width = 0.85 + 2.6 * len(dtypes) + 0.3 * (len(dtypes) - 1) + 0.2
    width = max(width, _text_width([title], 9) + 0.3)
    entry = _text_width(series, 7) + 0.6  # a legend entry: its line, marker and label
    ncol = max(1, min(4, int((width - 0.2) // entry)))
    legend = 0.2 * math.ceil(len(series) / ncol) + 0.15
    height = 3.0 + legend
    fig = _laid_out(width, height, left=0.85, right=0.2, top=0.5, bottom=0.55 + legend,
                    panel=2.6, gap=0.3)  # fmt: skip
    axes = fig.subplots(1, len(dtypes), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], dtypes, strict=True):
        for who, pts in prof[d].items():
            xs = [10**b for b, _ in pts]
            ys = [max(v, 1e-18) for _, v in pts]
            style = "--" if who.endswith("/closed_form") else "-"
            ax.plot(xs, ys, style, lw=1, marker=".", ms=3, label=who, color=colours[who])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-18, 20)
        _decorate(ax, d)
        ax.set_xlabel("|x|", fontsize=8)
    axes[0][0].set_ylabel("worst relative error of grad_x", fontsize=8)
    named: dict = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            named.setdefault(label, h)
    fig.legend(list(named.values()), list(named), fontsize=7, loc="lower center", ncol=ncol,
               bbox_to_anchor=(0.5, 0.05 / height), frameon=False)  # fmt: skip
    fig.suptitle(title, fontsize=9)
    return _svg(fig, tight=False)


def _u(x) -> str:
    """An error in u for a table: 3 significant digits, as report.md writes it."""
    return x if isinstance(x, str) else (f"{x:.3g}" if x is not None else "")


def _table(header, rows) -> str:
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in header), "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render_html(tally, summary: dict, registry) -> str:
    """The whole report as one HTML string."""
    run, env, counts = summary["run"], summary["environment"], summary["counts"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>gradxval agreement report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>gradxval agreement report</h1>",
    ]
    if run.get("interrupted"):
        parts.append(
            f'<p class="banner warn">Interrupted: {_e(run.get("cases"))} of '
            f"{_e(run.get('planned_cases'))} cases judged; resume with "
            "<code>gradxval run --resume DIR</code>.</p>"
        )
    for why in summary.get("incomplete", []):
        parts.append(f'<p class="banner warn">Incomplete: {_e(why)}</p>')
    bad = counts.get("disagree", 0) + counts.get("error", 0)
    outliers = [o for o in summary.get("accuracy_outliers", []) if not o.get("known")]
    cls = "bad" if bad or outliers else "ok"
    parts.append(
        f'<p class="banner {cls}" id="verdicts">'
        + ", ".join(f'{_e(k)} <b data-count="{_e(k)}">{v}</b>' for k, v in counts.items())
        + f" over {_e(run.get('cases'))} cases in {_e(run.get('seconds'))} s</p>"
    )
    parts += _findings(summary)
    parts += [
        "<h2>Agreement matrix</h2>",
        "<p><small>Each cell: results that agree with the "
        "reference (or overflow with it) / results judged; then known, disagree and error "
        "counts.</small></p>",
        _matrix(summary),
    ]
    try:
        tight = _tightness_plot(tally)
        prof = _profile_plot(summary)
        plots = True
    except ImportError:
        tight = prof = None
        plots = False
    parts.append("<h2>How tight is the tolerance</h2>")
    if tight:
        parts.append(f'<div class="plot" id="plot-tightness">{tight}</div>')
    parts.append("<h2>Where autodiff leaves the truth as |x| grows</h2>")
    if prof:
        parts.append(
            "<p><small>Autodiff of the library sigmoids (solid) falls off the cliff where "
            "σ rounds to 1 (x ≈ 17 in float32, 37 in float64); the closed forms (dashed) keep "
            "relative accuracy until σ′ leaves the range; a backend that flushes subnormals "
            "jumps to 1 earlier.</small></p>"
            f'<div class="plot" id="plot-profile">{prof}</div>'
        )
    elif plots:
        parts.append("<p>No saturated or extreme cases in this run.</p>")
    if not plots:
        parts.append(
            '<p class="banner warn">Plots need matplotlib: '
            '<code>pip install "gradxval[report]"</code>.</p>'
        )
    parts.append(f"<h2>Accuracy outliers ({len(summary.get('accuracy_outliers', []))})</h2>")
    found = summary.get("accuracy_outliers", [])
    parts.append(
        "<ul>" + "".join(f"<li>{_e(o['message'])}</li>" for o in found) + "</ul>"
        if found
        else "<p>None.</p>"
    )
    unexplained = tally.flagged
    parts.append(f"<h2>Unexplained disagreements and errors ({len(unexplained)})</h2>")
    if not unexplained:
        parts.append("<p>None.</p>")
    for r in unexplained[:50]:
        parts.append('<div class="card">')
        label = (r.get("extra") or {}).get("backend_name")
        who = f"{r['backend']} ({label})" if label else r["backend"]
        parts.append(
            f"<b>{_e(r['verdict'])}: {_e(who)}/{_e(r['method'])} {_e(r['quantity'])}"
            f"</b> on <code>{_e(r['case_id'])}</code><p>{_e(r['message'])}</p>"
        )
        if r.get("attribution"):
            parts.append(f"<p>Attribution: {_e(r['attribution'])}</p>")
        parts.append(f"<p>Reproduce: <code>{_e(r['reproduce'])}</code></p>")
        if r.get("shrunk_case"):
            parts.append(f"<p>Shrunk case: <code>{_e(r['shrunk_case'])}</code></p>")
        if r.get("standalone"):
            name = Path(r["standalone"]).name
            parts.append(f'<p>Standalone reproducer: <a href="{_e(name)}">{_e(name)}</a></p>')
        parts.append("</div>")
    if len(unexplained) > 50:
        parts.append(f"<p>... and {len(unexplained) - 50} more in results.jsonl.</p>")
    seen = summary.get("known_seen") or {}
    parts.append(f"<h2>Known disagreements ({counts.get('known', 0)})</h2>")
    rows = []
    for entry_id, n in seen.items():
        try:
            e = registry.get(entry_id)
        except Exception:
            rows.append(
                f"<tr><td>{_e(entry_id)}</td><td>{n}</td><td colspan=3>no longer in "
                "the registry</td></tr>"
            )
            continue
        links = " ".join(f'<a href="{_e(u)}">{_e(u)}</a>' for u in e.upstream)
        scope = "; ".join(sc.text() for sc in e.scopes)
        rows.append(
            f"<tr><td><b>{_e(e.id)}</b><br><small>{_e(scope)}</small></td><td>{n}</td>"
            f"<td>{_e(e.title)}. {_e(e.reason)}</td><td>{links}</td></tr>"
        )
    if rows:
        parts.append(
            "<table id='known'><tr><th>entry</th><th>results</th><th>reason</th>"
            "<th>upstream</th></tr>" + "".join(rows) + "</table>"
        )
    cov = summary.get("coverage") or {}
    shapes = cov.get("shape_classes") or {}
    if shapes:
        classes = list(next(iter(shapes.values())))
        parts.append(
            "<h2>Coverage</h2><p><small>Judged cases per dtype and shape class.</small></p>"
        )
        parts.append(
            _table(
                ["dtype", *classes],
                [[d, *(shapes[d][c] for c in classes)] for d in DTYPES if d in shapes],
            )
        )
        reg = cov.get("regimes") or {}
        names = sorted({x for v in reg.values() for x in v})
        parts.append(
            _table(
                ["dtype", *names],
                [[d, *(reg[d].get(x, 0) for x in names)] for d in DTYPES if d in reg],
            )
        )
    acc = summary.get("accuracy") or {}
    if acc:
        parts.append("<h2>Error distribution</h2>")
        parts.append(
            _table(
                ["backend/method dtype", "results", "median (u)", "p99 (u)", "max (u)"],
                [
                    [k, v["results"], *(_u(v[q]) for q in ("median_u", "p99_u", "max_u"))]
                    for k, v in acc.items()
                ],
            )
        )
    parts.append("<h2>Environment and settings</h2>")
    env_rows = [
        ["python", env.get("python")],
        ["platform", env.get("platform")],
        ["gradxval", env.get("gradxval")],
    ]
    env_rows += [[f"backend {k}", v] for k, v in (env.get("backends") or {}).items()]
    env_rows += [
        [f"flags {k}", ", ".join(f"{a}={b}" for a, b in v.items())]
        for k, v in (env.get("flags") or {}).items()
    ]
    settings = [[k, v] for k, v in run.items() if k not in ("skipped_backends",)]
    parts.append(_table(["", ""], env_rows + settings))
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(path: str | Path, tally, summary: dict, registry) -> None:
    Path(path).write_text(render_html(tally, summary, registry), encoding="utf-8")
