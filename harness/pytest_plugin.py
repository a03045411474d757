"""pytest plugin: gradxval's cross-validation as test items (registered through pytest11).

Importing this module imports no framework: backends load when gradxval items are collected.
The items come from any test that requests the ``gradxval_check`` fixture; gradxval ships one,
so ``pytest --pyargs gradxval`` runs the whole cross-validation in any project.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

__all__ = ["GradxvalCheck"]

_OPTIONS = {
    # name: (default, help)
    "backends": ("all", "backends to check: comma list, 'all', or package.module:Class"),
    "dtypes": ("all", "dtype names, comma list or 'all'"),
    "regimes": ("all", "input regimes, comma list or 'all'"),
    "methods": ("core", "methods: core (autodiff, closed_form), all (adds forward, vmap, eager)"),
    "problems": ("logistic", "problems: names (tanh, softplus, ...), module:attr, or 'all'"),
    "order": ("1", "1: loss and gradients; 2: hvp_x (Hessian-vector products); all: both"),
    "cases": ("36", "number of random cases"),
    "seed": ("20261126", "run seed: an int, 'random', or 'last' (remembered in pytest's cache)"),
    "report": ("", "also write results.jsonl, summary.json and report.md into this directory"),
    "profile": ("quick", "Hypothesis profile of the property test: quick or thorough"),
    "max-size": ("64", "largest m and n the property test draws"),
    "shard": ("", "run the I-th of N disjoint, stable slices of the cases, e.g. 2/4"),
}
_CACHE_KEY = "gradxval/seed"
_STASH = pytest.StashKey["_Session"]()


def pytest_addoption(parser) -> None:
    group = parser.getgroup("gradxval", "gradxval cross-validation")
    for name, (default, help_) in _OPTIONS.items():
        key = name.replace("-", "_")
        group.addoption(
            f"--gradxval-{name}",
            dest=f"gradxval_{key}",
            default=None,
            help=f"{help_} (ini: gradxval_{key}; default {default or 'none'})",
        )
        parser.addini(f"gradxval_{name.replace('-', '_')}", help_, default=default)
    group.addoption(
        "--gradxval-strict",
        dest="gradxval_strict",
        action="store_true",
        default=None,
        help="known disagreements fail instead of xfail",
    )
    parser.addini("gradxval_strict", "known disagreements fail", type="bool", default=False)


def _opt(config, name: str):
    value = config.getoption(f"gradxval_{name}")
    return config.getini(f"gradxval_{name}") if value is None else value


def _resolve_seed(config) -> int:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "gradxval_seed" in workerinput:
        return int(workerinput["gradxval_seed"])  # xdist: the controller decided
    raw = str(_opt(config, "seed")).strip()
    cache = getattr(config, "cache", None)
    if raw == "random":
        seed = secrets.randbelow(2**31)
    elif raw == "last":
        seed = cache.get(_CACHE_KEY, None) if cache else None
        if seed is None:
            raise pytest.UsageError(
                "--gradxval-seed=last, but no earlier seed is in pytest's cache"
            )
    else:
        try:
            seed = int(raw)
        except ValueError:
            raise pytest.UsageError(
                f"--gradxval-seed={raw!r}, expected an int, 'random' or 'last'"
            ) from None
    if cache is not None and workerinput is None:
        cache.set(_CACHE_KEY, seed)
    return seed


class _XdistHooks:
    def pytest_configure_node(self, node) -> None:
        node.workerinput["gradxval_seed"] = node.config.stash[_STASH].seed


class _JudgedCounter:
    """Counts judged results over the session (xdist workers' reports included); a session
    whose gradxval items judged nothing fails: it tested nothing."""

    def __init__(self):
        self.items = 0
        self.judged = 0

    def pytest_runtest_logreport(self, report) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == "gradxval_judged":
                self.items += 1
                self.judged += int(value)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus) -> None:
        if self.items and not self.judged and not hasattr(session.config, "workerinput"):
            tr = session.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.write_line(
                    f"gradxval: nothing tested: {self.items} items ran and none judged a "
                    "result (every one unsupported)",
                    red=True,
                )
            session.exitstatus = pytest.ExitCode.USAGE_ERROR


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "gradxval: a gradxval cross-validation item")
    s = config.stash[_STASH] = _Session(config)
    s.validate()  # a bad option is one line before collection, not a traceback during it
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(_JudgedCounter(), "gradxval-judged")
    if s.report is not None and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_ReportCollector(s), "gradxval-report")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "gradxval-xdist")


def pytest_report_header(config) -> list[str]:
    s = config.stash[_STASH]
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    from gradxval.backends import distributions

    for pkg in dict.fromkeys(("numpy", "ml_dtypes") + distributions()):
        try:
            versions.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            versions.append(f"{pkg} not installed")
    return [
        f"gradxval: seed {s.seed} (replay with --gradxval-seed={s.seed}), "
        f"backends {_opt(config, 'backends')}, cases {_opt(config, 'cases')}",
        "gradxval frameworks: " + ", ".join(versions),
        "gradxval precision flags: jax x64 scoped to float64/complex128 calls; torch float32 "
        "matmul precision 'highest'; each framework's default CPU device",
    ]


class _Session:
    """Per-process state: the resolved options, a cache of evaluated cases, collected records."""

    def __init__(self, config):
        self.config = config
        self.seed = _resolve_seed(config)
        self.strict = bool(_opt(config, "strict"))
        report = _opt(config, "report")
        self.report = Path(report) if report else None
        self._verdicts: dict[str, list] = {}
        self.records: list[dict] = []
        self.order: dict[str, int] = {}
        self._backends = None
        self.usage_error: str | None = None
        from gradxval.errors import UsageError
        from gradxval.model.problems import parse_order
        from gradxval.run.runner import parse_methods

        try:
            self.method_spec = parse_methods(str(_opt(config, "methods")))
            self.derivatives = str(_opt(config, "order")).strip()
            self.quantities = parse_order(self.derivatives)
        except UsageError as exc:
            raise pytest.UsageError(f"gradxval: {exc}") from None

    def validate(self) -> None:
        """Check every option now (no framework is loaded); a usage error ends the session."""
        self.selection()

    def selection(self):
        """(cases, backend names, explicit) from the options; usage errors stop the session."""
        from gradxval.backends import parse_backends
        from gradxval.dtypes import parse_dtypes
        from gradxval.errors import UsageError
        from gradxval.model.cases import parse_regimes, sample_cases
        from gradxval.model.problems import domains, parse_problems

        try:
            names, explicit = parse_backends(_opt(self.config, "backends"))
            raw = str(_opt(self.config, "cases"))
            try:
                count = int(raw)
            except ValueError:
                raise UsageError(f"--gradxval-cases={raw!r}, expected a count >= 1") from None
            _check_method_names(self.method_spec, names)
            if count < 1:
                raise UsageError(
                    f"--gradxval-cases={count}: nothing would be tested; give a count >= 1"
                )
            for name in ("dtypes", "regimes", "problems", "backends"):
                spec = str(_opt(self.config, name)).strip()
                if not [x for x in spec.split(",") if x.strip()]:
                    raise UsageError(f"--gradxval-{name}={spec!r} names nothing")
            dtypes = parse_dtypes(_opt(self.config, "dtypes"))
            regimes = parse_regimes(_opt(self.config, "regimes"))
            problems = parse_problems(str(_opt(self.config, "problems")))
            cases = sample_cases(
                count,
                self.seed,
                dtypes,
                regimes,
                problems=problems,
                domains=domains(problems, dtypes, regimes),
            )
        except (UsageError, ValueError) as exc:
            raise pytest.UsageError(f"gradxval: {exc}") from None
        from gradxval.campaign import parse_shard, shard_cases

        try:
            shard = parse_shard(str(_opt(self.config, "shard")).strip() or None)
        except UsageError as exc:
            raise pytest.UsageError(f"gradxval: {exc}") from None
        self.order = {c.id: i for i, c in enumerate(cases)}
        return shard_cases(cases, shard), names, explicit

    def backends(self, names, explicit):
        """name -> methods for the backends that load.  Every named one must, and so must
        every registered plug-in and installed framework under 'all': a dropped backend fails
        the session (only a built-in whose framework is not installed is left out)."""
        if self._backends is None:
            from gradxval.backends import describe, not_installed
            from gradxval.run.runner import select_jobs

            self._backends = {}
            for n in names:
                info = describe(n)
                if info.available:
                    first, second = select_jobs(info, self.method_spec, self.quantities)
                    # one item per method: its verdicts cover both orders' quantities
                    self._backends[n] = tuple(dict.fromkeys(first + second))
                elif explicit or not not_installed(n):
                    raise pytest.UsageError(f"gradxval: backend {n} did not load: {info.reason}")
            if not self._backends:
                raise pytest.UsageError("gradxval: nothing to test: no backend is available")
            if isinstance(self.method_spec, tuple):
                have = {
                    m
                    for n in self._backends
                    for m in (*describe(n).methods, *describe(n).hvp_methods)
                }
                unknown = [m for m in self.method_spec if m not in have]
                if len(unknown) == len(self.method_spec):
                    raise pytest.UsageError(
                        f"gradxval: --gradxval-methods={','.join(unknown)!r}: no selected "
                        f"backend has such a method; they have {', '.join(sorted(have))}"
                    )
        return self._backends

    def verdicts(self, case_id: str, names) -> list:
        """Every verdict of one case, computed once per process (all backends, for attribution)."""
        if case_id not in self._verdicts:
            from gradxval.model.cases import Case
            from gradxval.run.runner import run_cases

            out: list = []
            run_cases(
                [Case.from_id(case_id)],
                names,
                out.append,
                isolate=False,
                method_spec=self.method_spec,
                order=self.derivatives,
            )
            self._verdicts[case_id] = out
        return self._verdicts[case_id]


def _check_method_names(spec, names) -> None:
    from gradxval.backends import BUILTIN
    from gradxval.errors import UsageError
    from gradxval.run.runner import HVP_METHODS, KNOWN_METHODS

    known = tuple(dict.fromkeys(KNOWN_METHODS + HVP_METHODS))
    if isinstance(spec, tuple) and all(n in BUILTIN for n in names):
        unknown = [m for m in spec if m not in known]
        if unknown:
            raise UsageError(
                f"--gradxval-methods={','.join(unknown)!r}: no selected backend has such a "
                f"method; expected core, all, or names from {', '.join(known)}"
            )


def pytest_collection_modifyitems(session, config, items) -> None:
    s = config.stash.get(_STASH, None)
    if s is not None and s.usage_error:
        raise pytest.UsageError(s.usage_error)


def pytest_generate_tests(metafunc) -> None:
    if "gradxval_check" not in metafunc.fixturenames:
        return
    s = metafunc.config.stash[_STASH]
    try:
        cases, names, explicit = s.selection()
        backends = s.backends(names, explicit)
    except pytest.UsageError as exc:
        # found while collecting (backends load only when gradxval items are collected): a
        # collector would show it with a traceback, so it is raised once collection is over
        s.usage_error = str(exc)
        metafunc.parametrize("gradxval_check", [], ids=[], indirect=True)
        return
    params, ids = [], []
    for case in cases:
        shape = case.id.split("-")[2]
        problem = "" if case.problem == "logistic" else f"{case.problem.replace(':', '.')}-"
        for name, methods in backends.items():
            for method in methods:
                params.append((case.id, name, method, tuple(backends)))
                label = name.replace(":", ".")
                ids.append(
                    f"{label}-{method}-{problem}{case.dtype}-{case.regime}-{shape}-s{case.seed}"
                )
    metafunc.parametrize("gradxval_check", params, ids=ids, indirect=True)


@pytest.fixture
def gradxval_property(request):
    """Run the Hypothesis property over the selected backends: no case disagrees or errors.

    Returns a callable; the test calls it.  Settings come from --gradxval-profile.
    """
    pytest.importorskip("hypothesis")
    from gradxval.dtypes import parse_dtypes
    from gradxval.model.cases import parse_regimes
    from gradxval.model.strategies import cases, profile
    from hypothesis import given

    s = request.config.stash[_STASH]
    _, names, explicit = s.selection()
    names = tuple(s.backends(names, explicit))
    strategy = cases(
        parse_dtypes(_opt(request.config, "dtypes")),
        parse_regimes(_opt(request.config, "regimes")),
        max_size=int(_opt(request.config, "max_size")),
    )
    strict = s.strict

    def run() -> None:
        __tracebackhide__ = True
        from gradxval.run.runner import run_cases

        @profile(_opt(request.config, "profile"))
        @given(strategy)
        def prop(case):
            out: list = []
            run_cases(
                [case],
                names,
                out.append,
                isolate=False,
                method_spec=s.method_spec,
                order=s.derivatives,
            )
            bad = [
                v
                for v in out
                if v.verdict in ("disagree", "error") or (strict and v.verdict == "known")
            ]
            assert not bad, "\n".join(_failure_text(v) for v in bad)

        prop()

    return run


class GradxvalCheck:
    """One item: a case x backend x method, judged on loss, grad_x and grad_A."""

    def _standalone(self, v):
        """Write repro_<id>.py for a disagreement: into --gradxval-report, else pytest's cache."""
        if v.verdict not in ("disagree", "known"):
            return None
        from gradxval.followup.repro import write_reproducer
        from gradxval.judge.problem_reference import reference_for
        from gradxval.model.cases import Case

        config = self.item.config
        if self.session.report is not None:
            directory = self.session.report
            directory.mkdir(parents=True, exist_ok=True)
        elif getattr(config, "cache", None) is not None:
            directory = config.cache.mkdir("gradxval-repro")
        else:
            return None
        case = Case.from_id(v.case_id)
        ref = reference_for(case, case.inputs())
        return write_reproducer(
            directory, case, v.backend, v.method, v.quantity, ref, v.tolerance_u, ""
        )

    def __init__(self, session: _Session, item, case_id, backend, method, names):
        self.session, self.item = session, item
        self.case_id, self.backend, self.method, self.names = case_id, backend, method, names

    def verdicts(self) -> list:
        return [
            v
            for v in self.session.verdicts(self.case_id, self.names)
            if v.backend == self.backend and v.method == self.method
        ]

    def verify(self) -> None:
        """Fail on a disagreement or error, xfail on a known one, skip when unsupported."""
        __tracebackhide__ = True
        mine = self.verdicts()
        props = self.item.user_properties
        for v in mine:
            if v.error_u is not None:
                props.append((f"gradxval_{v.quantity}_error_u", f"{v.error_u:.6g}"))
                props.append((f"gradxval_{v.quantity}_tolerance_u", f"{v.tolerance_u:.6g}"))
        if self.session.report is not None:
            props.append(("gradxval_verdicts", json.dumps([v.to_json() for v in mine])))
        judged = sum(v.verdict in ("agree", "overflow", "disagree", "known") for v in mine)
        props.append(("gradxval_judged", str(judged)))
        failing = [v for v in mine if v.verdict in ("disagree", "error")]
        known = [v for v in mine if v.verdict == "known"]
        if self.session.strict:
            failing += known
        if failing:
            texts = [_failure_text(v, self._standalone(v)) for v in failing]
            pytest.fail("\n".join(texts), pytrace=False)
        if known:
            pytest.xfail("; ".join(_known_text(v) for v in known))
        if mine and all(v.verdict == "unsupported" for v in mine):
            pytest.skip(mine[0].message)


def _failure_text(v, standalone=None) -> str:
    lines = [f"gradxval: {v.backend}/{v.method} {v.quantity} on {v.case_id}: {v.verdict}"]
    if v.verdict == "error":
        lines.append(f"  {v.message}")
    else:
        where = tuple(v.worst_index) if v.worst_index is not None else "()"
        lines += [
            f"  at index {where}: actual {v.actual}, reference {v.reference}",
            f"  error {_u(v.error_u)} u, tolerance {_u(v.tolerance_u)} u",
        ]
        if v.classification:
            lines.append(f"  known entry (failing under --gradxval-strict): {v.classification}")
        if v.attribution:
            lines.append(f"  attribution: {v.attribution}")
    lines.append(f"  reproduce: {v.reproduce}")
    if standalone:
        lines.append(f"  standalone reproducer (numpy and the framework only): {standalone}")
    return "\n".join(lines)


def _u(x) -> str:
    return "inf" if x is None or x == float("inf") else f"{x:.4g}"


def _known_text(v) -> str:
    from gradxval.judge.known import load_registry

    reg = load_registry()
    parts = []
    for entry_id in v.classification.split("+"):
        e = reg.get(entry_id)
        parts.append(f"known {e.id}: {e.title} ({', '.join(e.upstream)})")
    return f"{v.quantity}: " + "; ".join(parts)


@pytest.fixture
def gradxval_check(request) -> GradxvalCheck:
    """The check for one case x backend x method; call ``.verify()`` in the test."""
    if not hasattr(request, "param"):
        pytest.skip("gradxval_check is parametrized by the gradxval plugin only")
    case_id, backend, method, names = request.param
    request.node.add_marker("gradxval")
    return GradxvalCheck(
        request.config.stash[_STASH], request.node, case_id, backend, method, names
    )


class _ReportCollector:
    """Gathers verdict records from every item's report: from xdist workers too, since
    user_properties travel with the reports to the controller."""

    def __init__(self, session: _Session):
        self.session = session

    def pytest_runtest_logreport(self, report) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == "gradxval_verdicts":
                self.session.records.extend(json.loads(value))

    def pytest_sessionfinish(self, session) -> None:
        write_plugin_report(self.session, list(self.session.records))


def write_plugin_report(s: _Session, records: list[dict]) -> None:
    """Write the same report as ``gradxval run --out``; records sorted into run order, so
    serial and parallel (xdist) runs write the same files."""
    from gradxval.backends import describe
    from gradxval.judge.known import load_registry
    from gradxval.output import environment, file_writer, summarize, write_reports
    from gradxval.output.tally import tally_of

    if not s.order:
        s.selection()
    from gradxval.model.problems import QUANTITIES, SECOND_ORDER

    backends = list(dict.fromkeys(r["backend"] for r in records))
    quantities = {q: k for k, q in enumerate((*QUANTITIES, *SECOND_ORDER))}
    records.sort(
        key=lambda r: (
            s.order.get(r["case_id"], 1 << 30),
            r["case_id"],
            quantities.get(r["quantity"], len(quantities)),
            backends.index(r["backend"]),
            r["method"],
        )
    )
    for r in records:
        r.get("extra", {}).pop("seconds", None)  # timings differ between runs
    s.report.mkdir(parents=True, exist_ok=True)
    with open(s.report / "results.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    run = {
        "cases": len({r["case_id"] for r in records}),
        "seed": s.seed,
        "seconds": None,
        "source": "pytest plugin",
        "strict": s.strict,
    }
    infos = [describe(b) for b in sorted(backends)]
    tally = tally_of(records)
    registry = load_registry()
    summary = summarize(tally, environment(infos), run, registry)
    write_reports(file_writer(s.report), tally, summary, registry)


# ---- declared functions: a module-level gradxval.function named like a test becomes one test
# item per case (ids such as "float32-normal-m3n4-s123456"), judged on every backend


def pytest_pycollect_makeitem(collector, name, obj):
    from gradxval.model.functions import Function

    if isinstance(obj, Function) and collector.funcnamefilter(name):
        return _FunctionCollector.from_parent(collector, name=name, function=obj)
    return None


class _FunctionCollector(pytest.Collector):
    def __init__(self, *, function, **kw) -> None:
        super().__init__(**kw)
        self.function = function

    def collect(self):
        from gradxval.dtypes import parse_dtypes
        from gradxval.model.sampling import has_cases, sample

        config = self.config
        dtypes = parse_dtypes(_opt(config, "dtypes"))
        regimes = _opt(config, "regimes")
        regimes = None if regimes in (None, "", "all") else tuple(regimes.split(","))
        if not has_cases(self.function, dtypes, regimes):
            return  # a complex function under float64, det_laplace under empty
        cases = sample(self.function, int(_opt(config, "cases")), _resolve_seed(config),
                       dtypes, regimes)  # fmt: skip
        for c in cases:
            yield _FunctionCaseItem.from_parent(self, name=c.id.split(":", 1)[1], case=c)


_FUNCTION_BACKENDS: dict = {}


def _function_backends(config) -> dict:
    spec = _opt(config, "backends") or "all"
    if spec not in _FUNCTION_BACKENDS:
        from gradxval.run.check_case import load_backends

        _FUNCTION_BACKENDS[spec] = load_backends(spec)
    return _FUNCTION_BACKENDS[spec]


class _FunctionCaseItem(pytest.Item):
    def __init__(self, *, case, **kw) -> None:
        super().__init__(**kw)
        self.case = case

    def runtest(self) -> None:
        from gradxval.judge.verdict import FAILING
        from gradxval.output.check_report import describe
        from gradxval.run.check_case import check_case

        order = int(_opt(self.config, "order")) if _opt(self.config, "order") != "all" else 2
        function = self.parent.function
        records = check_case(function, self.case, _function_backends(self.config), None,
                             max(order, function.order))  # fmt: skip
        self.user_properties.append(("gradxval", {r["outcome"] for r in records}))
        bad = [r for r in records if r["outcome"] in FAILING]
        if bad:
            target = f"{self.fspath}:{self.parent.name}"
            raise _FunctionFailure("\n".join(describe(r).replace("TARGET", target) for r in bad))
        if not any(r["outcome"] != "unsupported" for r in records):
            pytest.skip("no backend could judge this case")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, _FunctionFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.fspath, None, f"{self.parent.name}[{self.name}]"


class _FunctionFailure(Exception):
    """A declared function's case with a disagreement or an error."""
