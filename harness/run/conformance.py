"""The conformance kit behind ``gradxval check-backend``: one actionable line per problem."""

from __future__ import annotations

import numpy as np
from gradxval.dtypes import DTYPES, info
from gradxval.errors import BackendUnavailable, Unsupported
from gradxval.model.cases import Case
from gradxval.model.problems import QUANTITIES

__all__ = ["check_backend", "check_backend_isolated", "failing"]

_PROBES = ("normal-{dtype}-m5n4k2-s1", "normal-{dtype}-m3n6-s2")


def _type_name(v) -> str:
    return f"{type(v).__module__}.{type(v).__qualname__}"


def check_backend(name: str) -> list[str]:
    """Run the conformance checks on a backend; return the problems found, one line each.

    Lines starting with 'known: ' are explained by a known-registry entry and do not fail.
    """
    from gradxval.backends import load

    try:
        backend = load(name)
    except BackendUnavailable as exc:
        return [f"{exc}; fix the import string or install the framework"]
    problems = _interface(backend)
    methods = getattr(backend, "methods", ())
    if not methods or not all(isinstance(m, str) for m in methods):
        return problems  # nothing to call: the value checks cannot run
    if set(getattr(backend, "hvp_methods", ())) <= {"closed_form"}:
        problems.append(
            "note: no second-order autodiff (hvp_x by closed_form only), so --order 2 shows "
            "unsupported for its autodiff; add hvp_routes and _hvp, or an hvp method "
            "(docs/plugins.md)"
        )
    for dtype in DTYPES:
        if dtype in backend.dtypes():
            computed = False
            for method in backend.methods:
                found, ran = _method(backend, method, dtype, name)
                problems += found
                computed |= ran
            for method in getattr(backend, "hvp_methods", ()):
                problems += _hvp_method(backend, method, dtype, name)
            if not computed:
                problems.append(
                    f"{dtype}: declared in `supported` but every method raised "
                    "Unsupported; remove it from `supported`"
                )
        else:
            problems += _declined(backend, dtype)
    return problems


def _interface(b) -> list[str]:
    out = []
    if not isinstance(getattr(b, "name", None), str) or not b.name:
        out.append("`name` is missing or empty; set a class attribute name = '...'")
    methods = getattr(b, "methods", ())
    if not methods or not all(isinstance(m, str) for m in methods):
        out.append("`methods` must be a non-empty tuple of names such as ('autodiff',)")
    bad = [d for d in getattr(b, "supported", ()) if d not in DTYPES]
    if bad:
        out.append(f"`supported` lists {bad}; dtype names are {', '.join(DTYPES)}")
    try:
        v = b.version()
        if not isinstance(v, str) or not v:
            out.append(f"version() returned {v!r}; return the framework's version string")
    except Exception as exc:
        out.append(f"version() raised {type(exc).__name__}: {exc}; return a version string")
    return out


def _method(b, method: str, dtype: str, name: str) -> tuple[list[str], bool]:
    """(problems, whether the method computed anything) for one method and dtype.

    Unsupported for a particular shape (vmap without a batch axis, forward mode on complex
    inputs) is allowed; a declared dtype that no method ever computes is not.
    """
    where = f"{method} on {dtype}"
    out: list[str] = []
    ran = False
    for probe in _PROBES:
        case = Case.from_id(probe.format(dtype=dtype))
        inp = case.inputs()
        A, x = inp.A.copy(), inp.x.copy()
        try:
            res = b.evaluate(method, A, x, dtype)
        except Unsupported:
            continue
        except Exception as exc:
            return [f"{where}: raised {type(exc).__name__}: {exc}"], True
        ran = True
        if not isinstance(res, dict):
            return [
                f"{where}: returned a {_type_name(res)}; return a dict with keys "
                f"{', '.join(QUANTITIES)}"
            ], True
        missing = [q for q in QUANTITIES if q not in res]
        if missing:
            out.append(
                f"{where}: result lacks {', '.join(missing)}; return all three quantities "
                "(None for one the method does not compute)"
            )
            continue
        if not (np.array_equal(A, inp.A, equal_nan=True) and np.array_equal(x, inp.x)):
            out.append(f"{where}: modified its input arrays; copy them before writing")
        want = {
            "loss": (info(dtype).real, ()),
            "grad_x": (info(dtype).real, case.x_shape),
            "grad_A": (dtype, (case.m, case.n)),
        }
        for q in QUANTITIES:
            v = res[q]
            if v is None:
                continue
            if not isinstance(v, np.ndarray):
                out.append(
                    f"{where}: {q} is a {_type_name(v)}; return a numpy array "
                    "(detach it and copy it to the host)"
                )
                continue
            got = v.dtype.name
            if got != want[q][0] and v.shape == want[q][1]:
                entry = _explained_dtype(case, inp, q, v, name, method)
                if entry is not None:
                    out.append(
                        f"known: {where}: {q} has dtype {got} but the case is {dtype} "
                        f"-- {entry.id} ({', '.join(entry.upstream)})"
                    )
                    continue
            if got != want[q][0]:
                out.append(
                    f"{where}: {q} has dtype {got} but the case is {dtype}; return "
                    f"{want[q][0]} (check that the framework did not change precision)"
                )
            if v.shape != want[q][1]:
                out.append(f"{where}: {q} has shape {v.shape}, expected {want[q][1]}")
        again = b.evaluate(method, inp.A.copy(), inp.x.copy(), dtype)
        for q in QUANTITIES:
            a, c = res[q], again.get(q) if isinstance(again, dict) else None
            if isinstance(a, np.ndarray) and isinstance(c, np.ndarray) and a.shape == c.shape:
                if a.tobytes() != c.tobytes():
                    out.append(
                        f"{where}: a second identical call changed {q}; results must be "
                        "deterministic (no state carried between calls)"
                    )
    return list(dict.fromkeys(out)), ran


