"""The binary128 reference engine against mpmath, its HVPs against a central difference, and
the emulated arithmetic's rounding, range and exactness."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from gradxval.judge.engine import Emulated, Quad, evaluate
from gradxval.judge.engine.arith import split3

mp = mpmath.mp
DPS = 60
VALUE_RTOL = 1e-30
GRAD_RTOL = 1e-28
# sigmoid' = y (1 - y), tanh' = 1 - y^2 and expm1' = y + 1 take the form libraries use
# (engine/tape.py): where y saturates they are exact to binary128 *absolutely* (|y| <= 1,
# one rounding of y is ~1e-34), not relatively; the tolerance says so for those three only
LIBRARY_FORM_ATOL = 1e-32

# ~20 values over many magnitudes, both signs; domain-restricted primitives filter them
VALUES = np.array([
    1e-20, -1e-20, 1e-10, 1e-5, -1e-3, 0.1, -0.25, 0.5, 0.75, 1.0, -1.5, 2.0, 3.7, -5.0,
    10.0, 17.5, 30.0, -30.0, 100.0, -100.0, 700.0, -700.0,
])  # fmt: skip


def to_mp(q) -> list:
    """The exact values of a binary128 array as mpf, in C order.

    split3 is exact only where hi, mid and lo are normal float64s, so the mantissa (in
    [0.5, 1), where it is) is split and the exponent applied in mpmath: exact for every finite
    binary128 value, subnormal or beyond float64's range included."""
    q = np.asarray(q)
    m, e = np.frexp(q)
    hi, mid, lo = split3(m)
    out = []
    for a, b, c, k in zip(hi.ravel(), mid.ravel(), lo.ravel(), e.ravel(), strict=True):
        with mpmath.workdps(DPS + 20):
            out.append(mpmath.ldexp(mpmath.mpf(float(a)) + mpmath.mpf(float(b)) + float(c), int(k)))
    return out


