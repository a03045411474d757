"""gradxval: cross-validate autodiff and closed-form gradients across array frameworks."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from dataclasses import fields
from pathlib import Path

from gradxval.campaign import DEFAULT_CASES, DEFAULT_SEED, Interrupted, Settings
from gradxval.errors import GradxvalError, UsageError
from gradxval.run.tuning import tune_own_process

__all__ = ["main", "DEFAULT_CASES", "DEFAULT_SEED"]


def _epilog() -> str:
    from gradxval.output.summary import EXIT_CODES

    return "exit status:\n" + "\n".join(f"  {k:>3}  {v}" for k, v in EXIT_CODES.items())


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help; flags and options without one say nothing."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        d = action.default
        if (
            "(default:" in text
            or d in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: {d})"


class _Parser(argparse.ArgumentParser):
    """A bad option is one line, as every other usage error is (not the usage dump)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from gradxval.version import __version__

    p = _Parser(prog="gradxval", description=__doc__, epilog=_epilog(), formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"gradxval {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help_, description=help_, epilog=_epilog(), formatter_class=_Help
        )

    r = cmd("run", "cross-validate every backend on randomized cases")
    d = Settings()
    # settings default to None here so that --resume can tell which were given
    r.add_argument("--backends", help=f"comma list, 'all', or module:Class (default: {d.backends})")
    r.add_argument("--dtypes", help=f"comma list of dtype names, or 'all' (default: {d.dtypes})")
    r.add_argument("--regimes", help=f"comma list of regimes, or 'all' (default: {d.regimes})")
    r.add_argument(
        "--problems",
        help="comma list of problems (logistic, tanh, softplus, logsigmoid, plug-ins or "
        f"module:attr), or 'all' (default: {d.problems})",
    )
    r.add_argument(
        "--methods",
        help="'core' (autodiff, closed_form), 'all' (adds forward, vmap, eager), or a comma "
        f"list; a named method a backend lacks is reported unsupported (default: {d.methods})",
    )
    r.add_argument(
        "--order",
        choices=("1", "2", "all"),
        help="1: loss, grad_x, grad_A; 2: hvp_x, the Hessian with respect to x applied to a "
        f"direction v drawn per case; all: both (default: {d.order})",
    )
    r.add_argument("--cases", type=int, help=f"number of cases (default: {d.cases})")
    r.add_argument("--seed", type=int, help=f"run seed (default: {d.seed})")
    r.add_argument("--strict", action="store_true", default=None, help="known results fail too")
    r.add_argument(
        "--allow-accuracy-outliers",
        action="store_true",
        default=None,
        help="report accuracy outliers without failing the run",
    )
    r.add_argument(
        "--shard", metavar="I/N", help="run the I-th of N disjoint, stable slices of the cases"
    )
    r.add_argument("--out", type=Path, help="write the run's files into this directory")
    r.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    r.add_argument(
        "--overwrite", action="store_true", help="move a run already in --out aside first"
    )
    r.add_argument("--timeout", type=float, default=120.0, help="seconds per backend per case")
    r.add_argument(
        "--startup-timeout", type=float, default=300.0, help="seconds for a backend to start"
    )
    r.add_argument(
        "--max-memory",
        type=float,
        default=None,
        help="GiB of resident memory per backend worker (default: a quarter of this machine's)",
    )
    r.add_argument(
        "--quarantine-after",
        type=int,
        default=2,
        help="consecutive timeouts or crashes after which a backend's remaining cases are "
        "recorded as errors without being run",
    )
    r.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="where cases run: worker processes here, or a Dask distributed cluster",
    )
    r.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler (tcp://HOST:8786); default: a LocalCluster of --workers processes",
    )
    r.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    r.add_argument(
        "--in-process",
        action="store_true",
        help="run backends in this process (no timeout, crash or memory isolation)",
    )
    r.add_argument(
        "--check-determinism",
        choices=("sampled", "all"),
        default="sampled",
        help="repeat each call to check it gives the same bits: on small cases and one large "
        "case in ten (sampled), or always (all)",
    )
    r.add_argument(
        "--no-jax-cache",
        action="store_true",
        help="do not use jax's persistent compilation cache (~/.cache/gradxval/jax)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "--no-follow-up",
        action="store_true",
        help="skip shrinking disagreements and writing repro_*.py files",
    )

    r.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="compare with the run in DIR at the end (gradxval diff); fail only on what is new",
    )
    r.add_argument(
        "--store",
        action="store_true",
        help="keep the verdicts in the columnar store (DIR/results/part-*.parquet, zstd, ~31 "
        "bytes a verdict; needs pyarrow: gradxval[store]) instead of results.jsonl (~540): for "
        "campaigns of 10^5 cases and more; report, resume, merge, diff, replay and export read "
        "either",
    )

    rep = cmd("report", "rebuild summary.json, report.md and report.html of a run from its results")
    rep.add_argument("dir", type=Path)

    mg = cmd("merge", "combine shard runs or checks (--shard I/N) into one directory")
    mg.add_argument("out", type=Path)
    mg.add_argument("dirs", type=Path, nargs="+", metavar="DIR")

    df = cmd("diff", "compare two runs: new and fixed disagreements, label changes, regressions")
    df.add_argument("base", type=Path)
    df.add_argument("new", type=Path)
    df.add_argument("--markdown", type=Path, metavar="FILE", help="also write Markdown here")
    df.add_argument("--json", type=Path, metavar="FILE", help="also write JSON here")
    df.add_argument(
        "--factor", type=float, default=4.0, help="error_u growth that counts as a regression"
    )

    ex = cmd("export", "convert a run's results between results.jsonl and the Parquet store")
    ex.add_argument("dir", type=Path)
    how = ex.add_mutually_exclusive_group(required=True)
    how.add_argument("--parquet", action="store_true", help="results.jsonl -> DIR/results/")
    how.add_argument("--jsonl", type=Path, metavar="FILE", help="the store -> JSON lines in FILE")

    rr = cmd("repro", "write the shrunk standalone reproducer of a known fault seen in a run")
    rr.add_argument("dir", type=Path)
    rr.add_argument("--known", required=True, metavar="ENTRY", help="a registry entry id")
    rr.add_argument("--backend", help="only this backend (default: every built-in that has it)")

    k = cmd("known", "list the known-fault registry, or check a run against it")
    k.add_argument("--check", type=Path, metavar="DIR", help="a run directory to check")

    cmd("backends", "list backends, their versions, dtypes and status")

    ck = cmd(
        "check",
        "check declared functions (FILE.py:NAME, module:NAME, suite, suite:NAME) on every "
        "backend against the binary128 reference",
    )
    ck.add_argument("target", help="FILE.py:NAME, package.module:NAME, suite or suite:NAME")
    ck.add_argument("--backends", default="all", help="comma list or 'all' (default: all)")
    ck.add_argument("--dtypes", help="comma list of dtype names (default: the function's)")
    ck.add_argument(
        "--regimes", help="comma list of normal, saturated, extreme, special, strided, empty"
    )
    ck.add_argument(
        "--methods", help="comma list of autodiff, jit, forward, vjp, hvp, value, formula, vmap"
    )
    ck.add_argument("--cases", type=int, default=12, help="cases per function (default: 12)")
    ck.add_argument("--seed", type=int, default=0)
    ck.add_argument("--order", type=int, choices=(1, 2), help="2 adds Hessian-vector products")
    ck.add_argument("--case", dest="case_id", help="run this one case id alone (a reproducer)")
    ck.add_argument(
        "--out", type=Path, help="write results.jsonl, summary.json, report.md, report.html here"
    )
    ck.add_argument("--quiet", action="store_true", help="print the summary line only")
    ck.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds per backend call; a backend past it is not called again",
    )
    ck.add_argument(
        "--shard", metavar="I/N", help="check the I-th of N disjoint, stable slices of the cases"
    )
    ck.add_argument("--resume", type=Path, metavar="DIR", help="continue the check in DIR")
    ck.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="an earlier check's --out: only failures new against it fail this one (diff.md)",
    )
    ck.add_argument("--executor", choices=("local", "dask"), default="local")
    ck.add_argument("--scheduler", help="a Dask scheduler address (default: a local cluster)")
    ck.add_argument("--workers", type=int, default=2, help="local Dask workers (default: 2)")

    cf = cmd(
        "check-formula",
        "judge a hand-derived grad_x formula(A, x, xp), or with --order 2 hvp_x(A, x, v, xp)",
    )
    cf.add_argument(
        "formula",
        help="package.module:function or path/file.py:function; or a declared function with "
        "formula=, whose every quantity is judged",
    )
    cf.add_argument(
        "--order",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: grad_x(A, x, xp); 2: hvp_x(A, x, v, xp), the Hessian with respect to x "
        "applied to v",
    )
    cf.add_argument(
        "--backends", help="comma list or 'all' (default: the built-in backends installed)"
    )
    cf.add_argument("--dtypes", default="float32,float64")
    cf.add_argument("--regimes", default="normal,saturated")
    cf.add_argument("--cases", type=int, default=12)
    cf.add_argument("--seed", type=int, default=1)

    cb = cmd("check-backend", "conformance checks, then an agreement run")
    cb.add_argument("name", help="a registered backend name or package.module:Class")
    cb.add_argument("--cases", type=int, default=36, help="cases in the agreement run")
    cb.add_argument("--seed", type=int, default=DEFAULT_SEED)
    cb.add_argument("--strict", action="store_true", help="known problems fail too")
    cb.add_argument("--timeout", type=float, default=120.0, help="seconds per check or case")
    cb.add_argument(
        "--in-process",
        action="store_true",
        help="run the kit and the agreement run in this process (no isolation from a backend "
        "that hangs or crashes; faster)",
    )
    cb.add_argument(
        "--out",
        type=Path,
        help="write the report set of a run here: results.jsonl, summary.json (with the "
        "conformance problems and findings), report.md, report.html, reproducers",
    )

    rp = cmd("replay", "recompute one case and print every value and error")
    rp.add_argument("case_id")
    rp.add_argument("--backends", default="all")
    rp.add_argument("--methods", default="core", help="as for run ('all' on request)")
    rp.add_argument("--order", choices=("1", "2", "all"), default="1", help="as for run")
    rp.add_argument("--json", action="store_true", help="print the verdicts as JSON lines")
    rp.add_argument("--timeout", type=float, default=120.0, help="seconds per backend")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m gradxval``."""
    args = _parser().parse_args(argv)
    if argv is None:  # the console script or python -m gradxval: a process of ours
        tune_own_process()
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            return _report(args)
        if args.command == "export":
            return _export(args)
        if args.command == "diff":
            return _diff(args)
        if args.command == "merge":
            return _merge(args)
        if args.command == "repro":
            return _repro(args)
        if args.command == "known":
            return _known(args)
        if args.command == "backends":
            return _backends()
        if args.command == "check-backend":
            return _check_backend(args)
        if args.command == "check-formula":
            return _check_formula(args)
        if args.command == "check":
            return _check(args)
        return _replay(args)
    except UsageError as exc:
        print(f"gradxval: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print("gradxval: interrupted", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("gradxval: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`gradxval known | head`): end as a shell would, quietly;
        # point stdout at /dev/null so that flushing it at exit cannot raise again
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # gradxval itself failed: one line, the traceback in a log
        return _internal_error(exc, getattr(args, "out", None) or getattr(args, "resume", None))


def _split(spec):
    return tuple(s.strip() for s in spec.split(",") if s.strip()) if spec else None


def _check(args) -> int:
    from collections import Counter

    from gradxval.checking import check
    from gradxval.dtypes import parse_dtypes
    from gradxval.output.check_report import describe, finding_line

    if args.resume is not None and args.out is not None and args.out != args.resume:
        raise UsageError("give either --out DIR or --resume DIR, not both")
    if args.scheduler and args.executor != "dask":
        raise UsageError("--scheduler needs --executor dask")
    seen: dict = {}

    def progress(case, records) -> None:
        # one line per function once its last case is judged (cases arrive function by function)
        if seen and case.function not in seen:
            _print_function(*seen.popitem())
        seen.setdefault(case.function, Counter()).update(r["outcome"] for r in records)

    result = check(
        args.target,
        backends=args.backends,
        dtypes=parse_dtypes(args.dtypes) if args.dtypes else None,
        regimes=_split(args.regimes),
        methods=_split(args.methods),
        cases=args.cases,
        seed=args.seed,
        order=args.order,
        case_id=args.case_id,
        out=args.resume or args.out,
        progress=None if args.quiet else progress,
        timeout=args.timeout,
        shard=args.shard,
        resume=args.resume is not None,
        baseline=args.baseline,
        executor=args.executor,
        scheduler=args.scheduler,
        workers=args.workers,
    )
    if seen:
        _print_function(*seen.popitem())
    summary = result.summary()
    if not args.quiet:
        if args.baseline is not None:  # what is new, result by result
            for r in sorted(result.new, key=lambda r: -(r.get("ulps") or 0))[:20]:
                print(describe(r, args.target))
        else:  # failures grouped by what is wrong, the furthest past tolerance first
            found = summary["findings"]
            for f in found[:10]:
                print(finding_line(f, args.target))
            if len(found) > 10:
                print(f"... and {len(found) - 10} more findings (report.html, summary.json)")
    counts = ", ".join(f"{o} {n}" for o, n in summary["counts"].items()) or "nothing judged"
    against = f", {len(result.new)} new against {args.baseline}" if args.baseline else ""
    print(f"{'ok' if result.ok else 'FAILED'}: {counts}{against} ({summary['seconds']} s)")
    return result.exit_status


def _print_function(name: str, counts) -> None:
    text = ", ".join(f"{o} {n}" for o, n in sorted(counts.items()))
    print(f"{name}: {text}", flush=True)


def _internal_error(exc: BaseException, directory) -> int:
    text = "".join(traceback.format_exception(exc))
    log = None
    if directory is not None and Path(directory).is_dir():
        try:
            log = Path(directory) / "gradxval.log"
            with open(log, "a", encoding="utf-8") as f:
                f.write(text)
        except OSError:
            log = None
    if log is None:
        fd, name = tempfile.mkstemp(prefix="gradxval-", suffix=".log")
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        log = Path(name)
    kind = "" if isinstance(exc, GradxvalError) else " (a bug in gradxval: please report it)"
    print(
        f"gradxval: internal error{kind}: {type(exc).__name__}: {exc}; traceback in {log}",
        file=sys.stderr,
    )
    return 3


def _run(args) -> int:
    from gradxval.campaign import check_limits, execute, handle_signals, prepare
    from gradxval.run.runner import Limits, default_max_memory
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    check_limits(args.timeout, args.startup_timeout, args.max_memory)
    given = {f.name: getattr(args, f.name) for f in fields(Settings)}
    p, out, manifest = prepare(
        {k: v for k, v in given.items() if v is not None},
        out=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        baseline=args.baseline,
        executor=args.executor,
        scheduler=args.scheduler,
        workers=args.workers,
        in_process=args.in_process,
        quarantine_after=args.quarantine_after,
        results="parquet" if args.store else "jsonl",
    )
    import os

    from gradxval.backends import JAX_CACHE_ENV
    from gradxval.run.runner import DETERMINISM_ENV

    # worker processes inherit these (Dask tasks get them passed)
    os.environ[DETERMINISM_ENV] = args.check_determinism
    if args.no_jax_cache:
        os.environ[JAX_CACHE_ENV] = "off"
    max_memory = int(args.max_memory * 2**30) if args.max_memory else default_max_memory()
    limits = Limits(
        timeout=args.timeout,
        startup_timeout=args.startup_timeout,
        max_memory=max_memory,
        quarantine_after=args.quarantine_after,
        log_dir=str(out.path / "logs") if out is not None else None,
    )
    if out is not None:
        (out.path / "logs").mkdir(exist_ok=True)
    console = Console(stderr=True)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
    )
    restore = handle_signals()
    try:
        with progress:
            task = progress.add_task("cases", total=len(p.cases))
            if manifest is not None:
                progress.advance(task, len(out.done()))
            outcome = execute(
                p,
                out,
                isolate=not args.in_process,
                limits=limits,
                follow_up=not args.no_follow_up,
                on_case=lambda c: progress.advance(task),
                resume_manifest=manifest,
                executor=args.executor,
                scheduler=args.scheduler,
                workers=args.workers,
                on_note=lambda line: console.print(f"gradxval: {line}", markup=False),
            )
    finally:
        restore()
        if out is not None:
            out.close()
            try:
                (out.path / "logs").rmdir()  # only when no backend wrote anything
            except OSError:
                pass
    _print_outcome(outcome, out)
    if args.baseline is not None:
        return _baseline(args, outcome, out)
    return outcome.status


def _print_outcome(outcome, out) -> None:
    from rich.console import Console

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    run = outcome.summary["run"]
    for name, why in run.get("skipped_backends", {}).items():
        if name not in run.get("dropped_backends", {}):
            err.print(f"[yellow]skipped backend {name}[/yellow]: {why}")
    for name, why in run.get("quarantined", {}).items():
        err.print(f"[red]backend {name} {why}[/red]")
    for name, path in run.get("logs", {}).items():
        err.print(f"backend {name} wrote output: see {path}")
    # rich wraps at 80 columns when not on a terminal; the matrix needs more
    console = Console(width=None if sys.stdout.isatty() else 150)
    _print_table(console, outcome.summary)
    if out is not None:
        print(
            f"report: {out.path / 'report.html'} and {out.path / 'report.md'}; "
            f"summary: {out.path / 'summary.json'}"
        )
    for line in outcome.lines:
        err.print(f"gradxval: {line}", markup=False)


SHOWN_FINDINGS = 10  # on the terminal; report.html and summary.json hold every one


def _print_table(console, summary) -> None:
    from gradxval.output.markdown import cell_text, summary_matrix
    from rich.table import Table

    rows, cols, cells = summary_matrix(summary)
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
    for entry, n in summary["known_seen"].items():
        console.print(f"known {entry}: {n} results", highlight=False)
    for o in summary.get("accuracy_outliers", []):
        tag = "known accuracy outlier" if o.get("known") else "[red]accuracy outlier[/red]"
        console.print(f"{tag} {o['message']}", highlight=False)
    from gradxval.output.markdown import finding_lines

    found = summary.get("findings", [])
    if found:
        n = sum(f["count"] for f in found)
        console.print(f"[red]{len(found)} finding(s)[/red] from {n} flagged results, most "
                      "severe first:", highlight=False)  # fmt: skip
    for f in found[:SHOWN_FINDINGS]:
        console.print("\n".join(finding_lines(f, md=False)), markup=False, highlight=False)
    if len(found) > SHOWN_FINDINGS:
        console.print(f"... and {len(found) - SHOWN_FINDINGS} more findings (report.html, "
                      "summary.json)", highlight=False)  # fmt: skip


def _repro(args) -> int:
    from gradxval.followup.repro import repro_known
    from gradxval.judge.known import load_registry

    registry = load_registry()
    registry.get(args.known)  # an unknown id lists the known ones
    paths = repro_known(args.dir, args.known, args.backend, registry)
    if not paths:
        print("gradxval: no built-in recipe for that backend: nothing written", file=sys.stderr)
        return 4
    for p in paths:
        print(p)
    return 0


def _merge(args) -> int:
    from gradxval.campaign import merge
    from gradxval.output.rundir import RunDir

    if all((d / "check.json").exists() for d in args.dirs):  # shards of gradxval check
        from gradxval.checking import merge as merge_checks

        result = merge_checks(args.out, args.dirs)
        counts = ", ".join(f"{o} {n}" for o, n in result.summary()["counts"].items())
        print(f"merged {len(args.dirs)} shards into {args.out}: {counts or 'nothing judged'}")
        return result.exit_status
    for d in args.dirs:
        if not (d / "manifest.json").exists():
            raise UsageError(f"merge: {d} has no manifest.json (not a run directory)")
    outcome = merge(RunDir(args.out), args.dirs)
    _print_outcome(outcome, RunDir(args.out))
    return outcome.status


def _export(args) -> int:
    from gradxval.output.store import export_jsonl, import_jsonl

    if args.parquet:
        from gradxval.output.rundir import RunDir

        records, _ = RunDir(args.dir).completed()
        if not records:
            raise UsageError(f"export {args.dir}: no results.jsonl records there")
        n = import_jsonl(records, args.dir)
        print(f"{n} records -> {args.dir / 'results'}/part-*.parquet")
        return 0
    with open(args.jsonl, "w", encoding="utf-8") as f:
        n = export_jsonl(args.dir, f)
    print(f"{n} records -> {args.jsonl}")
    return 0


def _diff(args) -> int:
    from gradxval.output.diff import diff_runs

    d = diff_runs(args.base, args.new, factor=args.factor)
    _write_diff(d, args.markdown, args.json)
    print(d.text(), end="")
    return 1 if d.has_new else 0


def _write_diff(d, markdown: Path | None, as_json: Path | None) -> None:
    if markdown is not None:
        markdown.write_text(d.markdown(), encoding="utf-8")
    if as_json is not None:
        as_json.write_text(json.dumps(d.to_json(), indent=1) + "\n", encoding="utf-8")


def _baseline(args, outcome, out) -> int:
    """--baseline: diff against the base run; only what is new fails the run."""
    from gradxval.output.diff import diff_runs

    d = diff_runs(args.baseline, out.path)
    _write_diff(d, out.path / "diff.md", out.path / "diff.json")
    print(d.text(), end="")
    if outcome.status in (0, 1):
        return 1 if d.has_new else 0
    return outcome.status


def _report(args) -> int:
    from gradxval.campaign import rebuild
    from gradxval.output.rundir import RunDir

    if not args.dir.is_dir():
        raise UsageError(f"report {args.dir}: not a directory")
    out = RunDir(args.dir)
    outcome = rebuild(out)
    print(f"rebuilt {args.dir / 'summary.json'} and {args.dir / 'report.md'}")
    for line in outcome.lines:
        print(f"gradxval: {line}", file=sys.stderr)
    return outcome.status


def _known(args) -> int:
    from collections import Counter

    from gradxval.judge.known import load_registry

    registry = load_registry()
    if args.check is None:
        for e in registry.entries:
            print(f"{e.id}  [{e.source}]")
            print(f"  {e.title}")
            for sc in e.scopes:
                print(f"  scope: {sc.text()}")
            what = ", ".join(e.quantities)
            if e.problems:
                what += f"; problems {', '.join(e.problems)}"
            if e.dtypes:
                what += f"; dtypes {', '.join(e.dtypes)}"
            print(f"  covers: {what}; evidence: {e.evidence}")
            for u in e.upstream:
                print(f"  upstream: {u}")
        return 0
    from gradxval.output.rundir import RunDir

    tally, _ = RunDir(args.check).state()
    if not tally.records:
        raise UsageError(f"known --check {args.check}: no results with verdicts there")
    seen = dict(tally.known)
    diagnosed: Counter = Counter()
    for r in tally.flagged:  # diagnoses are hints on unexplained results
        for d in (r.get("extra") or {}).get("diagnosis", []):
            diagnosed[(d, f"{r['backend']}/{r['method']}")] += 1
    print(f"entries seen in {args.check}:")
    for e in registry.entries:
        if seen.get(e.id):
            print(f"  {e.id}: {seen[e.id]} results")
    unseen = [e for e in registry.entries if not seen.get(e.id)]
    if unseen:
        print("entries not seen (fixed upstream, out of version range, or not exercised):")
        for e in unseen:
            print(f"  {e.id} ({'; '.join(s.text() for s in e.scopes)})")
    if diagnosed:
        print("results only diagnosed (unexplained, with a hint):")
        for (d, who), n in diagnosed.most_common():
            print(f"  {who}: {d} ({n} results)")
    return 0


def _check_formula(args) -> int:
    from collections import Counter

    from gradxval.backends import parse_backends
    from gradxval.dtypes import parse_dtypes
    from gradxval.followup.formula import check_formula, load_formula
    from gradxval.model.cases import parse_regimes
    from gradxval.model.functions import Function

    fn = load_formula(args.formula)
    if isinstance(fn, Function):  # a declared function: its formula=, every quantity it gives
        return _check_declared_formula(args, fn)
    names = parse_backends(args.backends)[0] if args.backends else None
    report = check_formula(
        fn,
        args.formula,
        backends=names,
        dtypes=parse_dtypes(args.dtypes),
        regimes=parse_regimes(args.regimes),
        cases=args.cases,
        seed=args.seed,
        order=args.order,
    )
    print(f"{args.formula}: {report.summary}")
    cells: dict = {}
    for v in report.verdicts:
        cells.setdefault((v.backend, v.dtype, v.regime), Counter())[v.verdict] += 1
    for (b, d, r), c in sorted(cells.items()):
        print(f"  {b:8} {d:9} {r:10} " + ", ".join(f"{k} {n}" for k, n in sorted(c.items())))
    if report.counterexample:
        print(f"  smallest counterexample: {report.counterexample}")
    if not report.verdicts:
        print("gradxval: nothing tested: no backend could evaluate the formula", file=sys.stderr)
        return 4
    return 0 if report.ok else 1


def _check_declared_formula(args, fn) -> int:
    """check-formula FILE.py:NAME for a declared function: its formula= is the method judged,
    for whatever quantities it returns (grad of any input, hvp_*), against the engine."""
    from collections import Counter

    from gradxval.checking import check
    from gradxval.dtypes import parse_dtypes
    from gradxval.output.check_report import describe

    if fn.formula is None:
        raise UsageError(
            f"{args.formula} is a declared function without a formula: declare it with "
            "@gradxval.function(..., formula=your_gradient) to check that formula"
        )
    result = check(args.formula, backends=args.backends or "all", dtypes=parse_dtypes(args.dtypes),
                   regimes=_split(args.regimes), cases=args.cases, seed=args.seed,
                   order=args.order, methods=("formula",))  # fmt: skip
    cells: dict = {}
    for r in result.records:
        cells.setdefault((r["quantity"], r["backend"], r["dtype"]), Counter())[r["outcome"]] += 1
    for (q, b, d), c in sorted(cells.items()):
        print(f"  {q:10} {b:8} {d:9} " + ", ".join(f"{k} {n}" for k, n in sorted(c.items())))
    for r in sorted(result.failures, key=lambda r: -(r.get("ulps") or 0))[:10]:
        print(describe(r, args.formula))
    counts = ", ".join(f"{o} {n}" for o, n in result.summary()["counts"].items())
    print(f"{args.formula}: {'holds' if result.ok else 'FAILS'}: {counts or 'nothing judged'}")
    return result.exit_status


def _check_backend(args) -> int:
    """Every conformance check, then the agreement run (all methods, both orders) whatever
    they found; findings as `run` prints them, and with --out the same report set."""
    from gradxval.backends import parse_backends
    from gradxval.campaign import check_limits, execute, plan
    from gradxval.output.rundir import RunDir
    from gradxval.run.conformance import check_backend, check_backend_isolated, failing
    from gradxval.run.runner import Limits

    parse_backends(args.name)  # an unknown name is a usage error
    check_limits(args.timeout, 300.0, None)
    if args.in_process:
        problems = check_backend(args.name)
    else:
        problems = check_backend_isolated(args.name, timeout=args.timeout)
    bad = failing(problems)
    print(
        f"conformance of {args.name}: {len(bad)} problem(s)"
        + (f", {len(problems) - len(bad)} known or noted" if len(problems) > len(bad) else "")
    )
    for p in problems:
        print(f"  - {p}")
    # second order where the backend has second-order autodiff; without, the note above
    # says so and the agreement run judges first order (not an incomplete run)
    second = not any(p.startswith("note: no second-order autodiff") for p in problems)
    p = plan(Settings(backends=args.name, methods="all", order="all" if second else "1",
                      cases=args.cases, seed=args.seed, strict=args.strict))  # fmt: skip
    out = None
    if args.out is not None:
        out = RunDir(args.out)
        out.open(overwrite=True)
    try:
        outcome = execute(p, out, isolate=not args.in_process, limits=Limits(timeout=args.timeout),
                          follow_up=out is not None, notes={"conformance": problems})  # fmt: skip
    finally:
        if out is not None:
            out.close()
    print(f"agreement run, {args.cases} cases:")
    _print_outcome(outcome, out)
    if outcome.status == 4:
        return 4
    return 1 if bad or outcome.status else 0


def _backends() -> int:
    from gradxval.backends import describe, known_backends
    from rich.console import Console
    from rich.table import Table

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
    from gradxval.backends import parse_backends
    from gradxval.campaign import check_limits
    from gradxval.judge.problem_reference import reference_for
    from gradxval.model.cases import Case
    from gradxval.model.problems import load_problem
    from gradxval.run.runner import Limits, default_max_memory, parse_methods, run_cases

    case = Case.from_id(args.case_id)
    check_limits(args.timeout, 300.0, None)
    names, explicit = parse_backends(args.backends)
    method_spec = parse_methods(args.methods)
    _check_size(case, default_max_memory())
    load_problem(case.problem)  # an unknown problem in the id is a usage error
    inputs = case.inputs()
    ref = reference_for(case, inputs, args.order != "1")
    verdicts = []
    stats = run_cases(
        [case],
        names,
        verdicts.append,
        isolate=True,
        skip_unavailable=True,
        method_spec=method_spec,
        limits=Limits(timeout=args.timeout, quarantine_after=1),
        references={case.id: ref},  # computed once, for the printout and the verdicts
        order=args.order,
    )
    for name, why in stats.skipped.items():
        if explicit:
            print(f"gradxval: backend {name} did not run: {why}", file=sys.stderr)
    bad = any(v.verdict in ("disagree", "error") for v in verdicts)
    if args.json:
        for v in verdicts:
            print(json.dumps(v.to_json(), sort_keys=True))
        return 1 if bad else (4 if explicit and stats.skipped else 0)
    print(
        f"case {case.id}: A {case.m}x{case.n} {case.dtype}, x {case.x_shape}, "
        f"regime {case.regime}" + (f" ({case.special_kind})" if case.special_kind else "")
    )
    for q, val in ref.values.items():
        print(f"reference {q}: {_plain(np.asarray(val))}")
    print()
    width = max([len(f"{v.backend}/{v.method}") for v in verdicts] + [14]) + 1
    print(
        f"{'backend/method':{width}} {'quantity':8} {'verdict':11} {'error_u':>12} {'tol_u':>7}  "
        "worst index: actual vs reference"
    )
    for v in verdicts:
        err = "" if v.error_u is None else f"{v.error_u:.6g}"
        tol = "" if v.tolerance_u is None else f"{v.tolerance_u:g}"
        where = ""
        if v.worst_index is not None:
            where = f"{tuple(v.worst_index)}: {v.actual} vs {v.reference}"
        if v.verdict in ("unsupported", "error"):
            where = v.message
        print(
            f"{v.backend + '/' + v.method:{width}} {v.quantity:8} {v.verdict:11} {err:>12} "
            f"{tol:>7}  {where}"
        )
    return 1 if bad else (4 if explicit and stats.skipped else 0)


def _plain(a) -> str:
    import numpy as np

    with np.printoptions(precision=17, threshold=20, edgeitems=3):
        return np.array2string(a, separator=", ") if a.ndim else repr(a.item())


def _check_size(case, limit: int) -> None:
    from gradxval.dtypes import info

    need = (case.m * case.n + case.n * (case.k or 1)) * info(case.dtype).np.itemsize * 8
    if need > limit:
        raise UsageError(
            f"case {case.id} needs about {need / 2**30:.1f} GiB (inputs, reference and results), "
            f"more than {limit / 2**30:.1f} GiB per process here"
        )
