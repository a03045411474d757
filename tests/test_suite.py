"""The calibration suite in the engine: binary128 gradients against a central difference."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from gradxval.judge.engine import Quad, evaluate
from gradxval.judge.engine.complex import CVar
from gradxval.model.functions import Function
from gradxval.suite import BY_NAME, SUITE

H = 1e-12  # central difference step, in binary128: truncation ~h^2, rounding ~1e-34/h
RTOL = 1e-12


def _case(f: Function, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Small random arrays for ``f``'s inputs: 2 to 4 per symbol, in each input's domain."""
    size = {s: int(rng.integers(2, 5)) for s in f.symbols}
    arrays = {}
    for name, inp in f.inputs.items():
        shape = tuple(size[s] if isinstance(s, str) else s for s in inp.shape)
        if inp.domain == "labels":
            classes = size[inp.classes] if isinstance(inp.classes, str) else inp.classes
            arrays[name] = rng.integers(0, classes, size=shape).astype(np.int64)
        elif inp.domain == "unit":
            arrays[name] = rng.uniform(0.05, 0.95, size=shape)
        elif inp.domain == "positive":
            arrays[name] = rng.uniform(0.5, 2.0, size=shape)
        elif inp.complex:
            arrays[name] = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        else:
            arrays[name] = rng.standard_normal(shape)
    return arrays


def _as_real(f: Function, arrays: dict):
    """``f`` with each complex input split into two real ones (NAME_re, NAME_im), and its
    arrays so split: binary128 has no complex type to shift a complex input in."""
    cplx = [k for k in f.inputs if f.inputs[k].complex]
    if not cplx:
        return f.fn, arrays, f.wrt

    def fn(*, xp, nn, **kw):
        for k in cplx:
            kw[k] = CVar(kw.pop(f"{k}_re"), kw.pop(f"{k}_im"))
        return f.fn(**kw, xp=xp, nn=nn)

    split = {}
    for k, a in arrays.items():
        split.update({f"{k}_re": a.real, f"{k}_im": a.imag} if k in cplx else {k: a})
    wrt = tuple(w for k in f.wrt for w in ((f"{k}_re", f"{k}_im") if k in cplx else (k,)))
    return fn, split, wrt


def test_suite_declares_named_scalar_functions():
    assert len(SUITE) >= 22
    assert len(BY_NAME) == len(SUITE)
    for f in SUITE:
        assert isinstance(f, Function)
        assert f.name.isidentifier() and f.name == f.name.lower()
        assert f.fn.__doc__, f.name


@pytest.mark.parametrize("f", SUITE, ids=[f.name for f in SUITE])
def test_engine_gradient_matches_central_difference(f: Function):
    rng = np.random.default_rng(zlib.crc32(f.name.encode()))
    q = Quad()
    complex_res = evaluate(f.fn, _case(f, rng), f.wrt, q)
    fn, arrays, wrt = _as_real(f, _case(f, np.random.default_rng(zlib.crc32(f.name.encode()))))
    res = evaluate(fn, arrays, wrt, q)
    for k in f.wrt:  # a complex input's gradient is the gradients of its parts
        for part in ("re", "im") if f.inputs[k].complex else ():
            assert np.array_equal(complex_res[f"grad_{k}.{part}"], res[f"grad_{k}_{part}"])

    loss = np.asarray(res["loss"]).astype(np.float64)
    assert loss.shape == () and np.isfinite(loss), f"{f.name}: loss {loss}"

    dirs = {k: rng.standard_normal(arrays[k].shape) for k in wrt}
    directional = q.const(0.0)
    scale = q.const(0.0)
    for k in wrt:
        g = res[f"grad_{k}"]
        assert g.shape == arrays[k].shape, f"{f.name}: grad_{k} shape {g.shape}"
        assert np.all(np.isfinite(np.asarray(g).astype(np.float64))), f"{f.name}: grad_{k}"
        prod = g * q.const(dirs[k])
        directional = directional + np.sum(prod)
        scale = scale + np.sum(np.abs(prod))

    h = q.const(H)

    def shifted(sign: float) -> dict:
        out = dict(arrays)
        for k in wrt:
            out[k] = q.const(arrays[k]) + q.const(sign) * h * q.const(dirs[k])
        return out

    plus = evaluate(fn, shifted(1.0), wrt, Quad())["loss"]
    minus = evaluate(fn, shifted(-1.0), wrt, Quad())["loss"]
    fd = (plus - minus) / (q.const(2.0) * h)

    err = float(np.abs(fd - directional))
    bound = RTOL * max(float(scale), 1e-30)
    assert err <= bound, (
        f"{f.name}: central difference {float(fd)!r} vs gradient . d {float(directional)!r} "
        f"(|diff| {err:.3e} > {bound:.3e})"
    )
