"""Standalone reproducers: repro_<id>.py files that use only numpy and the framework concerned.

The file holds the case's inputs and the reference bit for bit (zlib + base64 of the raw
little-endian bytes), recomputes the backend's value with the framework's own code, prints the
value, the reference and the error at the worst element, and exits 1 while the disagreement
persists, 0 once it is fixed.  The framework-only recipes are the backends' own
(gradxval.backends.recipes; a plug-in gives one as ``Backend.repro_recipe``).
"""

from __future__ import annotations

import base64
import re
import zlib
from pathlib import Path

import numpy as np
from gradxval.backends.recipes import recipe
from gradxval.dtypes import info
from gradxval.judge.reference import Reference
from gradxval.model.cases import Case, size_order

__all__ = [
    "write_reproducer",
    "reproducer_name",
    "follow_up",
    "known_reproducers",
    "repro_known",
]

_DECODE = """
import base64, sys, zlib
import numpy as np


def arr(data, dtype, shape):
    raw = zlib.decompress(base64.b64decode(data))
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()
"""

_SIGMOID = '''
def sigmoid_pair(x):
    """sigma(x), sigma(-x) without overflow."""
    e = xp.exp(-xp.abs(x))
    d = 1 + e
    return xp.where(x >= 0, 1 / d, e / d), xp.where(x >= 0, e / d, 1 / d)


def closed_form(A, x):
    s, sn = sigmoid_pair(x)
    cplx = A.dtype in COMPLEX
    sc = cast(s, A.dtype) if cplx else s
    z = cast(A @ sc, A.dtype)
    loss = xp.sum(xp.real(z * xp.conj(z))) if cplx else xp.sum(z * z)
    back = xp.real(cast(xp.conj(A).T @ z, A.dtype)) if cplx else cast(A.T @ z, A.dtype)
    gx = 2 * (s * sn) * back
    gA = 2 * (z[:, None] * sc[None, :]) if x.ndim == 1 else 2 * cast(z @ sc.T, A.dtype)
    return loss, gx, gA


def loss_of(A, s):
    if A.dtype in COMPLEX:
        z = A @ cast(s, A.dtype)
        return xp.sum(xp.real(z * xp.conj(z)))
    z = A @ s
    return xp.sum(z * z)
'''

_TAIL = '''
QUANTITIES = ("loss", "grad_x", "grad_A")


def to_numpy(t):
    """(values as a numpy array, the dtype name the backend returned)."""
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        name = str(t.dtype).replace("torch.", "")
        return (t.float() if name == "bfloat16" else t).numpy(), name
    t = np.asarray(t)
    return t, t.dtype.name


A, x = to_backend(A_IN), to_backend(X_IN)
with np.errstate(all="ignore"):
    result = dict(zip(QUANTITIES, CALL))
    actual, got_dtype = to_numpy(result[QUANTITY])
    a = actual.astype(np.complex128 if np.iscomplexobj(actual) else np.float64)
    err = np.abs(a - REF) / (U * SCALE + ETA * UNDER)
    same_nan = np.isnan(a) == np.isnan(REF)
    finite = np.isfinite(a) & np.isfinite(REF)
    err = np.where(finite, err, np.where(same_nan & ((a == REF) | np.isnan(REF)), 0.0, np.inf))
worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim and err.size else ()
e = float(err.max()) if err.size else 0.0
print(f"{BACKEND}/{METHOD} {QUANTITY} on {CASE_ID}, {VERSION_NOTE}")
if err.size:
    where = tuple(int(i) for i in worst)
    print(f"  at index {where}: actual {a[worst].item()!r}, reference {REF[worst].item()!r}")
print(f"  error {e:.4g} u, tolerance {TOL:.4g} u (u = {U:.3g})")
if got_dtype != EXPECTED_DTYPE:
    print(f"  dtype {got_dtype}, expected {EXPECTED_DTYPE}")
    sys.exit(1)
sys.exit(1 if e > TOL else 0)
'''


def _blob(a: np.ndarray) -> tuple[str, str, tuple[int, ...]]:
    a = np.array(a, order="C")  # not ascontiguousarray: it turns 0-d into 1-d
    dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    data = base64.b64encode(zlib.compress(a.astype(dt).tobytes(), 9)).decode()
    return data, dt.str if a.dtype.name != "bfloat16" else "bfloat16", a.shape


def reproducer_name(case_id: str, backend: str, method: str, quantity: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"repro_{case_id}-{backend}-{method}-{quantity}.py")