def test_to_mp_is_exact_across_the_binary128_range():
    q = Quad()
    with mpmath.workdps(DPS + 20):
        for k in (-1100, -1000, 0, 900, 1100):
            # 1.5 + 2^-100 (113 bits apart, exact in binary128), scaled by 2^k exactly
            v = q.const(np.array([1.5])) + q.const(np.array([2.0**-100]))
            for _ in range(abs(k) // 100):
                v = v * q.const(np.array([2.0 ** (100 if k > 0 else -100)]))
            (got,) = to_mp(v)
            assert got == mpmath.ldexp(mpmath.mpf(1.5) + mpmath.ldexp(1, -100), k), k
    # split3 alone loses what falls below float64's subnormals (hence the frexp in to_mp)
    tiny = (
        q.const(np.array([1.5])) * q.const(np.array([2.0**-1000])) * q.const(np.array([2.0**-100]))
    )
    assert split3(tiny)[0][0] == 0.0


QUAD_TRUE_MIN = mpmath.ldexp(1, -16494)  # binary128's smallest subnormal


def _in_range(want):
    """The value binary128 can hold: below half its smallest subnormal, the right answer is 0."""
    return mpmath.mpf(0) if abs(want) < QUAD_TRUE_MIN / 2 else want


def _rel(got, want) -> mpmath.mpf:
    want = _in_range(want)
    return abs(got - want) / abs(want) if want != 0 else abs(got)


def _sig(x):
    return 1 / (1 + mpmath.exp(-x))


# name -> (body of x, value in mpmath, derivative in mpmath, domain filter, library form)
UNARY = {
    "exp": (lambda x, xp, nn: xp.exp(x), mpmath.exp, mpmath.exp, None, False),
    "expm1": (lambda x, xp, nn: xp.expm1(x), mpmath.expm1, mpmath.exp, None, True),
    "nn.expm1": (lambda x, xp, nn: nn.expm1(x), mpmath.expm1, mpmath.exp, None, True),
    "log": (lambda x, xp, nn: xp.log(x), mpmath.log, lambda x: 1 / x, lambda v: v > 0, False),
    "log1p": (lambda x, xp, nn: xp.log1p(x), mpmath.log1p, lambda x: 1 / (1 + x),
              lambda v: v > -1, False),
    "sqrt": (lambda x, xp, nn: xp.sqrt(x), mpmath.sqrt, lambda x: 1 / (2 * mpmath.sqrt(x)),
             lambda v: v > 0, False),
    "tanh": (lambda x, xp, nn: xp.tanh(x), mpmath.tanh, lambda x: mpmath.sech(x) ** 2, None,
             True),
    "sigmoid": (lambda x, xp, nn: nn.sigmoid(x), _sig, lambda x: _sig(x) * (1 - _sig(x)), None,
                True),
    "softplus": (lambda x, xp, nn: nn.softplus(x), lambda x: mpmath.log1p(mpmath.exp(x)), _sig,
                 None, False),
    "erf": (lambda x, xp, nn: nn.erf(x), mpmath.erf,
            lambda x: 2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-x * x), None, False),
    "sin": (lambda x, xp, nn: xp.sin(x), mpmath.sin, mpmath.cos, None, False),
    "cos": (lambda x, xp, nn: xp.cos(x), mpmath.cos, lambda x: -mpmath.sin(x), None, False),
    "pow3.5": (lambda x, xp, nn: x**3.5, lambda x: x ** mpmath.mpf(3.5),
               lambda x: mpmath.mpf(3.5) * x ** mpmath.mpf(2.5), lambda v: (v > 0) & (v < 200),
               False),
    "pow-2": (lambda x, xp, nn: x**-2.0, lambda x: x**-2, lambda x: -2 * x**-3, None, False),
    "pow0.5": (lambda x, xp, nn: xp.pow(x, 0.5), mpmath.sqrt,
               lambda x: 1 / (2 * mpmath.sqrt(x)), lambda v: v > 0, False),
    "reciprocal": (lambda x, xp, nn: 1.0 / x, lambda x: 1 / x, lambda x: -1 / x**2, None, False),
}  # fmt: skip


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_primitive_and_derivative_match_mpmath(name):
    body, f, df, domain, library_form = UNARY[name]
    xs = VALUES if domain is None else VALUES[domain(VALUES)]
    assert xs.size >= 8

    def fn(x, *, xp, nn):
        return xp.sum(body(x, xp, nn))

    grads = to_mp(evaluate(fn, {"x": xs}, ("x",), Quad())["grad_x"])  # elementwise f'(x)
    with mpmath.workdps(DPS):
        bad = []
        for x, g in zip(xs, grads, strict=True):
            loss = evaluate(fn, {"x": np.array([x])}, ("x",), Quad())["loss"]  # f(x) alone
            (v,) = to_mp(loss)
            X = mpmath.mpf(float(x))
            want, dwant = _in_range(f(X)), _in_range(df(X))
            if _rel(v, want) > VALUE_RTOL:
                bad.append(f"{name}({x!r}) = {mpmath.nstr(v, 40)}, mpmath {mpmath.nstr(want, 40)}")
            derr = abs(g - dwant)
            tol = GRAD_RTOL * abs(dwant) + (LIBRARY_FORM_ATOL if library_form else 0)
            if not derr <= tol:
                bad.append(
                    f"{name}'({x!r}) = {mpmath.nstr(g, 40)}, mpmath {mpmath.nstr(dwant, 40)}"
                )
    assert not bad, "\n".join(bad)


def _ltwo(a, b):
    return mpmath.log(mpmath.exp(a) + mpmath.exp(b))


def _dltwo(a, b):
    return mpmath.exp(a - _ltwo(a, b))


