"""The library API behind ``gradxval run`` and ``gradxval report``: plan, run, resume, rebuild.

The command line and the pytest plugin are front doors over these functions:
- ``plan`` validates every option before any work starts (a usage error names the bad value);
- ``execute`` runs the plan, streams results into a RunDir, survives interrupts, resumes;
- ``rebuild`` writes summary.json and report.md again from a directory's results.jsonl.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from gradxval.errors import GradxvalError, UsageError

__all__ = [
    "Settings",
    "Plan",
    "Outcome",
    "Interrupted",
    "plan",
    "execute",
    "rebuild",
    "write_reports",
    "prepare",
    "handle_signals",
    "merge",
    "parse_shard",
    "shard_cases",
]

DEFAULT_CASES = 300
DEFAULT_SEED = 20261126


@dataclass(frozen=True)
class Settings:
    """What a run judges.  Two runs with the same settings and versions give the same verdicts;
    ``--resume`` refuses a directory whose manifest has other settings."""

    backends: str = "all"
    dtypes: str = "all"
    regimes: str = "all"
    problems: str = "logistic"
    methods: str = "core"
    cases: int = DEFAULT_CASES
    seed: int = DEFAULT_SEED
    strict: bool = False
    allow_accuracy_outliers: bool = False
    shard: str | None = None  # "I/N": the I-th of N disjoint, stable slices of the case list
    order: str = "1"  # "1": loss, grad_x, grad_A; "2": hvp_x; "all": both


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4); None -> None.  Shards are 1-based: 1/N .. N/N."""
    if spec is None:
        return None
    try:
        i, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        raise UsageError(f"shard={spec!r}, expected I/N such as 1/4") from None
    if not 1 <= i <= n:
        raise UsageError(f"shard={spec!r}: need 1 <= I <= N")
    return i, n


def shard_cases(cases: list, shard: tuple[int, int] | None) -> list:
    """The I-th of N slices: every N-th case from the (I-1)-th.  Disjoint, together the whole
    list, and stable: a case's shard depends on its index in the list only."""
    if shard is None:
        return list(cases)
    i, n = shard
    return [c for k, c in enumerate(cases) if k % n == i - 1]


@dataclass
class Plan:
    settings: Settings
    names: tuple[str, ...]
    explicit: bool
    dtypes: tuple[str, ...]
    regimes: tuple[str, ...]
    problems: tuple[str, ...]
    method_spec: object
    cases: list
    asked: dict  # what was asked for by name: backends, methods, dtypes
    all_cases: list = field(default_factory=list)  # the whole list, when this is a shard


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; ``code`` is the exit status to end with (130 or 143)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


@dataclass
class Outcome:
    summary: dict
    tally: object  # the run's streaming summary (output.tally.Tally): kept records, figures
    status: int
    lines: list[str] = field(default_factory=list)  # why the status, one line each
    stats: object = None


def _list(name: str, spec: str) -> str:
    spec = str(spec).strip()
    if not spec or not [s for s in spec.split(",") if s.strip()]:
        raise UsageError(f"{name}={spec!r} names nothing; give a comma list or 'all'")
    return spec


def _check_import_strings(names) -> None:
    """A module:Class backend that cannot be imported or is not a Backend is a usage error,
    found before any case runs (a framework that fails at start-up is not: that is exit 4)."""
    from gradxval.backends import describe

    for n in names:
        if ":" not in n:
            continue
        info = describe(n)
        bad = ("is not a gradxval Backend", "ModuleNotFoundError", "AttributeError: module")
        if not info.available and any(b in info.reason for b in bad):
            raise UsageError(f"--backends {n}: {info.reason}")