def _literal(name: str, a: np.ndarray) -> str:
    data, dt, shape = _blob(a)
    if dt == "bfloat16":  # bit patterns; to_backend views them as the framework's bfloat16
        data, _, shape = _blob(np.asarray(a).view(np.uint16))
        return f"{name} = arr({data!r}, 'uint16', {shape!r})"
    return f"{name} = arr({data!r}, {dt!r}, {shape!r})"


def write_reproducer(
    directory: Path,
    case: Case,
    backend: str,
    method: str,
    quantity: str,
    ref: Reference,
    tol: float,
    version: str,
) -> Path | None:
    """Write repro_<id>.py for one disagreement; None where no framework-only recipe exists
    (second order has none yet: its verdicts carry the replay line with --order 2)."""
    found = recipe(backend)
    if found is None or method not in found[1] or case.problem != "logistic":
        return None
    if quantity not in ("loss", "grad_x", "grad_A"):
        return None
    setup, calls = found
    di = info(case.dtype)
    inputs = case.inputs()
    want = case.dtype if quantity == "grad_A" else di.real
    parts = [
        f'"""gradxval standalone reproducer: {backend} {method} {quantity} on {case.id}.',
        "",
        "Uses only numpy and the framework. Prints the value, the reference and the error;",
        'exits 1 while the disagreement persists, 0 once it is fixed."""',
        _DECODE,
        f"CASE_ID, BACKEND, METHOD, QUANTITY = {case.id!r}, {backend!r}, {method!r}, {quantity!r}",
        f"DTYPE, EXPECTED_DTYPE = {case.dtype!r}, {want!r}",
        f"VERSION_NOTE = {('found with ' + backend + ' ' + version)!r}",
        f"U, ETA, TOL = {di.u!r}, {di.eta!r}, {tol!r}",
        f"BF16 = {case.dtype == 'bfloat16'!r}",
        _literal("A_IN", np.asarray(inputs.A)),
        _literal("X_IN", np.asarray(inputs.x)),
        "# reference and the error model's scale, computed by gradxval in extra precision",
        _literal("REF", np.asarray(ref.values[quantity])),
        _literal("SCALE", np.asarray(ref.scale[quantity], dtype=np.float64)),
        _literal(
            "UNDER",
            np.broadcast_to(
                np.asarray(ref.under[quantity], dtype=np.float64), np.shape(ref.values[quantity])
            ),
        ),
        _SIGMOID,
        setup,
        _TAIL.replace("CALL", calls[method]),
    ]
    path = Path(directory) / reproducer_name(case.id, backend, method, quantity)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


MAX_REPRODUCERS = 50  # files; each holds its inputs, up to a few MB for 1000 x 1000 cases
MAX_SHRINKS = 10  # distinct (backend, method, quantity, dtype, regime) signatures


def follow_up(
    records: list[dict], directory: Path, registry, versions: dict[str, str], shrink: bool = True
) -> dict[tuple, dict]:
    """For each unexplained disagreement: a shrunk case and a standalone reproducer.

    Returns {(case_id, backend, method, quantity): {"shrunk_case", "standalone"}}.  Known
    disagreements carry their registry entry instead.
    """
    from gradxval.followup.shrink import shrink_case
    from gradxval.judge.error_model import case_tolerance
    from gradxval.judge.problem_reference import reference_for

    out: dict[tuple, dict] = {}
    refs: dict[str, Reference] = {}
    shrunk: dict[tuple, str] = {}
    written = 0
    # the smallest case of each backend x method x quantity first, then the next smallest...:
    # with more flagged results than reproducers, every finding still gets one
    flagged = [r for r in records if r["verdict"] == "disagree"]
    rank: dict[int, int] = {}
    groups: dict[tuple, list] = {}
    for i, r in enumerate(flagged):
        groups.setdefault((r["backend"], r["method"], r["quantity"]), []).append(i)
    for members in groups.values():
        for k, i in enumerate(sorted(members, key=lambda i: size_order(flagged[i]["case_id"]))):
            rank[i] = k
    for i in sorted(range(len(flagged)), key=lambda i: (rank[i], i)):
        r = flagged[i]
        key = (r["case_id"], r["backend"], r["method"], r["quantity"])
        case = Case.from_id(r["case_id"])
        sig = (r["backend"], r["method"], r["quantity"], case.dtype, case.regime)
        if shrink and sig not in shrunk and len(shrunk) < MAX_SHRINKS:
            try:
                small = shrink_case(case, r["backend"], r["method"], r["quantity"], registry)
                shrunk[sig] = small.id
            except Exception as exc:  # shrinking is a help; never lose the report over it
                shrunk[sig] = f"not shrunk: {type(exc).__name__}: {exc}"
        path = None
        if written < MAX_REPRODUCERS:
            if case.id not in refs:
                refs[case.id] = reference_for(case, case.inputs())
            tol = case_tolerance(case, r["quantity"])
            path = write_reproducer(
                directory,
                case,
                r["backend"],
                r["method"],
                r["quantity"],
                refs[case.id],
                tol,
                versions.get(r["backend"], "?"),
            )
            written += path is not None
        out[key] = {"shrunk_case": shrunk.get(sig), "standalone": path.name if path else None}
    return out


