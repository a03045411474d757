"""Check declared functions: the library API behind ``gradxval check`` and ``gradxval.check``.

Plan the cases (sampled per function, or one ``case_id``; a ``shard`` keeps a stable slice),
run each on every backend (here, or on a Dask cluster), write results.jsonl as cases finish and
the reports at the end, and say whether the check passed: against a ``baseline`` check, only
failures that are new fail it.  ``resume`` continues a check in its output directory.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gradxval.errors import UsageError, expected
from gradxval.judge.verdict import FAILING
from gradxval.model.functions import Function
from gradxval.model.sampling import check_regimes, has_cases, parse_case_id, sample
from gradxval.model.targets import load_target
from gradxval.output.check_report import (
    REPORT_FILES,
    new_failures,
    plain,
    read_records,
    summarize,
    write_reports,
)
from gradxval.output.rundir import write_atomic
from gradxval.run.check_case import METHODS, check_case, load_backends, method_quantities
from gradxval.version import __version__

__all__ = [
    "check",
    "merge",
    "CheckResult",
    "load_target",
    "load_backends",
    "method_quantities",
    "plan",
]

MANIFEST = "check.json"  # the settings and case list of a check, for --resume
DONE = "done.txt"  # case ids whose records are all in results.jsonl, one per line
EXECUTORS = ("local", "dask")


@dataclass
class CheckResult:
    """Every record of a check, its counts, and ``ok`` (no disagreement, no error)."""

    records: list = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    baseline: str | None = None  # the base check's directory, with --baseline
    new: list = field(default_factory=list)  # failing records that did not fail in the base

    @property
    def judged(self) -> bool:
        """Whether any result was judged (not everything unsupported)."""
        return any(r["outcome"] != "unsupported" for r in self.records)

    @property
    def ok(self) -> bool:
        """Nothing failed (against a baseline: nothing new), and something was judged: a check
        that judged nothing has not passed."""
        if self.baseline is not None:
            return self.judged and not self.new
        return self.judged and not any(self.counts[o] for o in FAILING)

    @property
    def exit_status(self) -> int:
        """0 ok, 1 a disagreement or an error (new ones, with a baseline), 4 nothing judged."""
        return 4 if not self.judged else 0 if self.ok else 1

    @property
    def failures(self) -> list:
        return [r for r in self.records if r["outcome"] in FAILING]

    def summary(self) -> dict:
        extra = {}
        if self.baseline is not None:
            extra["baseline"] = {"dir": self.baseline, "new": len(self.new)}
        return summarize(self.records, self.ok, self.seconds, extra)


def _functions(target) -> list[Function]:
    functions = (
        load_target(target)
        if isinstance(target, str)
        else (list(target) if isinstance(target, list | tuple) else [target])
    )
    for f in functions:
        if not isinstance(f, Function):
            raise UsageError(
                f"{f!r} is not a declared function: decorate it with @gradxval.function"
            )
    return functions


def parse_shard(shard) -> tuple[int, int] | None:
    """'I/N' or (I, N), 1 <= I <= N, as `gradxval run --shard`; None: the whole check."""
    from gradxval.campaign import parse_shard as parse

    if shard is not None and not isinstance(shard, str):
        shard = "/".join(map(str, shard))
    return parse(shard)


def plan(functions, cases, seed, dtypes, regimes, case_id=None, shard=None) -> list:
    """(function, case) pairs in the order they run; a shard keeps every N-th from the I-th."""
    pairs = []
    for f in functions:
        if case_id:
            c = parse_case_id(case_id)
            if c.function == f.name:
                _check_case_id(f, c, case_id)
                pairs.append((f, c))
        elif len(functions) == 1 or has_cases(f, dtypes, regimes):
            # of several functions, one without cases in what was asked is left out; one
            # function alone says why
            pairs += [(f, c) for c in sample(f, cases, seed, dtypes, regimes)]
    if dtypes and not case_id and not pairs and functions:
        raise UsageError(f"no function of this target is checked in {', '.join(dtypes)}")
    if regimes and not case_id and not pairs and functions:
        raise UsageError("no function of this target has cases in the regimes asked for")
    if case_id and not pairs:
        names = ", ".join(f.name for f in functions)
        raise UsageError(f"--case {case_id}: names no function of this target ({names})")
    from gradxval.campaign import shard_cases

    return shard_cases(pairs, parse_shard(shard))


def _check_case_id(f: Function, c, case_id: str) -> None:
    """A case id names a regime, a dtype of the function and exactly its size symbols."""
    check_regimes((c.regime,))
    if c.dtype not in f.dtypes:
        raise expected(f"dtype in --case {case_id}", c.dtype, f.dtypes)
    names = [k for k, _ in c.sizes]
    if sorted(names) != sorted(f.symbols):
        raise UsageError(f"--case {case_id}: sizes {''.join(names) or 'none'}; {f.name} has "
                         f"the symbols {', '.join(f.symbols)}")  # fmt: skip


def _settings(target, **given) -> dict:
    return {"target": target if isinstance(target, str) else None, **given}


def _resume(out: Path, settings: dict, cases: list[str]) -> tuple[set, list]:
    """The cases done and their records; a case cut short by a crash runs again.  The files
    are rewritten to hold exactly those (atomically: a crash now loses nothing either)."""
    path = out / MANIFEST
    if not path.exists():
        raise UsageError(f"resume {out}: no {MANIFEST}, nothing to resume")
    manifest = json.loads(path.read_text())
    saved = manifest["settings"]
    differ = [f"{k}={v!r} (the check has {saved.get(k)!r})"
              for k, v in settings.items() if saved.get(k) != v]  # fmt: skip
    if differ:
        raise UsageError("cannot resume with other settings: " + ", ".join(differ))
    if manifest.get("cases") != cases:
        raise UsageError(f"resume {out}: its case list differs from what this gradxval draws for "
                         "the same settings (another gradxval version?)")  # fmt: skip
    done_file = out / DONE
    done = set(done_file.read_text().split()) if done_file.exists() else set()
    kept = [r for r in read_records(out / "results.jsonl") if r["case"] in done]
    done &= {r["case"] for r in kept}  # a case listed done whose records are gone runs again
    write_atomic(out / "results.jsonl", "".join(json.dumps(r, default=plain) + "\n" for r in kept))
    write_atomic(out / DONE, "".join(c + "\n" for c in cases if c in done))
    return done, kept


def check(
    target,
    *,
    backends="all",
    dtypes=None,
    regimes=None,
    cases: int = 12,
    seed: int = 0,
    order: int | None = None,
    methods=None,
    case_id: str | None = None,
    out: str | Path | None = None,
    progress=None,
    timeout: float | None = None,
    shard=None,
    resume: bool = False,
    baseline: str | Path | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int = 2,
) -> CheckResult:
    """Check one or more declared functions on every backend; see docs/functions.md."""
    functions = _functions(target)
    for m in methods or ():
        if m not in METHODS:
            raise expected("method", m, METHODS)
    if executor not in EXECUTORS:
        raise expected("executor", executor, EXECUTORS)
    if executor == "dask" and not isinstance(target, str):
        raise UsageError("executor dask needs the target as a string: FILE.py:NAME, module:NAME "
                         "or suite (its workers load it themselves)")  # fmt: skip
    if resume and out is None:
        raise UsageError("resume needs the check's output directory (out)")
    base = None
    if baseline is not None:
        if (
            not (Path(baseline) / MANIFEST).exists()
            or not (Path(baseline) / "summary.json").exists()
        ):
            raise UsageError(f"baseline {baseline}: no {MANIFEST} and summary.json there (not "
                             "a finished gradxval check)")  # fmt: skip
        base = read_records(Path(baseline) / "results.jsonl")
    check_regimes(regimes)
    pairs = plan(functions, cases, seed, dtypes, regimes, case_id, shard)
    settings = _settings(
        target, backends=backends if isinstance(backends, str) else ",".join(backends),
        dtypes=list(dtypes) if dtypes else None, regimes=list(regimes) if regimes else None,
        cases=cases, seed=seed, order=order, methods=list(methods) if methods else None,
        case_id=case_id, shard="/".join(map(str, parse_shard(shard))) if shard else None,
    )  # fmt: skip
    ids = [c.id for _, c in pairs]
    done, kept = _resume(Path(out), settings, ids) if resume else (set(), [])
    loaded = load_backends(backends) if executor == "local" else None
    if executor == "dask":
        from gradxval.run.dask_executor import require_dask

        require_dask()  # every option is checked before any work starts
    result = CheckResult(baseline=str(baseline) if baseline is not None else None)
    result.records.extend(kept)
    result.counts.update(r["outcome"] for r in kept)
    start = time.perf_counter()
    sink = done_sink = None
    if out is not None:
        out = Path(out)
        if not resume:
            out.mkdir(parents=True, exist_ok=True)
            # nothing of an earlier check stays beside this one's results
            for name in (DONE, "results.jsonl", *REPORT_FILES):
                (out / name).unlink(missing_ok=True)
            manifest = {"gradxval": __version__, "settings": settings, "cases": ids}
            write_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        # records are appended as each case is judged, and a case is listed done only after
        # its records are flushed: a crash or an interrupt keeps every case finished
        sink = open(out / "results.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        done_sink = open(out / DONE, "a", encoding="utf-8")  # noqa: SIM115

    def finished(case, recs) -> None:
        result.records.extend(recs)
        result.counts.update(r["outcome"] for r in recs)
        if sink:
            sink.writelines(json.dumps(r, default=plain) + "\n" for r in recs)
            sink.flush()
            done_sink.write(case.id + "\n")
            done_sink.flush()
        if progress:
            progress(case, recs)

    todo = [(f, c) for f, c in pairs if c.id not in done]
    try:
        if executor == "dask":
            from gradxval.run.dask_executor import check_on_dask

            check_on_dask(target, [c.id for _, c in todo], backends, methods, order, timeout,
                          lambda cid, recs: finished(parse_case_id(cid), recs),
                          scheduler=scheduler, workers=workers)  # fmt: skip
        else:
            for f, c in todo:
                finished(c, check_case(f, c, loaded, methods, order or f.order, timeout))
    finally:
        for s in (sink, done_sink):
            if s:
                s.close()
    rank = {c.id: i for i, (_, c) in enumerate(pairs)}  # plan order, whoever ran what first
    result.records.sort(key=lambda r: rank.get(r["case"], len(rank)))
    result.seconds = time.perf_counter() - start
    if base is not None:
        result.new = new_failures(result.records, base)
    if out is not None:
        summary = result.summary()
        if result.baseline is not None:
            summary["baseline"]["new_records"] = result.new
        write_reports(out, summary, result.records, target if isinstance(target, str) else "")
    return result


def merge(out: str | Path, dirs) -> CheckResult:
    """Combine the shards of one check (``shard`` I/N for every I) into ``out``, as if it had
    run whole: every shard present once, the same settings, every case done."""
    shards = {}
    for d in map(Path, dirs):
        path = d / MANIFEST
        if not path.exists():
            raise UsageError(f"merge: {d} has no {MANIFEST} (not a check directory)")
        manifest = json.loads(path.read_text())
        s = manifest["settings"]
        i, n = parse_shard(s["shard"]) if s["shard"] else (1, 1)
        if i in shards:
            raise UsageError(f"merge: shard {i}/{n} given twice ({shards[i][0]} and {d})")
        shards[i] = (d, n, {**s, "shard": None}, manifest)
    first = next(iter(shards.values()))
    n, settings = first[1], first[2]
    for d, n_d, s, _ in shards.values():
        if n_d != n or s != settings:
            raise UsageError(f"merge: {d} is not a shard of the same check as {first[0]}")
    missing = sorted(set(range(1, n + 1)) - set(shards))
    if missing:
        raise UsageError(f"merge: shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing")
    rank, records = {}, []
    for i, (d, _, _, manifest) in sorted(shards.items()):
        done = set((d / DONE).read_text().split()) if (d / DONE).exists() else set()
        left = [c for c in manifest["cases"] if c not in done]
        if left:
            raise UsageError(f"merge: {d} has {len(left)} case(s) not done; resume it first")
        for j, cid in enumerate(manifest["cases"]):
            rank[cid] = j * n + i - 1  # shard i holds cases i-1, i-1+n, ... of the whole
        mine = read_records(d / "results.jsonl")
        lost = sorted(set(manifest["cases"]) - {r["case"] for r in mine})
        if lost:
            raise UsageError(f"merge: {d} lists {len(lost)} case(s) done without their records "
                             f"({lost[0]}, ...); resume it first")  # fmt: skip
        records += [r for r in mine if r["case"] in rank]
    records.sort(key=lambda r: rank[r["case"]])
    result = CheckResult(records=records, counts=Counter(r["outcome"] for r in records))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cases = sorted(rank, key=rank.get)
    manifest = {"gradxval": __version__, "settings": settings, "cases": cases}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    with open(out / "results.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, default=plain) + "\n" for r in records)
    (out / DONE).write_text("".join(c + "\n" for c in cases))
    write_reports(out, result.summary(), records, settings["target"] or "")
    return result
