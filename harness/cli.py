"""The command line: gradxval run | backends | replay."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import GradxvalError, UsageError

__all__ = ["main", "DEFAULT_CASES", "DEFAULT_SEED"]

DEFAULT_CASES = 300
DEFAULT_SEED = 20261126


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradxval", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="cross-validate every backend on randomized cases")
    r.add_argument("--backends", default="all", help="comma list, 'all', or module:Class")
    r.add_argument("--dtypes", default="all", help="comma list of dtype names, or 'all'")
    r.add_argument("--regimes", default="all", help="comma list of regimes, or 'all'")
    r.add_argument(
        "--problems",
        default="logistic",
        help="comma list of problems (logistic, tanh, softplus, logsigmoid, plug-ins or "
        "module:attr), or 'all'",
    )
    r.add_argument(
        "--methods",
        default="core",
        help="'core' (autodiff, closed_form), 'all' (adds forward, vmap, eager), or a comma list",
    )
    r.add_argument("--cases", type=int, default=DEFAULT_CASES, help="number of cases")
    r.add_argument("--seed", type=int, default=DEFAULT_SEED, help="run seed")
    r.add_argument("--out", type=Path, help="write results.jsonl, summary.json, report.md here")
    r.add_argument("--strict", action="store_true", help="known disagreements fail the run")
    r.add_argument("--timeout", type=float, default=120.0, help="seconds per backend per case")
    r.add_argument(
        "--in-process",
        action="store_true",
        help="run backends in this process (no hang/crash isolation)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "--no-follow-up",
        action="store_true",
        help="skip shrinking disagreements and writing repro_*.py files",
    )
    sub.add_parser("backends", help="list backends, their versions, dtypes and status")
    cf = sub.add_parser("check-formula", help="judge a hand-derived grad_x formula(A, x, xp)")
    cf.add_argument("formula", help="package.module:function or path/file.py:function")
    cf.add_argument("--backends", default="numpy,torch,jax")
    cf.add_argument("--dtypes", default="float32,float64")
    cf.add_argument("--regimes", default="normal,saturated")
    cf.add_argument("--cases", type=int, default=12)
    cf.add_argument("--seed", type=int, default=1)
    cb = sub.add_parser("check-backend", help="conformance checks, then an agreement run")
    cb.add_argument("name", help="a registered backend name or package.module:Class")
    cb.add_argument("--cases", type=int, default=36, help="cases in the agreement run")
    cb.add_argument("--seed", type=int, default=DEFAULT_SEED)
    cb.add_argument("--strict", action="store_true", help="known problems fail too")
    rp = sub.add_parser("replay", help="recompute one case and print every value and error")
    rp.add_argument("case_id")
    rp.add_argument("--backends", default="all")
    rp.add_argument("--methods", default="all", help="as for run; default all")
    rp.add_argument("--json", action="store_true", help="print the verdicts as JSON lines")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m gradxval``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "backends":
            return _backends()
        if args.command == "check-backend":
            return _check_backend(args)
        if args.command == "check-formula":
            return _check_formula(args)
        return _replay(args)
    except UsageError as exc:
        print(f"gradxval: error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from .backends import parse_backends
    from .cases import parse_regimes, sample_cases
    from .dtypes import parse_dtypes
    from .errors import BackendUnavailable
    from .known import load_registry
    from .problems import parse_problems
    from .report import JsonlWriter, build_summary, environment, write_markdown
    from .runner import parse_methods, run_cases

    names, explicit = parse_backends(args.backends)
    dtypes, regimes = parse_dtypes(args.dtypes), parse_regimes(args.regimes)
    if args.cases < 0:
        raise UsageError(f"cases={args.cases}, expected a count >= 0")
    cases = sample_cases(
        args.cases, args.seed, dtypes, regimes, problems=parse_problems(args.problems)
    )
    registry = load_registry()
    console = Console(stderr=True)
    records: list[dict] = []
    writer = JsonlWriter(args.out / "results.jsonl") if args.out else None

    def on_verdict(v) -> None:
        records.append(v.to_json())
        if writer:
            writer.write(v)

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
    )
    try:
        with progress:
            task = progress.add_task("cases", total=len(cases))
            stats = run_cases(
                cases,
                names,
                on_verdict,
                isolate=not args.in_process,
                timeout=args.timeout,
                known=registry,
                on_case=lambda c: progress.advance(task),
                skip_unavailable=not explicit,
                method_spec=parse_methods(args.methods),
            )
    except BackendUnavailable as exc:
        raise UsageError(str(exc)) from None
    finally:
        if writer:
            writer.close()
    for name, why in stats.skipped.items():
        console.print(f"[yellow]skipped backend {name}: {why}")
    run_info = {
        "methods": args.methods,
        "cases": stats.cases,
        "seed": args.seed,
        "seconds": round(stats.seconds, 2),
        "dtypes": list(dtypes),
        "regimes": list(regimes),
        "strict": args.strict,
        "skipped_backends": stats.skipped,
    }
    if args.out and not args.no_follow_up:
        from .repro import follow_up

        versions = {b.name: b.version for b in stats.backends}
        extra = follow_up(records, args.out, registry, versions)
        for r in records:
            r.update(extra.get((r["case_id"], r["backend"], r["method"], r["quantity"]), {}))
    summary = build_summary(records, environment(stats.backends), run_info)
    if args.out:
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        write_markdown(args.out / "report.md", records, summary, registry)
    # rich wraps at 80 columns when not on a terminal; the matrix needs more
    _print_table(Console(width=None if sys.stdout.isatty() else 150), records, summary)
    failing = summary["counts"]["disagree"] + summary["counts"]["error"]
    if args.strict:
        failing += summary["counts"]["known"]
    return 1 if failing else 0


def _print_table(console, records, summary) -> None:
    from rich.table import Table

    from .report.markdown import cell_text, matrix

    rows, cols, cells = matrix(records)
    t = Table(title="gradxval: agreeing / judged results per backend/method and dtype")
    t.add_column("backend/method")
    for c in cols:
        t.add_column(c)
    for row in rows:
        t.add_row(row, *(cell_text(cells[(row, c)]) for c in cols))
    console.print(t)
    counts = summary["counts"]
    console.print(
        ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" in {summary['run']['seconds']} s over {summary['run']['cases']} cases"
    )
    for r in records:
        if r["verdict"] in ("disagree", "error"):
            console.print(
                f"[red]{r['verdict']}[/red] {r['message']}\n  reproduce: {r['reproduce']}",
                markup=True,
                highlight=False,
            )


def _check_formula(args) -> int:
    from collections import Counter

    from .backends import parse_backends
    from .cases import parse_regimes
    from .dtypes import parse_dtypes
    from .formula import check_formula, load_formula

    fn = load_formula(args.formula)
    names, _ = parse_backends(args.backends)
    report = check_formula(
        fn,
        args.formula,
        backends=names,
        dtypes=parse_dtypes(args.dtypes),
        regimes=parse_regimes(args.regimes),
        cases=args.cases,
        seed=args.seed,
    )
    print(f"{args.formula}: {report.summary}")
    cells: dict = {}
    for v in report.verdicts:
        cells.setdefault((v.backend, v.dtype, v.regime), Counter())[v.verdict] += 1
    for (b, d, r), c in sorted(cells.items()):
        print(f"  {b:8} {d:9} {r:10} " + ", ".join(f"{k} {n}" for k, n in sorted(c.items())))
    if report.counterexample:
        print(f"  smallest counterexample: {report.counterexample}")
    return 0 if report.ok else 1


def _check_backend(args) -> int:
    from .backends import parse_backends
    from .cases import sample_cases
    from .conformance import check_backend, failing
    from .runner import run_cases

    parse_backends(args.name)  # an unknown name is a usage error
    problems = check_backend(args.name)
    bad = failing(problems)
    print(
        f"conformance of {args.name}: {len(bad)} problem(s)"
        + (f", {len(problems) - len(bad)} known" if len(problems) > len(bad) else "")
    )
    for p in problems:
        print(f"  - {p}")
    if bad or (args.strict and problems):
        return 1
    out: list = []
    run_cases(
        sample_cases(args.cases, args.seed),
        [args.name],
        out.append,
        isolate=True,
        method_spec="all",
    )
    from collections import Counter

    counts = Counter(v.verdict for v in out)
    print(
        f"agreement run, {args.cases} cases: "
        + ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    )
    for v in out:
        if v.verdict in ("disagree", "error"):
            print(f"  {v.verdict}: {v.message}\n    reproduce: {v.reproduce}")
    strict_known = counts["known"] if args.strict else 0
    return 1 if counts["disagree"] + counts["error"] + strict_known else 0


def _backends() -> int:
    from rich.console import Console
    from rich.table import Table

    from .backends import describe, known_backends

    t = Table(title="gradxval backends")
    for col in ("name", "available", "version", "methods", "dtypes", "why not"):
        t.add_column(col)
    for name in known_backends():
        b = describe(name)
        t.add_row(
            name,
            "yes" if b.available else "no",
            b.version,
            ", ".join(b.methods),
            ", ".join(b.dtypes),
            b.reason,
        )
    Console().print(t)
    return 0


def _replay(args) -> int:
    import numpy as np

    from .backends import parse_backends
    from .cases import Case
    from .reference import compute_reference
    from .runner import parse_methods, run_cases

    case = Case.from_id(args.case_id)
    names, explicit = parse_backends(args.backends)
    inputs = case.inputs()
    ref = compute_reference(case, inputs)
    verdicts = []
    try:
        run_cases(
            [case],
            names,
            verdicts.append,
            isolate=False,
            skip_unavailable=not explicit,
            method_spec=parse_methods(args.methods),
        )
    except GradxvalError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        for v in verdicts:
            print(json.dumps(v.to_json(), sort_keys=True))
        return 0
    with np.printoptions(precision=17, threshold=20, edgeitems=3):
        print(
            f"case {case.id}: A {case.m}x{case.n} {case.dtype}, x {case.x_shape}, "
            f"regime {case.regime}" + (f" ({case.special_kind})" if case.special_kind else "")
        )
        for q, val in ref.values.items():
            print(f"reference {q}: {val!r}")
    print()
    print(
        f"{'backend/method':24} {'quantity':8} {'verdict':11} {'error_u':>12} {'tol_u':>7}  "
        "worst index: actual vs reference"
    )
    for v in verdicts:
        err = "" if v.error_u is None else f"{v.error_u:.6g}"
        tol = "" if v.tolerance_u is None else f"{v.tolerance_u:g}"
        where = f"{v.worst_index}: {v.actual} vs {v.reference}" if v.worst_index is not None else ""
        if v.verdict in ("unsupported", "error"):
            where = v.message
        print(
            f"{v.backend + '/' + v.method:24} {v.quantity:8} {v.verdict:11} {err:>12} {tol:>7}  "
            f"{where}"
        )
    return 0