def _pick(record) -> tuple:
    """Which known result shows an entry best: one it explains alone (a result two entries
    share may have its worst element from the other), then the smallest case."""
    return ("+" in (record.get("classification") or ""), size_order(record["case_id"]))


def known_reproducers(records, directory: Path, versions: dict[str, str]) -> dict:
    """One standalone reproducer per known entry and built-in backend seen in a run, in
    DIR/known/: from the smallest case that shows it, one it explains alone where there is one
    (not shrunk: `gradxval repro --known` shrinks).  Returns {(entry, backend): file name
    relative to DIR}."""
    from gradxval.judge.error_model import case_tolerance
    from gradxval.judge.problem_reference import reference_for

    best: dict[tuple, dict] = {}
    for r in records:
        if r["verdict"] != "known" or recipe(r["backend"]) is None:
            continue
        if r["method"] not in recipe(r["backend"])[1]:
            continue
        for entry in (r.get("classification") or "").split("+"):
            key = (entry, r["backend"])
            if key not in best or _pick(r) < _pick(best[key]):
                best[key] = r
    out = {}
    target = Path(directory) / "known"
    for (entry, backend), r in sorted(best.items()):
        case = Case.from_id(r["case_id"])
        ref = reference_for(case, case.inputs())
        target.mkdir(parents=True, exist_ok=True)
        path = write_reproducer(
            target,
            case,
            backend,
            r["method"],
            r["quantity"],
            ref,
            case_tolerance(case, r["quantity"]),
            versions.get(backend, "?"),
        )
        if path is not None:
            final = path.with_name(f"{entry}-{backend}.py")
            path.replace(final)
            out[(entry, backend)] = f"known/{final.name}"
    return out


def _installed_version(backend: str) -> str:
    """The backend's version here (a run without a manifest), or 'unknown version'."""
    from gradxval.backends import describe

    try:
        return describe(backend).version or "unknown version"
    except Exception:  # noqa: BLE001 -- a note in a file, never a failure
        return "unknown version"


def repro_known(directory: Path, entry: str, backend: str | None, registry) -> list[Path]:
    """Shrink a known fault seen in a run to its smallest case and write its standalone
    reproducer into DIR/known/, for filing upstream (``gradxval repro DIR --known ENTRY``)."""
    from gradxval.errors import GradxvalError, UsageError
    from gradxval.followup.shrink import shrink_case
    from gradxval.judge.error_model import case_tolerance
    from gradxval.judge.problem_reference import reference_for
    from gradxval.output.rundir import RunDir

    run = RunDir(directory)
    tally, _ = run.state()
    records = list(tally.known_small.values())  # the smallest case per entry x backend x method
    try:  # the versions the run found it with, for the file meant for upstream
        versions = run.read_manifest().get("versions", {})
    except GradxvalError:
        versions = {}
    mine = [
        r
        for r in records
        if r["verdict"] == "known"
        and entry in (r.get("classification") or "").split("+")
        and (backend is None or r["backend"] == backend)
    ]
    if not mine:
        seen = sorted(tally.known)
        raise UsageError(
            f"repro --known {entry}: no result of the run in {directory} is known by it"
            + (f" on {backend}" if backend else "")
            + f"; entries seen: {', '.join(seen) or 'none'}"
        )
    written = []
    for b in sorted({r["backend"] for r in mine}):
        if recipe(b) is None:
            continue
        r = min((r for r in mine if r["backend"] == b), key=_pick)
        small = shrink_case(
            Case.from_id(r["case_id"]), b, r["method"], r["quantity"], registry, entry=entry
        )
        ref = reference_for(small, small.inputs())
        target = Path(directory) / "known"
        target.mkdir(parents=True, exist_ok=True)
        path = write_reproducer(
            target,
            small,
            b,
            r["method"],
            r["quantity"],
            ref,
            case_tolerance(small, r["quantity"]),
            versions.get(b) or _installed_version(b),
        )
        if path is not None:
            final = path.with_name(f"{entry}-{b}.py")
            path.replace(final)
            written.append(final)
    return written