def plan(settings: Settings) -> Plan:
    """Validate the settings and draw the cases; raise UsageError on any bad value."""
    from gradxval.backends import BUILTIN, parse_backends
    from gradxval.dtypes import parse_dtypes
    from gradxval.model.cases import parse_regimes, sample_cases
    from gradxval.model.problems import domains, parse_order, parse_problems
    from gradxval.run.runner import HVP_METHODS, KNOWN_METHODS, parse_methods

    s = settings
    for name in ("backends", "dtypes", "regimes", "problems", "methods"):
        _list(name, getattr(s, name))
    if not isinstance(s.cases, int) or s.cases < 0:
        raise UsageError(f"cases={s.cases!r}, expected a count >= 0")
    names, explicit = parse_backends(s.backends)
    _check_import_strings(names)
    dtypes, regimes = parse_dtypes(s.dtypes), parse_regimes(s.regimes)
    problems = parse_problems(s.problems)
    parse_order(s.order)
    method_spec = parse_methods(s.methods)
    if isinstance(method_spec, tuple):
        unknown = [m for m in method_spec if m not in KNOWN_METHODS + HVP_METHODS]
        if unknown and all(n in BUILTIN for n in names):
            raise UsageError(
                f"methods={','.join(unknown)!r}: no selected backend has such a method; "
                f"expected core, all, or names from "
                f"{', '.join(dict.fromkeys(KNOWN_METHODS + HVP_METHODS))}"
            )
    asked = {
        "backends": list(names) if explicit else [],
        "methods": list(method_spec) if isinstance(method_spec, tuple) else [],
        "dtypes": list(dtypes) if s.dtypes != "all" else [],
    }
    shard = parse_shard(s.shard)
    every = sample_cases(
        s.cases,
        s.seed,
        dtypes,
        regimes,
        problems=problems,
        domains=domains(problems, dtypes, regimes),
    )
    cases = shard_cases(every, shard)
    return Plan(s, names, explicit, dtypes, regimes, problems, method_spec, cases, asked, every)


