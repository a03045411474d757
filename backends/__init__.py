"""The backend registry: names -> import strings, loaded lazily, plug-ins from entry points.

Importing this module imports no framework.  A backend's module is imported only by ``load``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.metadata import entry_points

from gradxval.errors import BackendUnavailable, UsageError, expected

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "known_backends",
    "load",
    "describe",
    "parse_backends",
    "not_installed",
    "distributions",
    "DISTRIBUTIONS",
]

ENTRY_POINT_GROUP = "gradxval.backends"

# "off": jax_backend uses no persistent compilation cache; the runner passes it to workers
JAX_CACHE_ENV = "GRADXVAL_JAX_CACHE"

BUILTIN = {
    "numpy": "gradxval.backends.numpy_backend:NumpyBackend",
    "autograd": "gradxval.backends.autograd_backend:AutogradBackend",
    "jax": "gradxval.backends.jax_backend:JaxBackend",
    "torch": "gradxval.backends.torch_backend:TorchBackend",
}


@lru_cache(maxsize=1)
def _plugins() -> dict[str, str]:
    # read the entry-point group once; the entry points are not loaded here
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_backends() -> dict[str, str]:
    """Name -> import string, built-ins first, then plug-ins."""
    out = dict(BUILTIN)
    for name, target in _plugins().items():
        out.setdefault(name, target)
    return out


def distributions() -> tuple[str, ...]:
    """The distributions every known backend's results depend on (built-ins' frameworks, then
    each plug-in's own package), for version headers and the Dask fingerprint."""
    out = [d for ds in DISTRIBUTIONS.values() for d in ds]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        if dist is not None:
            out.append(dist.metadata["Name"])
    return tuple(dict.fromkeys(out))


def _target(name: str) -> str:
    if ":" in name:  # package.module:ClassName loads a backend without packaging
        return name
    try:
        return known_backends()[name]
    except KeyError:
        raise expected("backend", name, [*known_backends(), "all", "module:Class"]) from None


# the distributions each built-in's results depend on, its framework first: when that is not
# installed, `all` leaves the backend out quietly; any other load failure of a backend that
# `all` selects is a broken install
DISTRIBUTIONS = {
    "numpy": ("numpy",),
    "autograd": ("autograd",),
    "jax": ("jax", "jaxlib"),
    "torch": ("torch",),
}
_INTERFACE = ("evaluate", "evaluate_problem", "version", "dtypes", "flags")


def not_installed(name: str) -> bool:
    """True for a built-in whose framework is not installed (an extra the user did not ask
    for); False for everything else, plug-ins included: they were installed on purpose."""
    import importlib.util

    fw = DISTRIBUTIONS.get(name, (None,))[0]
    return fw is not None and importlib.util.find_spec(fw) is None


@cache
def load(name: str):
    """Import and instantiate a backend, or raise BackendUnavailable saying why."""
    target = _target(name)
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
        backend = cls() if isinstance(cls, type) else cls
    except Exception as exc:  # a missing or broken framework, or a bad plug-in
        raise BackendUnavailable(
            f"backend {name!r} ({target}) failed to load: {type(exc).__name__}: {exc}"
        ) from None
    missing = [a for a in _INTERFACE if not callable(getattr(backend, a, None))]
    methods = getattr(backend, "methods", None)
    if not isinstance(methods, tuple) or not methods:
        missing.append("methods (a non-empty tuple of names)")
    if missing:
        raise BackendUnavailable(
            f"backend {name!r} ({target}) is not a gradxval Backend: it lacks "
            f"{', '.join(missing)}; subclass gradxval.backends.base.Backend"
        )
    return backend


@dataclass
class BackendInfo:
    name: str
    available: bool
    version: str
    dtypes: tuple[str, ...]
    methods: tuple[str, ...]
    reason: str
    flags: dict
    compiles: bool = False  # compiles per shape and dtype: the runner may shard it over cores
    declared: str = ""  # the name the backend's class declares (may differ from the spec)
    hvp_methods: tuple[str, ...] = ()  # the methods that compute hvp_x (second order)


def describe(name: str) -> BackendInfo:
    """Load a backend and say what it is, or why it is not available."""
    try:
        b = load(name)
    except BackendUnavailable as exc:
        return BackendInfo(name, False, "", (), (), str(exc), {})
    try:
        return BackendInfo(
            name,
            True,
            str(b.version()),
            tuple(b.dtypes()),
            tuple(b.methods),
            "",
            dict(b.flags()),
            bool(getattr(b, "compiles", False)),
            str(getattr(b, "name", "") or ""),
            tuple(getattr(b, "hvp_methods", ()) or ()),
        )
    except Exception as exc:  # a plug-in whose version() or dtypes() raises
        return BackendInfo(
            name, False, "", (), (), f"backend {name!r}: {type(exc).__name__}: {exc}", {}
        )


def parse_backends(spec: str | None) -> tuple[tuple[str, ...], bool]:
    """Parse 'numpy,torch' or 'all' (the default) into names, without loading anything.

    Returns (names, explicit).  With 'all', backends that fail to load are skipped; a backend
    named explicitly must load, or the run stops with a usage error.
    """
    if not spec or spec == "all":
        return tuple(known_backends()), False
    names = tuple(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    if not names:
        raise UsageError("backends='', expected a comma-separated list or 'all'")
    for n in names:
        _target(n)
    return names, True
