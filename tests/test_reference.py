"""The reference against mpmath, evaluated from the same rounded inputs at 60 digits."""

import mpmath
import numpy as np
import pytest
from gradxval.dtypes import DTYPES, info
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import Case


def mp_reference(case: Case):
    inp = case.inputs()
    A = np.asarray(inp.A).astype(np.complex128)
    X = np.asarray(inp.x).astype(np.float64).reshape(case.n, case.k or 1)
    with mpmath.workdps(60):
        Am = mpmath.matrix([[mpmath.mpc(complex(v)) for v in row] for row in A]) if case.m else None
        s = [[1 / (1 + mpmath.exp(-mpmath.mpf(float(v)))) for v in row] for row in X]
        k = X.shape[1]
        z = [
            [mpmath.fsum(Am[i, j] * s[j][c] for j in range(case.n)) for c in range(k)]
            for i in range(case.m)
        ]
        loss = mpmath.fsum(abs(z[i][c]) ** 2 for i in range(case.m) for c in range(k))
        gx = [
            [
                2
                * s[j][c]
                * (1 - s[j][c])
                * mpmath.re(mpmath.fsum(mpmath.conj(Am[i, j]) * z[i][c] for i in range(case.m)))
                for c in range(k)
            ]
            for j in range(case.n)
        ]
        gA = [
            [2 * mpmath.fsum(z[i][c] * s[j][c] for c in range(k)) for j in range(case.n)]
            for i in range(case.m)
        ]
    return loss, gx, gA


_SHAPES = ["m7n5", "m4n6k3", "m1n1", "m0n3", "m3n0"]
# n = 4000: the exact-slice products at full length (issue 12), real and complex
_LONG = [("float64", "m3n4000"), ("float64", "m4000n3"), ("complex128", "m2n4000")]


@pytest.mark.parametrize(("dtype", "shape"), [(d, s) for d in DTYPES for s in _SHAPES] + _LONG)
def test_reference_matches_mpmath(dtype, shape):
    case = Case.from_id(f"normal-{dtype}-{shape}-s11")
    ref = reference_for(case, case.inputs())
    loss, gx, gA = mp_reference(case)
    # float64 cases use double-double: within 1 ulp of the exact value; lower dtypes use
    # float64, far inside their tolerance
    rel = 2.3e-16 if dtype in ("float64", "complex128") else 1e-13
    di = info(dtype)
    tol_abs = rel * np.maximum(ref.scale["grad_x"], 1e-300)
    assert abs(float(ref.values["loss"]) - float(loss)) <= rel * float(ref.scale["loss"]) + 1e-300
    got = ref.values["grad_x"].reshape(case.n, case.k or 1)
    for j in range(case.n):
        for c in range(got.shape[1]):
            assert (
                abs(got[j, c] - float(gx[j][c]))
                <= tol_abs.reshape(case.n, case.k or 1)[j, c] + 1e-300
            )
    for i in range(case.m):
        for j in range(case.n):
            want = complex(gA[i][j])
            g = complex(ref.values["grad_A"][i, j])
            assert abs(g - want) <= rel * abs(want) + 1e-300, (i, j, g, want)
    assert ref.values["grad_A"].dtype == (np.complex128 if di.is_complex else np.float64)


def test_double_double_beats_float64_on_cancellation():
    """A sum that cancels: float64 loses digits the double-double reference keeps."""
    case = Case.from_id("normal-float64-m40n300-s5")
    inp = case.inputs()
    ref = reference_for(case, inp)
    loss, gx, _ = mp_reference(case)
    exact = np.array([float(v[0]) for v in gx])
    plain_err = np.abs(ref.values["grad_x"] - exact) / np.abs(exact)
    assert plain_err.max() <= 2.3e-16


def test_saturated_reference_keeps_exp_minus_x():
    case = Case.from_id("saturated-float64-m3n20-s2")
    ref = reference_for(case, case.inputs())
    x = case.inputs().x
    big = x > 37
    assert big.any()
    assert np.all(ref.sigma_prime[big] > 0)
    np.testing.assert_allclose(ref.sigma_prime[big], np.exp(-x[big]), rtol=1e-15)


@pytest.mark.parametrize(("dtype", "shape"), _LONG)
def test_long_references_take_the_exact_slice_path(dtype, shape, monkeypatch):
    """The n = 4000 cases above test the sliced products, not the Dot2 fallback."""
    import gradxval.numerics as numerics

    def no_fallback(*args):
        raise AssertionError("Dot2 fallback used")

    monkeypatch.setattr(numerics, "_dot2_matmul", no_fallback)
    case = Case.from_id(f"normal-{dtype}-{shape}-s11")
    assert np.isfinite(reference_for(case, case.inputs()).values["grad_x"]).all()