def check_limits(timeout: float, startup_timeout: float, max_memory: float | None) -> None:
    for name, v in (("timeout", timeout), ("startup-timeout", startup_timeout)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise UsageError(f"--{name}={v!r}, expected a finite number of seconds > 0")
    if max_memory is not None and not (math.isfinite(max_memory) and max_memory > 0):
        raise UsageError(f"--max-memory={max_memory!r}, expected a size in GiB > 0")


def case_digest(cases) -> str:
    return hashlib.sha256("\n".join(c.id for c in cases).encode()).hexdigest()[:16]


def _manifest(p: Plan, infos, skipped: dict, results: str = "jsonl") -> dict:
    from gradxval.output import environment
    from gradxval.version import __version__

    return {
        "schema": "gradxval.manifest/1",
        "results": results,
        "gradxval": __version__,
        "python": sys.version.split()[0],
        "settings": asdict(p.settings),
        "cases": len(p.cases),
        "case_digest": case_digest(p.cases),
        "shard": p.settings.shard,
        "plan_cases": len(p.all_cases),
        "plan_digest": case_digest(p.all_cases),
        "versions": {b.name: b.version for b in infos},
        "environment": environment(infos),
        "skipped_backends": skipped,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
    }


def handle_signals() -> Callable[[], None]:
    """Turn SIGTERM into Interrupted(143) and SIGINT into Interrupted(130); return a function
    that restores the previous handlers."""

    def raise_interrupted(signum, frame):
        raise Interrupted(130 if signum == signal.SIGINT else 143)

    old = {sig: signal.signal(sig, raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    return restore


def _resumed_settings(given: dict, manifest: dict) -> Settings:
    saved = Settings(**manifest["settings"])
    differ = {k: (v, getattr(saved, k)) for k, v in given.items() if getattr(saved, k) != v}
    if differ:
        raise UsageError(
            "cannot resume with other settings: "
            + ", ".join(
                f"--{k.replace('_', '-')}={a!r} (the run has {b!r})" for k, (a, b) in differ.items()
            )
        )
    return saved


def prepare(
    given: dict,
    *,
    out=None,
    resume=None,
    overwrite: bool = False,
    baseline=None,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int = 2,
    in_process: bool = False,
    quarantine_after: int = 1,
    results: str = "jsonl",
) -> tuple[Plan, object, dict | None]:
    """Check every option of a run before any work starts, then plan it and open its output
    directory: (plan, RunDir or None, the manifest being resumed or None).

    ``given`` holds the Settings fields asked for; resuming, those must equal the run's own
    (the rest come from its manifest), and its case list must be the one this gradxval draws.
    """
    from pathlib import Path

    from gradxval.output.rundir import RunDir

    if resume is not None and out is not None and Path(out) != Path(resume):
        raise UsageError("give either --out DIR or --resume DIR, not both")
    if baseline is not None and not (Path(baseline) / "summary.json").exists():
        raise UsageError(f"--baseline {baseline}: no summary.json there (not a run)")
    if baseline is not None and out is None and resume is None:
        raise UsageError("--baseline needs --out DIR: the diff reads this run's verdicts there")
    if executor == "dask":
        if in_process:
            raise UsageError("--in-process and --executor dask exclude each other")
        if workers < 1:
            raise UsageError(f"--workers={workers}, expected >= 1")
        from gradxval.run.dask_executor import require_dask

        require_dask()
    elif scheduler:
        raise UsageError("--scheduler needs --executor dask")
    if quarantine_after < 1:
        raise UsageError(f"--quarantine-after={quarantine_after}, expected >= 1")
    manifest = None
    if resume is not None:
        rd = RunDir(resume)
        manifest = rd.read_manifest() if (Path(resume) / "manifest.json").exists() else None
        if manifest is None:
            raise UsageError(f"--resume {resume}: no manifest.json, nothing to resume")
        p = plan(_resumed_settings(given, manifest))
        if (manifest.get("cases"), manifest.get("case_digest")) != (
            len(p.cases),
            case_digest(p.cases),
        ):
            raise UsageError(
                f"--resume {resume}: its case list differs from what this gradxval draws "
                "for the same settings (another gradxval version?)"
            )
        if results != manifest.get("results", "jsonl") and results != "jsonl":
            raise UsageError(
                f"--resume {resume} --store: that run keeps its verdicts in "
                f"{manifest.get('results', 'jsonl')}; resume it without --store"
            )
        rd.open(resume=True)
        return p, rd, manifest
    p = plan(Settings(**given))
    rd = None
    if out is not None:
        rd = RunDir(out, results=results)
        rd.open(overwrite=overwrite)
    elif results != "jsonl":
        raise UsageError("--store needs --out DIR: the store is a directory")
    return p, rd, None


def execute(
    p: Plan,
    out=None,
    *,
    isolate: bool = True,
    limits=None,
    follow_up: bool = True,
    on_case: Callable | None = None,
    resume_manifest: dict | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int = 2,
    on_note: Callable[[str], None] | None = None,
    notes: dict | None = None,
) -> Outcome:
    """Run a plan; stream verdicts into ``out`` (a RunDir, opened) as they are made.

    ``notes`` go into summary.json's "run" as they are (check-backend's conformance problems).

    With ``resume_manifest`` the cases already judged in ``out`` are skipped; the backends'
    versions must equal the manifest's.  An Interrupted exception (from handle_signals) ends
    the run early: the summary is written with ``interrupted: true`` and the status is 130 or
    143.  Failing to write the final files gives status 3 and one line; results.jsonl stays.
    """
    from gradxval.judge.known import load_registry
    from gradxval.output import environment
    from gradxval.output.tally import Tally
    from gradxval.run.runner import run_cases

    registry = load_registry()
    store = out is not None and out.results == "parquet"
    tally, done = Tally(), set()  # the streaming summary: the client keeps no list of records
    if resume_manifest is not None and store:
        done = out.done()  # the summary is read from the store once, at the end
    elif resume_manifest is not None:
        tally, done = out.state(rewrite=True)
    todo = [c for c in p.cases if c.id not in done]
    case_records: list[dict] = []
    finished = [len(done)]  # cases fully judged, this run and before
    started = time.perf_counter()
    ready: dict = {}

    def on_ready(infos, skipped) -> None:
        ready["infos"], ready["skipped"] = infos, skipped
        _check_methods(p, infos)
        if resume_manifest is not None:
            have = {b.name: b.version for b in infos}
            if have != resume_manifest.get("versions"):
                raise UsageError(
                    f"cannot resume {out.path}: backend versions {have} differ from the "
                    f"manifest's {resume_manifest.get('versions')}"
                )
        elif out is not None:
            out.write_manifest(_manifest(p, infos, skipped, out.results))

    def keep(rec: dict) -> None:
        case_records.append(rec)

    def case_done(case, written: bool = False) -> None:
        recs = list(case_records)
        case_records.clear()
        if out is not None and not written:
            out.append_case(case.id, recs)
        if not store:  # a store tallies each part's cases itself: read below
            tally.add_case(recs)
        finished[0] += 1
        if on_case:
            on_case(case)

    interrupted = None
    stats = None
    try:
        if executor == "dask":
            stats = _on_dask(
                p,
                todo,
                limits,
                scheduler,
                workers,
                on_ready,
                on_note,
                keep,
                case_done,
                out if store else None,
            )
        else:
            stats = run_cases(
                todo,
                p.names,
                lambda v: keep(v.to_json()),
                isolate=isolate,
                known=registry,
                on_case=case_done,
                skip_unavailable=True,  # a backend asked for that does not start: exit 4
                method_spec=p.method_spec,
                limits=limits,
                on_ready=on_ready,
                order=p.settings.order,
            )
    except Interrupted as exc:
        interrupted = exc.code
    except KeyboardInterrupt:
        interrupted = 130
    if store:  # what the store holds is the run: its parts' footers (workers wrote some)
        out.close_results()
        tally, held = out.state()
        finished[0] = len(held)
    infos = stats.backends if stats is not None else ready.get("infos", [])
    skipped = stats.skipped if stats is not None else ready.get("skipped", {})
    run = _run_info(
        p,
        cases=finished[0] if interrupted or store else len(p.cases),
        planned=len(p.cases),
        seconds=round(time.perf_counter() - started, 2),
        skipped=skipped,
        quarantined=stats.quarantined if stats is not None else {},
        logs=stats.logs if stats is not None else {},
        interrupted=bool(interrupted),
        resumed=resume_manifest is not None,
    )
    run.update(notes or {})
    tally.order({c.id: k for k, c in enumerate(p.cases)})  # not scheduling order
    if out is not None and follow_up and not interrupted:
        from gradxval.followup.repro import follow_up as _follow_up
        from gradxval.followup.repro import known_reproducers

        versions = {b.name: b.version for b in infos}
        try:  # shrinking can take minutes: an interrupt still leaves a summary
            extra = _follow_up(tally.flagged, out.path, registry, versions)
            for r in tally.flagged:
                r.update(extra.get((r["case_id"], r["backend"], r["method"], r["quantity"]), {}))
            made = known_reproducers(tally.known_small.values(), out.path, versions)
            run["known_reproducers"] = {f"{e} {b}": path for (e, b), path in made.items()}
        except Interrupted as exc:
            run["follow_up"] = f"interrupted ({exc.code}); verdicts complete"
        except KeyboardInterrupt:
            run["follow_up"] = "interrupted; verdicts complete"

    env = environment(infos)
    if resume_manifest is not None and not infos:
        env["backends"] = resume_manifest.get("versions", {})
    outcome = _finish(tally, env, run, out, registry, interrupted, stats)
    if store and not interrupted and finished[0] < len(p.cases):  # lost with workers twice
        outcome.lines.append(f"{finished[0]}/{len(p.cases)} cases are in the store; finish "
                             f"with: gradxval run --resume {out.path}")  # fmt: skip
        outcome.status = 4 if outcome.status == 0 else outcome.status
    return outcome


def _run_info(
    p: Plan, *, cases, planned, seconds, skipped, quarantined, logs, interrupted, resumed
) -> dict:
    """summary.json's "run": the same keys for a run, a resumed run and merged shards."""
    from gradxval.run.runner import determinism_mode

    return {
        "cases": cases,
        "planned_cases": planned,
        "seed": p.settings.seed,
        "seconds": seconds,
        "dtypes": list(p.dtypes),
        "regimes": list(p.regimes),
        "problems": list(p.problems),
        "methods": p.settings.methods,
        "strict": p.settings.strict,
        "allow_accuracy_outliers": p.settings.allow_accuracy_outliers,
        "asked": p.asked,
        "skipped_backends": skipped,
        "dropped_backends": _dropped(p, skipped),
        "quarantined": quarantined,
        "logs": logs,
        "interrupted": interrupted,
        "resumed": resumed,
        "check_determinism": determinism_mode(),
    }


def _finish(tally, env, run, out, registry, interrupted, stats) -> Outcome:
    from gradxval.output import summarize
    from gradxval.output.summary import run_status

    summary = summarize(tally, env, run, registry)
    status, lines = run_status(summary)
    if interrupted:
        status = interrupted
        lines = [
            f"interrupted after {run['cases']}/{run['planned_cases']} "
            f"cases; resume with: gradxval run --resume {out.path if out else 'DIR'}"
        ]
    if out is not None:
        try:
            out.close_results()  # the last store part, before the reports that count it
            write_reports(out, tally, summary, registry)
        except OSError as exc:
            lines.append(
                f"could not write summary.json/report.md in {out.path}: {exc}; the results "
                f"are kept, rebuild them with: gradxval report {out.path}"
            )
            status = 3
    return Outcome(summary, tally, status, lines, stats)


def _check_methods(p: Plan, infos) -> None:
    if not isinstance(p.method_spec, tuple) or not infos:
        return
    have = {m for b in infos for m in (*b.methods, *getattr(b, "hvp_methods", ()))}
    unknown = [m for m in p.method_spec if m not in have]
    from gradxval.run.runner import HVP_METHODS, KNOWN_METHODS

    unknown = [m for m in unknown if m not in KNOWN_METHODS + HVP_METHODS]
    if unknown:
        raise UsageError(
            f"methods={','.join(unknown)!r}: no selected backend has such a method; the "
            f"backends have {', '.join(sorted(have))}"
        )


def _dropped(p: Plan, skipped: dict) -> dict:
    """Backends that did not run although asked for: by name, or registered plug-ins and
    installed frameworks that failed to load (a broken install, not a missing extra)."""
    from gradxval.backends import not_installed

    return {n: why for n, why in skipped.items() if p.explicit or not not_installed(n)}


def write_reports(out, tally, summary: dict, registry) -> None:
    """summary.json, report.md and report.html, each written whole or not at all."""
    from gradxval.output import write_reports as write_all

    write_all(out.write_atomic, tally, summary, registry)


def rebuild(out) -> Outcome:
    """Rebuild summary.json and report.md of a run directory from results.jsonl and the
    manifest (after a SIGKILL, for an old run, or after a registry update)."""

    manifest = out.read_manifest() if (out.path / "manifest.json").exists() else {}
    tally, done = out.state()
    settings = manifest.get("settings", {})
    planned = manifest.get("cases", len(done))
    try:  # what only the finished run knew (its wall time), from the summary it wrote
        old = json.loads((out.path / "summary.json").read_text())
    except (OSError, ValueError):
        old = {}
    old_run = old.get("run") or {}
    try:  # the run's own settings, planned again: the same run keys as the run wrote
        p = plan(Settings(**settings))
        tally.order({c.id: k for k, c in enumerate(p.cases)})  # as the run listed them
        run = _run_info(
            p,
            cases=len(done),
            planned=planned,
            seconds=old_run.get("seconds"),
            skipped=manifest.get("skipped_backends", {}),
            quarantined=old_run.get("quarantined", {}),
            logs=old_run.get("logs", {}),
            interrupted=len(done) < planned,
            resumed=old_run.get("resumed", False),
        )
        for key, value in old_run.items():  # what follow-up added (known_reproducers)
            run.setdefault(key, value)
        run["rebuilt"] = True
    except (TypeError, GradxvalError):  # an old manifest, or a plug-in that is gone
        run = None
    env = manifest.get("environment") or old.get("environment")
    if run is not None and env:
        return _rebuilt(tally, env, run, out, done, planned)
    run = {
        "cases": len(done),
        "planned_cases": planned,
        "seed": settings.get("seed"),
        "seconds": None,
        "methods": settings.get("methods"),
        "strict": settings.get("strict", False),
        "allow_accuracy_outliers": settings.get("allow_accuracy_outliers", False),
        "asked": {},
        "skipped_backends": manifest.get("skipped_backends", {}),
        "dropped_backends": {},
        "interrupted": len(done) < planned,
        "rebuilt": True,
    }
    env = {
        "python": manifest.get("python"),
        "platform": None,
        "gradxval": manifest.get("gradxval"),
        "backends": manifest.get("versions", {}),
        "flags": {},
    }
    if not tally.records and not manifest:
        raise UsageError(f"{out.path} holds no results or manifest.json: not a gradxval run")
    return _rebuilt(tally, env, run, out, done, planned)


def _rebuilt(tally, env, run, out, done, planned) -> Outcome:
    from gradxval.judge.known import load_registry

    outcome = _finish(tally, env, run, out, load_registry(), None, None)
    if run["interrupted"]:
        outcome.lines.append(
            f"{len(done)}/{planned} cases judged; finish with: gradxval run --resume {out.path}"
        )
        outcome.status = 4 if outcome.status == 0 else outcome.status
    return outcome


def merge(out, dirs: list) -> Outcome:
    """Combine shard runs into one run directory, as if unsharded (``gradxval merge``).

    The shards must share settings (shard aside), backend versions and the whole case list,
    each must be complete, and together they must cover every case exactly once.
    """
    from gradxval.judge.known import load_registry
    from gradxval.output.rundir import RunDir
    from gradxval.output.tally import Tally

    shards = []
    for d in dirs:
        rd = RunDir(d)
        m = rd.read_manifest()
        tally, done = rd.state()
        shards.append((d, m, rd, done, tally))
    first = shards[0][1]

    def same(m, key):
        if key == "results":
            return m.get(key, "jsonl") == first.get(key, "jsonl")
        a, b = dict(m.get(key) or {}), dict(first.get(key) or {})
        if key == "settings":
            a.pop("shard", None)
            b.pop("shard", None)
        return a == b

    for d, m, *_ in shards:
        for key in ("settings", "versions", "results"):
            if not same(m, key):
                raise UsageError(f"merge: {d} has other {key} than {shards[0][0]}")
        if (m.get("plan_cases"), m.get("plan_digest")) != (
            first.get("plan_cases"),
            first.get("plan_digest"),
        ):
            raise UsageError(f"merge: {d} comes from another case list than {shards[0][0]}")
        if m.get("shard") is None:
            raise UsageError(f"merge: {d} is not a shard (run with --shard I/N)")
    settings = {k: v for k, v in first["settings"].items() if k != "shard"}
    p = plan(Settings(**settings))
    if (len(p.all_cases), case_digest(p.all_cases)) != (first["plan_cases"], first["plan_digest"]):
        raise UsageError("merge: this gradxval draws another case list for these settings")
    index = {c.id: k for k, c in enumerate(p.all_cases)}
    owner: dict[str, str] = {}
    for d, m, _, done, _ in shards:
        want = {c.id for c in shard_cases(p.all_cases, parse_shard(m["shard"]))}
        if done != want:
            raise UsageError(
                f"merge: {d} (shard {m['shard']}) judged {len(done)} of its {len(want)} cases; "
                f"finish it with gradxval run --resume {d}"
            )
        for cid in done:
            if cid in owner:
                raise UsageError(f"merge: case {cid} is in both {owner[cid]} and {d}")
            owner[cid] = str(d)
    if set(owner) != set(index):
        raise UsageError(
            f"merge: the shards cover {len(owner)} of {len(index)} cases; a shard is missing"
        )
    results = first.get("results", "jsonl")
    out = RunDir(out.path, results=results)
    out.open(overwrite=False)
    manifest = dict(first)
    manifest.update(shard=None, cases=len(p.all_cases), case_digest=case_digest(p.all_cases))
    manifest["merged_from"] = [str(d) for d, *_ in shards]
    out.write_manifest(manifest)
    tally = Tally()
    for k, (_, _, rd, _, t) in enumerate(shards):  # the figures merge; records are not read
        tally.merge(t)
        if results == "parquet":
            _link_parts(rd.path, out.path, f"s{k}")
    if results == "jsonl":  # one case after another, in plan order
        by_case: dict[str, list] = {}
        for _, _, rd, _, _ in shards:
            for r in rd.records():
                by_case.setdefault(r["case_id"], []).append(r)
        for cid in sorted(owner, key=index.get):
            out.append_case(cid, by_case.pop(cid, []))
    tally.order(index)
    run = _run_info(
        p,
        cases=len(p.all_cases),
        planned=len(p.all_cases),
        seconds=None,
        skipped=first.get("skipped_backends", {}),
        quarantined={},
        logs={},
        interrupted=False,
        resumed=False,
    )
    env = first.get("environment") or {"backends": first.get("versions", {})}
    try:
        return _finish(tally, env, run, out, load_registry(), None, None)
    finally:
        out.close()


def _link_parts(src, dest, prefix: str) -> None:
    """A shard's store parts into the merged run's store, renamed apart (hard links where
    the file system allows, else copies): the shards stay as they were."""
    import os
    import shutil

    target = dest / "results"
    target.mkdir(parents=True, exist_ok=True)
    for part in sorted((src / "results").glob("part-*.parquet")):
        final = target / f"part-{prefix}.{part.name.removeprefix('part-')}"
        try:
            os.link(part, final)
        except OSError:
            shutil.copyfile(part, final)


def _on_dask(p, todo, limits, scheduler, workers, on_ready, on_note, keep, done, store=None):
    """execute's body on a Dask cluster (dask_executor.py); returns runner-like stats.  With
    ``store`` (a RunDir keeping a columnar store) the workers write their own parts."""
    from types import SimpleNamespace

    from gradxval.model.cases import Case
    from gradxval.run.dask_executor import run_on_dask
    from gradxval.run.runner import Limits

    def on_case(cid: str, recs: list[dict]) -> None:
        for rec in recs:
            keep(rec)
        done(Case.from_id(cid))

    def on_packed(case_ids: list[str], records: int) -> None:
        for cid in case_ids:  # written by the worker into its own part
            done(Case.from_id(cid), written=True)

    def run(cases, ready):
        pack = finish = None
        if store is not None:  # a token per round: a late task of the last one writes nothing
            import uuid

            from gradxval.output.store import WorkerStore, flush_seconds

            pack = WorkerStore(store.path.resolve(), uuid.uuid4().hex[:8], flush_seconds())
            finish = pack.flush
        return run_on_dask(
            cases,
            p.names,
            p.method_spec,
            limits or Limits(),
            on_case,
            order=p.settings.order,
            scheduler=scheduler,
            workers=workers,
            on_ready=ready,
            on_note=on_note,
            pack=pack,
            on_packed=on_packed,
            finish=finish,
        )

    infos, skipped, quarantined = run(todo, on_ready)
    if store is not None:  # cases a lost worker held unwritten: once more
        have = store.done()
        lost = [c for c in todo if c.id not in have]
        if lost:
            if on_note:
                on_note(f"{len(lost)} cases were lost with a worker before they were written; "
                        "running them again")  # fmt: skip
            infos, skipped2, quarantined2 = run(lost, None)
            skipped.update(skipped2)
            quarantined.update(quarantined2)
    return SimpleNamespace(
        backends=infos, skipped=skipped, quarantined=quarantined, logs={}, cases=len(todo)
    )