# name -> (body, value, d/dx, d/dy, xs, ys)
_X = np.array([1e-20, 0.5, 3.0, -2.0, 30.0, -30.0, 700.0, -700.0, 1.0, 5.0, -1e-5, 250.0])
_Y = np.array([2e-20, 0.25, -3.0, 7.5, 29.0, -31.0, 650.0, 10.0, 1.0, -5.0, 1e-5, -250.0])
BINARY = {
    "logaddexp": (lambda x, y, xp: xp.logaddexp(x, y), _ltwo,
                  _dltwo, lambda a, b: _dltwo(b, a),
                  _X, _Y),
    "divide": (lambda x, y, xp: x / y, lambda a, b: a / b, lambda a, b: 1 / b,
               lambda a, b: -a / b**2, _X, _Y),
    "xp.divide": (lambda x, y, xp: xp.divide(x, y), lambda a, b: a / b, lambda a, b: 1 / b,
                  lambda a, b: -a / b**2, _Y, _X),
    "pow": (lambda x, y, xp: xp.pow(x, y), lambda a, b: a**b, lambda a, b: b * a ** (b - 1),
            lambda a, b: a**b * mpmath.log(a), np.abs(_X) + 0.25, _Y / 10),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_primitive_and_partials_match_mpmath(name):
    body, f, dfa, dfb, xs, ys = BINARY[name]

    def fn(x, y, *, xp, nn):
        return xp.sum(body(x, y, xp))

    res = evaluate(fn, {"x": xs, "y": ys}, ("x", "y"), Quad())
    gx, gy = to_mp(res["grad_x"]), to_mp(res["grad_y"])
    with mpmath.workdps(DPS):
        bad = []
        for i, (a, b) in enumerate(zip(xs, ys, strict=True)):
            (v,) = to_mp(evaluate(fn, {"x": xs[i : i + 1], "y": ys[i : i + 1]}, ("x", "y"),
                                  Quad())["loss"])  # fmt: skip
            A, B = mpmath.mpf(float(a)), mpmath.mpf(float(b))
            for what, got, want, tol in (
                ("value", v, f(A, B), VALUE_RTOL),
                ("d/dx", gx[i], dfa(A, B), GRAD_RTOL),
                ("d/dy", gy[i], dfb(A, B), GRAD_RTOL),
            ):
                if _rel(got, want) > tol:
                    bad.append(f"{name}({a!r}, {b!r}) {what}: {mpmath.nstr(got, 40)}, "
                               f"mpmath {mpmath.nstr(want, 40)}")  # fmt: skip
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------- matmul


def _ints(rng, shape):
    return rng.integers(-9, 10, size=shape).astype(np.float64)


@pytest.mark.parametrize(
    "body, make, wrt",
    [
        # A^T B with A stored (n, m): the engine hands numpy-quaddtype a transposed view
        (
            lambda A, B, W, xp: xp.sum(W * (A.T @ B)),
            lambda r: {"A": _ints(r, (5, 3)), "B": _ints(r, (5, 4)), "W": _ints(r, (3, 4))},
            ("A", "B"),
        ),
        # A B^T, and x A^T for a vector
        (
            lambda A, B, W, xp: xp.sum(W * (A @ B.T)) + xp.sum(W[:, 0] @ A @ B.T),
            lambda r: {"A": _ints(r, (3, 5)), "B": _ints(r, (4, 5)), "W": _ints(r, (3, 4))},
            ("A", "B"),
        ),
        # strided (non-contiguous) slices of both operands
        (
            lambda A, B, W, xp: xp.sum(W * (A[:, ::2] @ B[1::2, :])),
            lambda r: {"A": _ints(r, (3, 6)), "B": _ints(r, (7, 4)), "W": _ints(r, (3, 4))},
            ("A", "B"),
        ),
        # batched 3-D, with a broadcast 2-D operand and a transposed batch
        (
            lambda A, B, W, xp: (
                xp.sum(W * (A @ B)) + xp.sum(W * (A @ xp.permute_dims(B, (0, 2, 1)).mT))
            ),  # fmt: skip
            lambda r: {
                "A": _ints(r, (2, 3, 5)),
                "B": _ints(r, (2, 5, 4)),
                "W": _ints(r, (2, 3, 4)),
            },
            ("A", "B"),
        ),
        (
            lambda A, B, W, xp: xp.sum(W * xp.matmul(A, B.T)),
            lambda r: {"A": _ints(r, (2, 3, 5)), "B": _ints(r, (4, 5)), "W": _ints(r, (2, 3, 4))},
            ("A", "B"),
        ),
    ],
    ids=["AT_B", "A_BT", "strided", "batched", "batched_broadcast"],
)
def test_matmul_of_views_is_exact_on_small_integers(body, make, wrt):
    """Integer operands: every product and sum is exact in binary128 and in int64, so the
    engine's value and gradients must equal the integer computation exactly."""
    arrays = make(np.random.default_rng(3))

    def fn(A, B, W, *, xp, nn):
        return body(A, B, W, xp)

    res = evaluate(fn, arrays, wrt, Quad())
    # the same function in plain int64 numpy, gradients by its algebra
    ia = {k: v.astype(np.int64) for k, v in arrays.items()}
    want = body(ia["A"], ia["B"], ia["W"], _NumpyXP)
    assert np.asarray(res["loss"]).astype(np.float64) == float(want)
    for k in wrt:
        g = np.asarray(res[f"grad_{k}"]).astype(np.float64)
        # the function is linear in each input: the gradient is the loss's change by each unit
        num = np.zeros(arrays[k].shape)
        for i in np.ndindex(*arrays[k].shape):
            bumped = dict(ia)
            bumped[k] = ia[k].copy()
            bumped[k][i] += 1
            num[i] = float(body(bumped["A"], bumped["B"], bumped["W"], _NumpyXP) - want)
        np.testing.assert_array_equal(g, num)


class _NumpyXP:
    sum = staticmethod(np.sum)
    matmul = staticmethod(np.matmul)
    permute_dims = staticmethod(np.transpose)


def test_matmul_of_views_matches_mpmath_on_random_reals():
    rng = np.random.default_rng(11)
    A = rng.standard_normal((6, 3))
    B = rng.standard_normal((4, 6))

    def fn(A, B, *, xp, nn):
        return xp.sum(A.T @ B.T)  # both operands transposed views

    res = evaluate(fn, {"A": A, "B": B}, ("A", "B"), Quad())
    with mpmath.workdps(DPS):
        MA, MB = mpmath.matrix(A.tolist()), mpmath.matrix(B.tolist())
        prod = MA.T * MB.T
        want = sum(prod[i, j] for i in range(prod.rows) for j in range(prod.cols))
        (got,) = to_mp(res["loss"])
        scale = sum(abs(MA[k, i] * MB[j, k]) for i in range(3) for j in range(4) for k in range(6))
        assert abs(got - want) <= 1e-32 * scale
        # d/dA sum(A^T B^T) = (sum over columns of B^T) broadcast: B^T 1 along rows of A
        gA = np.array(to_mp(res["grad_A"]), dtype=object).reshape(A.shape)
        for k in range(6):
            row = sum(MB[j, k] for j in range(4))
            for i in range(3):
                assert abs(gA[k, i] - row) <= 1e-32 * sum(abs(MB[j, k]) for j in range(4))


# ---------------------------------------------------------------- second order


def _hvp_function(A, x, w, *, xp, nn):
    return xp.sum((A @ xp.tanh(x)) ** 2) + xp.sum(nn.softmax(x) * w)


def test_hvp_matches_a_binary128_central_difference_of_the_gradient():
    rng = np.random.default_rng(5)
    arrays = {"A": rng.standard_normal((4, 6)), "x": rng.standard_normal(6),
              "w": rng.standard_normal(6)}  # fmt: skip
    dirs = {"A": rng.standard_normal((4, 6)), "x": rng.standard_normal(6)}
    wrt = ("A", "x")
    res = evaluate(_hvp_function, arrays, wrt, Quad(), tangents=dirs, directions=dirs)
    q = Quad()
    h = q.const(1e-10)

    def grads_at(sign):
        moved = dict(arrays)
        for k in wrt:  # binary128 inputs pass through evaluate unrounded
            moved[k] = q.const(arrays[k]) + q.const(float(sign)) * h * q.const(dirs[k])
        return evaluate(_hvp_function, moved, wrt, q)

    plus, minus = grads_at(1), grads_at(-1)
    for k in wrt:
        fd = ((plus[f"grad_{k}"] - minus[f"grad_{k}"]) / (q.const(2.0) * h)).astype(np.float64)
        hv = np.asarray(res[f"hvp_{k}"]).astype(np.float64)
        assert hv.shape == arrays[k].shape
        scale = np.max(np.abs(hv))
        assert scale > 0
        np.testing.assert_allclose(hv, fd, rtol=0, atol=1e-12 * scale, err_msg=k)
    # and the JVP against the central difference of the loss
    jvp = float(np.asarray(res["jvp"]).astype(np.float64))
    fd = float(((plus["loss"] - minus["loss"]) / (q.const(2.0) * h)).astype(np.float64))
    assert jvp == pytest.approx(fd, rel=1e-12)


def test_hvp_of_a_quadratic_is_exact():
    """sum((A x)^2): the Hessian in x is 2 A^T A, exactly on small integers."""
    rng = np.random.default_rng(2)
    A, x, v = _ints(rng, (3, 4)), _ints(rng, (4,)), _ints(rng, (4,))

    def fn(A, x, *, xp, nn):
        return xp.sum((A @ x) ** 2)

    res = evaluate(fn, {"A": A, "x": x}, ("x",), Quad(), directions={"x": v})
    np.testing.assert_array_equal(np.asarray(res["hvp_x"]).astype(np.float64), 2 * A.T @ (A @ v))


# ---------------------------------------------------------------- emulated arithmetic


def _busy(A, x, w, *, xp, nn):
    h = nn.tanh(A @ x)
    return xp.sum(h * w) + xp.sum(nn.softmax(x) * 0.5) + xp.mean(nn.softplus(x) ** 2)


@pytest.mark.parametrize("dtype, np_dtype", [("float16", np.float16), ("float32", np.float32)])
def test_emulated_values_are_representable_in_the_dtype(dtype, np_dtype):
    rng = np.random.default_rng(8)
    arrays = {"A": rng.standard_normal((5, 7)), "x": rng.standard_normal(7) * 3,
              "w": rng.standard_normal(5)}  # fmt: skip
    dirs = {k: rng.standard_normal(arrays[k].shape) for k in ("A", "x", "w")}
    res = evaluate(_busy, arrays, ("A", "x", "w"), Emulated(dtype, np.random.default_rng(1)),
                   tangents=dirs, directions=dirs)  # fmt: skip
    assert set(res) == {"loss", "jvp", *(f"{p}_{k}" for p in ("grad", "hvp") for k in "Axw")}
    for q, v in res.items():
        v = np.asarray(v)
        assert v.dtype == np.float64, q
        assert np.all(np.isfinite(v)), q
        np.testing.assert_array_equal(v.astype(np_dtype).astype(np.float64), v, err_msg=q)
    # honest: near the binary128 value, a few ulps of the dtype times the sizes involved
    ref = evaluate(_busy, arrays, ("A", "x", "w"), Quad())
    u = float(np.finfo(np_dtype).eps) / 2
    for q in ("loss", "grad_x", "grad_A"):
        r = np.asarray(ref[q]).astype(np.float64)
        np.testing.assert_allclose(res[q], r, rtol=0, atol=300 * u * max(1.0, np.max(np.abs(r))),
                                   err_msg=q)  # fmt: skip


def test_emulated_runs_differ_by_their_random_streams():
    rng = np.random.default_rng(8)
    arrays = {"A": rng.standard_normal((5, 7)), "x": rng.standard_normal(7),
              "w": rng.standard_normal(5)}  # fmt: skip
    runs = [evaluate(_busy, arrays, ("x",), Emulated("float16", np.random.default_rng(s)))
            for s in range(4)]  # fmt: skip
    assert len({float(r["loss"]) for r in runs}) > 1
    again = evaluate(_busy, arrays, ("x",), Emulated("float16", np.random.default_rng(0)))
    np.testing.assert_array_equal(again["grad_x"], runs[0]["grad_x"])


def test_emulated_overflows_where_the_dtype_does():
    def fn(x, *, xp, nn):
        return xp.sum(xp.exp(x))

    x12 = {"x": np.array([12.0])}  # e^12 = 162754.8 > 65504
    for seed in range(3):
        r16 = evaluate(fn, x12, ("x",), Emulated("float16", np.random.default_rng(seed)))
        assert np.isposinf(r16["loss"]) and np.isposinf(r16["grad_x"][0])
    r11 = evaluate(
        fn, {"x": np.array([11.0])}, ("x",), Emulated("float16", np.random.default_rng(0))
    )
    assert np.isfinite(r11["loss"]) and abs(float(r11["loss"]) - np.exp(11.0)) <= 64
    r32 = evaluate(fn, x12, ("x",), Emulated("float32", np.random.default_rng(0)))
    assert float(r32["loss"]) == pytest.approx(np.exp(12.0), rel=1e-6)
    rq = evaluate(fn, x12, ("x",), Quad())
    assert float(np.asarray(rq["loss"]).astype(np.float64)) == pytest.approx(
        np.exp(12.0), rel=1e-15
    )

    # a square past the range: 300^2 = 90000 > 65504
    def sq(x, *, xp, nn):
        return xp.sum(x * x) / 1000.0

    r = evaluate(
        sq, {"x": np.array([300.0])}, ("x",), Emulated("float16", np.random.default_rng(0))
    )
    assert np.isposinf(r["loss"])
    # and underflow: float16's smallest subnormal is 6e-8
    r = evaluate(sq, {"x": np.array([1e-4])}, ("x",), Emulated("float16", np.random.default_rng(0)))
    assert float(r["loss"]) == 0.0


def test_a_float64_product_past_the_range_inside_a_matmul_counts_as_overflow():
    """1e300 x 1e10 - 1e300 x 1e10: the products leave float64's range and the matmul is
    inf - inf = NaN, not inf; the run has still overflowed (held-out seed 8's LSTM gate at
    1e600, whose honest float64 runs are NaN and jax's result +inf-driven)."""

    def fn(W, x, *, xp, nn):
        return xp.sum(nn.sigmoid(W @ x))

    W, x = np.array([[1e300, -1e300]]), np.array([1e10, 1e10])
    run = evaluate(fn, {"W": W, "x": x}, ("x",), Emulated("float64", np.random.default_rng(0)))
    assert np.isnan(run["loss"]) and run.overflowed
    fine = evaluate(fn, {"W": W / 1e300, "x": x}, ("x",),
                    Emulated("float64", np.random.default_rng(0)))  # fmt: skip
    assert not fine.overflowed


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_emulated_exact_operations_stay_exact(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(9)
    for seed in range(5):
        ar = Emulated(dtype, np.random.default_rng(seed))
        r = evaluate(lambda x, *, xp, nn: xp.sum(x - x), {"x": x}, ("x",), ar)
        assert float(r["loss"]) == 0.0
        r = evaluate(lambda x, *, xp, nn: xp.sum(x * 1.0), {"x": x[:1]}, ("x",),
                     Emulated(dtype, np.random.default_rng(seed)))  # fmt: skip
        assert float(r["loss"]) == float(ar.const(x[:1])[0])
        assert float(r["grad_x"][0]) == 1.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_emulated_width_one_layer_norm_is_exactly_zero(dtype):
    rng = np.random.default_rng(6)
    x, P = rng.standard_normal((5, 1)), rng.standard_normal((5, 1))

    def fn(x, P, *, xp, nn):
        return xp.sum(P * nn.layer_norm(x))

    for seed in range(4):
        r = evaluate(fn, {"x": x, "P": P}, ("x",), Emulated(dtype, np.random.default_rng(seed)),
                     directions={"x": P})  # fmt: skip
        assert float(r["loss"]) == 0.0
        np.testing.assert_array_equal(r["grad_x"], np.zeros((5, 1)))
        np.testing.assert_array_equal(r["hvp_x"], np.zeros((5, 1)))


def test_an_emulated_jvp_propagates_tangents_forward():
    """A JVP is rounded tangent by tangent, as forward-mode AD computes it: for
    sum(P * b) with b broadcast, sum_i round(P_i t) in the dtype, not round(sum P) * t (the
    inner product of a rounded gradient, which jax.jvp never computes)."""
    import ml_dtypes

    bf16 = np.dtype(ml_dtypes.bfloat16)
    P = np.random.default_rng(2).standard_normal((6, 1)).astype(bf16).astype(np.float64)
    b = np.array([0.5])
    t = np.array([float(np.float64(0.2050781).astype(bf16))])

    def fn(b, P, *, xp, nn):
        return xp.sum(P * b)

    r = evaluate(fn, {"b": b, "P": P}, ("b",), Emulated("bfloat16", np.random.default_rng(0),
                 sign=0.0), tangents={"b": t})  # fmt: skip

    def rnd(v):
        return np.asarray(v, dtype=np.float64).astype(bf16).astype(np.float64)

    forward = rnd(np.sum(rnd(P[:, 0] * t[0])))
    inner = rnd(rnd(np.sum(P)) * t[0])
    assert forward != inner  # the case tells the two orders apart
    assert float(r["jvp"]) == float(forward)
    # the reference is exact whichever way: the inner product in binary128
    q = evaluate(fn, {"b": b, "P": P}, ("b",), Quad(), tangents={"b": t})
    assert float(np.asarray(q["jvp"]).astype(np.float64)) == pytest.approx(np.sum(P) * t[0])


def test_wide_runs_keep_the_rounding_and_drop_the_range():
    """Emulated(wide=True): the dtype's rounding error, float64's range (the spread where
    every run in the dtype met a non-finite value)."""

    def fn(x, *, xp, nn):
        return xp.sum(xp.exp(x)) + xp.sum(x * 0.1)

    x = {"x": np.array([12.0, 0.3])}  # e^12 overflows float16
    narrow = evaluate(fn, x, ("x",), Emulated("float16", np.random.default_rng(0)))
    wide = evaluate(fn, x, ("x",), Emulated("float16", np.random.default_rng(0), wide=True))
    assert not np.isfinite(narrow["loss"])
    true = np.exp(12.0) + np.exp(0.3) + 1.23
    assert np.isfinite(wide["loss"]) and float(wide["loss"]) != true
    assert abs(float(wide["loss"]) - true) <= 8 * 2.0**-11 * true


# ---------------------------------------------------------------- kinks


def _relu_sum(x, *, xp, nn):
    return xp.sum(nn.relu(x))


def test_relu_at_an_exact_zero_counts_a_tie():
    r = evaluate(_relu_sum, {"x": np.array([0.0, 1.5, -2.0])}, ("x",), Quad())
    assert r.ties > 0
    assert r.branches
    r = evaluate(_relu_sum, {"x": np.array([0.25, 1.5, -2.0])}, ("x",), Quad())
    assert r.ties == 0
    assert r.branches  # the comparison is still logged, without a tie


@pytest.mark.parametrize(
    "body, x",
    [
        (lambda x, xp, nn: xp.sum(xp.abs(x)), [0.0, 1.0]),
        (lambda x, xp, nn: xp.sum(xp.maximum(x, 1.5)), [1.5, 2.0, -1.0]),
        (lambda x, xp, nn: xp.max(x), [3.0, 1.0, 3.0]),
    ],
    ids=["abs", "maximum", "max"],
)
def test_other_kinks_count_ties(body, x):
    def fn(x, *, xp, nn):
        return body(x, xp, nn)

    assert evaluate(fn, {"x": np.array(x)}, ("x",), Quad()).ties > 0
    moved = np.array(x) + np.arange(len(x)) * 0.125 + 0.0625
    assert evaluate(fn, {"x": moved}, ("x",), Quad()).ties == 0