def _hvp_method(b, method: str, dtype: str, name: str) -> list[str]:
    """Problems of one second-order method on one dtype: hvp_x is a numpy array of x's shape
    and real dtype, the inputs are left alone, and a second call gives the same bits."""
    from gradxval.model.problems import load_problem

    where = f"{method} (hvp_x) on {dtype}"
    problem = load_problem("logistic")
    for probe in _PROBES:
        case = Case.from_id(probe.format(dtype=dtype))
        inp = case.inputs()
        A, x, v = inp.A.copy(), inp.x.copy(), inp.v.copy()
        try:
            res = b.evaluate_hvp(problem, method, A, x, v, dtype)
        except Unsupported:
            continue
        except Exception as exc:
            return [f"{where}: raised {type(exc).__name__}: {exc}"]
        if not isinstance(res, np.ndarray):
            return [f"{where}: returned a {_type_name(res)}; return a numpy array of x's shape"]
        out = []
        if not (
            np.array_equal(A, inp.A, equal_nan=True)
            and np.array_equal(x, inp.x)
            and np.array_equal(v, inp.v)
        ):
            out.append(f"{where}: modified its input arrays; copy them before writing")
        real = info(dtype).real
        if res.dtype.name != real:
            entry = None
            if res.shape == case.x_shape:
                entry = _explained_dtype(case, inp, "hvp_x", res, name, method)
            if entry is not None:
                out.append(
                    f"known: {where}: hvp_x has dtype {res.dtype.name} but the case is "
                    f"{dtype} -- {entry.id} ({', '.join(entry.upstream)})"
                )
            else:
                out.append(
                    f"{where}: hvp_x has dtype {res.dtype.name} but the case is "
                    f"{dtype}; return {real}"
                )
        if res.shape != case.x_shape:
            out.append(f"{where}: hvp_x has shape {res.shape}, expected {case.x_shape}")
        again = b.evaluate_hvp(problem, method, inp.A.copy(), inp.x.copy(), inp.v.copy(), dtype)
        if isinstance(again, np.ndarray) and again.tobytes() != res.tobytes():
            out.append(
                f"{where}: a second identical call changed hvp_x; results must be deterministic"
            )
        if out:
            return out
    return []


def _explained_dtype(case, inputs, quantity, value, backend: str, method: str):
    """The in-scope known entry that explains a result of the wrong dtype, if one does."""
    from gradxval.judge.error_model import case_tolerance
    from gradxval.judge.known import load_registry
    from gradxval.judge.problem_reference import reference_for

    ref = reference_for(case, inputs, quantity == "hvp_x")
    tol = case_tolerance(case, quantity)
    return load_registry().match_dtype(case, backend, method, quantity, value, ref, tol)


def failing(problems: list[str]) -> list[str]:
    """The problems that fail the kit: all but those a known entry explains, and notes."""
    return [p for p in problems if not p.startswith(("known: ", "note: "))]


def _declined(b, dtype: str) -> list[str]:
    case = Case.from_id(_PROBES[0].format(dtype=dtype))
    inp = case.inputs()
    try:
        b.evaluate(b.methods[0], inp.A, inp.x, dtype)
    except Unsupported:
        return []
    except Exception as exc:
        return [
            f"{dtype} (not in `supported`): raised {type(exc).__name__}; raise "
            "gradxval.Unsupported(reason) for a dtype you do not support"
        ]
    return [
        f"{dtype} is not in `supported` but evaluate() computed it; declare it or raise "
        "gradxval.Unsupported"
    ]


def _kit_main(conn, name: str, path: list[str]) -> None:
    import sys

    sys.path[:] = path
    conn.send(check_backend(name))


def check_backend_isolated(name: str, timeout: float, startup_timeout: float = 300.0) -> list[str]:
    """check_backend in a worker process: a backend that hangs or crashes is a problem line,
    not a hung or dead command."""
    import multiprocessing as mp
    import sys

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_kit_main, args=(child, name, list(sys.path)), daemon=True)
    proc.start()
    child.close()
    budget = startup_timeout + timeout
    try:
        if parent.poll(budget):
            return parent.recv()
        return [
            f"the conformance kit did not finish in {budget:g}s: the backend hangs (a call "
            "must return or raise); it was killed"
        ]
    except (EOFError, OSError):
        proc.join(2)
        return [
            f"the backend's process died during the conformance kit (exit code "
            f"{proc.exitcode}): a crash in the framework or the backend"
        ]
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(2)
