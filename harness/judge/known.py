"""The known-disagreement registry: a ``known`` label is a claim, checked three ways.

An entry turns a disagreement into ``known`` only when all of these hold:
- **scope**: the result comes from a library the entry names (a built-in backend, or the
  plug-in whose own package ships the entry), at a version inside the entry's range, through
  one of the methods the entry names (a derivative rule of autodiff never excuses a closed
  form);
- **problem and quantity**: the entry covers them;
- **evidence**: the entry's wrong computation explains every element of the result, not only
  the failing ones (see evidence.py).

Built-in entries live in known.toml beside this module and may name built-in backends only.  A
plug-in package ships its own known.toml and registers its package in the ``gradxval.known``
entry-point group under its backend's name; its entries may name that backend only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, entry_points
from importlib.metadata import version as dist_version
from pathlib import Path

import numpy as np
from gradxval.errors import GradxvalError, UsageError
from gradxval.judge.evidence import DTYPE_EVIDENCE, EVIDENCE
from gradxval.model.cases import Case

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["KnownEntry", "Scope", "Match", "Registry", "load_registry", "KNOWN_ENTRY_POINT_GROUP"]

KNOWN_ENTRY_POINT_GROUP = "gradxval.known"


@dataclass(frozen=True)
class Scope:
    """Who has the fault: backends (by registry name), the methods it shows through, and the
    versions of the distributions whose code has it (PEP 440 specifiers)."""

    backends: tuple[str, ...]
    methods: tuple[str, ...]
    versions: tuple[tuple[str, str], ...] = ()

    def covers(self, backend: str, method: str) -> bool:
        return backend in self.backends and method in self.methods and _versions_ok(self.versions)

    def text(self) -> str:
        v = ", ".join(f"{d} {s}" for d, s in self.versions)
        return f"{'/'.join(self.backends)} [{', '.join(self.methods)}]" + (f" ({v})" if v else "")


@dataclass(frozen=True)
class KnownEntry:
    id: str
    title: str
    reason: str
    evidence: str
    quantities: tuple[str, ...]
    upstream: tuple[str, ...]
    scopes: tuple[Scope, ...]
    problems: tuple[str, ...] = ()  # the problems the evidence applies to; () means all
    dtypes: tuple[str, ...] = ()  # () means all
    source: str = "gradxval"  # 'gradxval' or the plug-in that ships the entry

    def covers(self, case: Case, backend: str, method: str, quantity: str) -> bool:
        return (
            quantity in self.quantities
            and (not self.problems or case.problem in self.problems)
            and (not self.dtypes or case.dtype in self.dtypes)
            and any(s.covers(backend, method) for s in self.scopes)
        )


@dataclass
class Match:
    """The in-scope entries that explain part of a result, and which elements they explain."""

    entries: list[KnownEntry] = field(default_factory=list)
    explained: np.ndarray | None = None  # union over entries, shape of the result
    complete: bool = False  # every element explained, and something failed


def _versions_ok(versions) -> bool:
    from packaging.specifiers import SpecifierSet

    for dist, spec in versions:
        have = _installed(dist)
        if have is None or have not in SpecifierSet(spec, prereleases=True):
            return False
    return True


@cache
def _installed(dist: str) -> str | None:
    try:
        return dist_version(dist)
    except PackageNotFoundError:
        return None


def backend_identity(spec: str) -> str:
    """The registry name a backend spec stands for: a built-in's or plug-in's name when the spec
    is its name or its exact import string, else the spec itself (which no entry names)."""
    from gradxval.backends import known_backends

    if ":" not in spec:
        return spec
    for name, target in known_backends().items():
        if target == spec:
            return name
    return spec


class Registry:
    """The loaded entries, matched by scope first, then by evidence."""

    def __init__(self, entries: list[KnownEntry]):
        self.entries = entries

    def match(
        self, case: Case, backend: str, method: str, quantity: str, actual, ref, ms, tol
    ) -> Match:
        """The entries in scope whose evidence explains part of the result; ``complete`` when
        together they explain every element and some element fails.

        A result can carry two known faults at once (a saturated x cancels in sigma(1 - sigma)
        while a very negative one underflows), so explanations combine element by element.
        """
        who = backend_identity(backend)
        out = Match(explained=np.zeros(np.shape(ms.e), dtype=bool))
        failing = ms.e > tol
        contradicted = np.zeros(np.shape(ms.e), dtype=bool)
        for entry in self.entries:
            if entry.evidence not in EVIDENCE or not entry.covers(case, who, method, quantity):
                continue
            with np.errstate(all="ignore"):
                explained = EVIDENCE[entry.evidence](case, quantity, actual, ref, ms, tol)
            if explained is None or not (explained & failing & ~out.explained).any():
                continue
            # an element that agrees with the reference where this entry's model predicts a
            # clear deviation contradicts the entry; another entry cannot paper over it
            contradicted |= ~explained & ~failing
            out.explained |= explained
            out.entries.append(entry)
        out.explained &= ~contradicted
        out.complete = bool(failing.any() and out.explained.all())
        return out

    def systematic(self, case: Case, backend: str, method: str, quantity: str, ref):
        """(entry id, the value its model predicts) for the in-scope entry with systematic
        evidence (accuracy.SYSTEMATIC), or None.  The run then compares the bias the model
        predicts with the bias the results show (accuracy.py)."""
        from gradxval.judge.accuracy import SYSTEMATIC
        from gradxval.judge.evidence import MODEL_VALUE

        who = backend_identity(backend)
        for entry in self.entries:
            if entry.evidence in SYSTEMATIC and entry.covers(case, who, method, quantity):
                with np.errstate(all="ignore"):
                    value = MODEL_VALUE[entry.evidence](case, quantity, ref)
                if value is not None:
                    return entry.id, value
        return None

    def match_dtype(
        self, case: Case, backend: str, method: str, quantity: str, actual, ref, tol
    ) -> KnownEntry | None:
        """The in-scope entry whose evidence explains a result of the wrong dtype, if any."""
        who = backend_identity(backend)
        for entry in self.entries:
            if entry.evidence in DTYPE_EVIDENCE and entry.covers(case, who, method, quantity):
                if DTYPE_EVIDENCE[entry.evidence](case, quantity, actual, ref, tol):
                    return entry
        return None

    def get(self, entry_id: str) -> KnownEntry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise UsageError(
            f"known entry {entry_id!r} not in registry; entries: "
            + ", ".join(e.id for e in self.entries)
        )


_REQUIRED = ("id", "title", "reason", "evidence", "quantities")


def _parse_entry(raw: dict, path, source: str, allowed: set[str] | None) -> KnownEntry:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    where = f"{path}: entry {raw.get('id')!r}"
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise UsageError(f"{where} lacks {', '.join(missing)}")
    for s in raw.get("scope", []):
        for dist, spec in s.get("versions", {}).items():
            try:
                SpecifierSet(spec)
            except InvalidSpecifier:
                raise UsageError(
                    f"{where}: versions {dist} = {spec!r} is not a PEP 440 range such as '>=2.3'"
                ) from None
    ev = raw.get("evidence")
    if ev not in EVIDENCE and ev not in DTYPE_EVIDENCE:
        names = ", ".join([*EVIDENCE, *DTYPE_EVIDENCE])
        raise UsageError(f"{where} has evidence={ev!r}, expected one of {names}")
    scopes = []
    for s in raw.get("scope", []):
        backends, methods = tuple(s.get("backends", ())), tuple(s.get("methods", ()))
        if not backends or not methods:
            raise UsageError(f"{where}: every [[entry.scope]] names backends and methods")
        if allowed is not None and not set(backends) <= allowed:
            raise UsageError(
                f"{where} names backends {sorted(set(backends) - allowed)}; a registry may name "
                f"only {', '.join(sorted(allowed))}"
            )
        scopes.append(Scope(backends, methods, tuple(sorted(s.get("versions", {}).items()))))
    if not scopes:
        raise UsageError(f"{where} has no [[entry.scope]]: say which library has the fault")
    return KnownEntry(
        id=raw["id"],
        title=raw["title"],
        reason=" ".join(raw["reason"].split()),
        evidence=ev,
        quantities=tuple(raw["quantities"]),
        upstream=tuple(raw.get("upstream", ())),
        scopes=tuple(scopes),
        problems=tuple(raw.get("problems", ())),
        dtypes=tuple(raw.get("dtypes", ())),
        source=source,
    )


def _read(path: Path, source: str, allowed: set[str] | None) -> list[KnownEntry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"known registry {path} cannot be read: {exc}") from None
    return [_parse_entry(raw, path, source, allowed) for raw in data.get("entry", [])]


def _dist_name(ep) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


def _plugin_registries() -> list[tuple[str, Path]]:
    """(backend name, known.toml path) for each package in the gradxval.known group.

    A registry may speak only for a plug-in backend of its own distribution: its entry-point
    name must be a backend that the same distribution registers in gradxval.backends, and never
    a built-in (a package cannot excuse torch's results by calling its registry "torch").
    """
    from importlib.resources import files

    from gradxval.backends import BUILTIN, ENTRY_POINT_GROUP

    backends_of = {ep.name: _dist_name(ep) for ep in entry_points(group=ENTRY_POINT_GROUP)}
    out = []
    for ep in entry_points(group=KNOWN_ENTRY_POINT_GROUP):
        if ep.name in BUILTIN:
            raise UsageError(
                f"known-registry plug-in {ep.name!r} ({ep.value}, from {_dist_name(ep)}): a "
                "plug-in registry cannot speak for a built-in backend"
            )
        if ep.name not in backends_of or backends_of[ep.name] != _dist_name(ep):
            raise UsageError(
                f"known-registry plug-in {ep.name!r} ({ep.value}, from {_dist_name(ep)}): its "
                "distribution registers no gradxval.backends entry point of that name"
            )
        try:
            path = Path(str(files(ep.value.partition(":")[0]) / "known.toml"))
        except (ModuleNotFoundError, TypeError) as exc:
            raise GradxvalError(
                f"known-registry plug-in {ep.name!r} ({ep.value}) cannot be found: {exc}"
            ) from None
        out.append((ep.name, path))
    return out


def _stamp(path: Path):
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


# Reading it again costs ~4 ms (two entry-point scans of every installed distribution and the
# TOML parses; benchmarks/micro.py): as much as a whole small case, when a caller checks one
# case per call.  The registry is
# kept while the files it read are unchanged and the scan would see the same distributions:
# the same sys.path, its directories unchanged (installing a package adds to one), the same
# entry_points function (a test's monkeypatch misses the cache).
_LOADED: dict = {}


def _path_stamp() -> tuple:
    out = []
    for p in sys.path:
        try:
            out.append((p, os.stat(p or ".").st_mtime_ns))
        except OSError:
            out.append((p, None))
    return tuple(out)


def load_registry(path: str | Path | None = None, plugins: bool = True) -> Registry:
    """Load the packaged known.toml (or ``path``) and every plug-in's own registry."""
    from gradxval.backends import BUILTIN

    key = (str(path) if path else None, plugins)
    seen = (entry_points, _path_stamp())
    hit = _LOADED.get(key)
    if hit is not None and hit[0] == seen and all(_stamp(f) == st for f, st in hit[2]):
        return hit[1]
    main = Path(path) if path else Path(__file__).with_name("known.toml")
    files = [main]
    entries = _read(main, "gradxval", None if path else set(BUILTIN))
    if plugins and path is None:
        for name, p in _plugin_registries():
            entries += _read(p, name, {name})
            files.append(p)
    ids = [e.id for e in entries]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise GradxvalError(f"known entries defined twice: {', '.join(dup)}")
    registry = Registry(entries)
    _LOADED[key] = seen, registry, [(f, _stamp(f)) for f in files]
    return registry
