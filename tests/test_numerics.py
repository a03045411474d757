"""The vectorised error-free numerics the float64 reference is built from, against mpmath and
against the slow paths they replace."""

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from gradxval.model.problems import LOGISTIC, TANH
from gradxval.numerics import (
    _dot2_matmul,
    _sliced_matmul,
    aligned_slices,
    dd_exp,
    dd_matmul,
)


def _dd_error(hi, lo, exact) -> float:
    """|hi + lo - exact| / |exact|, evaluated in mpmath."""
    got = mpmath.mpf(float(hi)) + mpmath.mpf(float(lo))
    return float(abs(got - exact) / abs(exact)) if exact != 0 else float(abs(got))


def _spread(rng, size, lo_exp, hi_exp):
    """Float64 values of both signs spread over [2**lo_exp, 2**hi_exp] in magnitude."""
    mag = 2.0 ** rng.uniform(lo_exp, hi_exp, size)
    return mag * rng.choice([-1.0, 1.0], size)


def test_dd_exp_matches_mpmath_to_double_double_accuracy():
    rng = np.random.default_rng(1)
    y = np.concatenate(
        [
            _spread(rng, 300, -60, np.log2(650)),
            [0.0, 1e-300, -1e-300, 0.5 * np.log(2), -0.5 * np.log(2), 650.0, -650.0],
        ]
    )
    (m_hi, m_lo), (e_hi, e_lo) = dd_exp(y)
    with mpmath.workprec(200):
        for i, v in enumerate(y):
            t = mpmath.mpf(float(v))
            assert _dd_error(e_hi[i], e_lo[i], mpmath.exp(t)) < 2.0**-96, v
            assert _dd_error(m_hi[i], m_lo[i], mpmath.expm1(t)) < 2.0**-96, v


@pytest.mark.parametrize("act", [LOGISTIC, TANH], ids=lambda a: a.name)
def test_dd_activation_matches_mpmath(act):
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            _spread(rng, 200, -40, np.log2(act.dd_range)),
            [0.0, 2.0**-900, -(2.0**-900), act.dd_range, -act.dd_range, 0.25, -3.0],
        ]
    )
    pairs = act.dd(x, True)
    assert len(pairs) == 3
    with mpmath.workprec(200):
        for i, v in enumerate(x):
            t = mpmath.mpf(float(v))
            exact = (*act.mp(t), act.mp2(t))
            for (hi, lo), want in zip(pairs, exact, strict=True):
                assert _dd_error(hi[i], lo[i], want) < 2.0**-96, (v, want)
                # the high part is the correctly rounded value
                assert hi[i] == float(want), (v, hi[i], float(want))


def _exact_sum(parts) -> np.ndarray:
    return np.vectorize(lambda *vs: sum(map(Fraction, vs), Fraction(0)), otypes=[object])(*parts)


def test_aligned_slices_sum_exactly_to_the_matrix():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((7, 9)) * 2.0 ** rng.integers(-20, 20, (7, 9))
    sl = aligned_slices(a, cap=8)
    assert sl is not None
    slices, quanta, t = sl
    assert np.abs(a).max() < 2.0**t
    assert np.all(_exact_sum(slices) == _exact_sum([a]))
    for s, e in zip(slices, quanta, strict=True):
        # each slice: integer multiples of its quantum, at most 2**26 of them
        k = s / 2.0**e
        assert np.all(k == np.rint(k)) and np.abs(k).max() <= 2.0**26


def test_aligned_slices_refuses_what_it_cannot_slice_exactly():
    a = np.array([[1.0, np.nan]])
    assert aligned_slices(a) is None
    assert aligned_slices(np.array([[1.0, np.inf]])) is None
    assert aligned_slices(np.array([[1.0, 2.0**-300]])) is None  # more than four slices
    assert aligned_slices(np.zeros((2, 2))) == ([], [], 0)


def _dd_values(hi, lo) -> np.ndarray:
    return _exact_sum([hi, lo])


@pytest.mark.parametrize("shape", [(5, 1), (40, 3), (1, 4000)])
def test_sliced_matmul_is_exact_where_it_runs(shape):
    """B @ v_hi by slices is exact; only summing the exact partial products rounds, far below
    the double-double's 2**-104 of the condition scale |B| |v|."""
    P, Q, k = shape[0], shape[1] if shape[1] > 3 else 30, shape[1] if shape[1] <= 3 else 2
    rng = np.random.default_rng(4)
    B = rng.standard_normal((P, Q))
    v_hi = rng.standard_normal((Q, k))
    v_lo = v_hi * 2.0**-60 * rng.standard_normal((Q, k))
    sl = aligned_slices(B)
    hi, lo = _sliced_matmul(B, sl, v_hi, np.zeros_like(v_lo))
    exact = [
        [sum(Fraction(B[p, q]) * Fraction(v_hi[q, c]) for q in range(Q)) for c in range(k)]
        for p in range(P)
    ]
    got = _dd_values(hi, lo)
    scale = np.abs(B) @ np.abs(v_hi)
    for p in range(P):
        for c in range(k):
            assert abs(got[p, c] - exact[p][c]) <= Fraction(scale[p, c]) * Fraction(2) ** -104
    # with a low part: agrees with the Dot2 loop it replaces
    s_hi, s_lo = _sliced_matmul(B, sl, v_hi, v_lo)
    d_hi, d_lo = _dot2_matmul(B, v_hi, v_lo)
    assert np.allclose(s_hi, d_hi, rtol=2.0**-52, atol=0)
    assert np.all(np.abs((s_hi - d_hi) + (s_lo - d_lo)) <= scale * 2.0**-100)


def test_dd_matmul_falls_back_to_dot2():
    rng = np.random.default_rng(5)
    B = rng.standard_normal((6, 8))
    v_hi = rng.standard_normal((8, 1))
    v_lo = np.zeros((8, 1))
    sl = aligned_slices(B)
    # a non-finite v cannot be sliced: the Dot2 loop answers, with its inf/NaN pattern
    v_bad = v_hi.copy()
    v_bad[3, 0] = np.inf
    assert _sliced_matmul(B, sl, v_bad, v_lo) is None
    with np.errstate(all="ignore"):
        got = dd_matmul(B, v_bad, v_lo, sl)
        want = _dot2_matmul(B, v_bad, v_lo)
    np.testing.assert_array_equal(got[0], want[0])
    # a v spread over more than 12 slices' worth of exponents: also Dot2
    v_wide = v_hi * 2.0 ** np.arange(0, -8 * 40, -40)[:, None]
    assert _sliced_matmul(B, sl, v_wide, v_lo) is None
    np.testing.assert_array_equal(
        dd_matmul(B, v_wide, v_lo, sl)[0], _dot2_matmul(B, v_wide, v_lo)[0]
    )
    # no slices at all (B not sliceable): Dot2
    np.testing.assert_array_equal(dd_matmul(B, v_hi, v_lo, None)[0], _dot2_matmul(B, v_hi, v_lo)[0])


def test_sliced_and_dot2_agree_at_n_4000():
    """Inner products of 4,000 terms, where the vector's slices are narrowest (15 bits); 256
    rows of them (the row count changes nothing in the bound, only the cost)."""
    rng = np.random.default_rng(6)
    B = rng.standard_normal((256, 4000))
    v_hi = rng.uniform(0, 1, (4000, 1))
    v_lo = v_hi * 2.0**-54 * rng.uniform(-1, 1, (4000, 1))
    sl = aligned_slices(B)
    assert sl is not None
    s_hi, s_lo = _sliced_matmul(B, sl, v_hi, v_lo)
    d_hi, d_lo = _dot2_matmul(B, v_hi, v_lo)
    scale = np.abs(B) @ np.abs(v_hi)
    assert np.all(np.abs((s_hi - d_hi) + (s_lo - d_lo)) <= scale * 2.0**-98)


@pytest.mark.parametrize("shape", [(3, 5), (700, 300), (5, 70000)])
def test_dd_outer_in_blocks_gives_the_whole_array_bits(shape):
    """Row blocks, whole arrays: the same operations element by element, the same bits; and
    within one rounding of the exact double-double product."""
    from gradxval.numerics import dd_outer, two_prod

    rng = np.random.default_rng(7)
    P, Q = shape
    a_hi = rng.standard_normal((P, 1)) * 2.0 ** rng.integers(-30, 30, (P, 1))
    b_hi = rng.uniform(0, 1, (1, Q))
    a_lo = a_hi * 2.0**-55 * rng.uniform(-1, 1, (P, 1))
    b_lo = b_hi * 2.0**-55 * rng.uniform(-1, 1, (1, Q))
    a_hi[0, 0], b_hi[0, -1] = np.inf, np.nan  # non-finite values pass through as IEEE has them
    with np.errstate(all="ignore"):
        g_hi, g_lo = two_prod(a_hi, b_hi)
        g_lo += a_hi * b_lo
        g_lo += a_lo * b_hi
        g_hi += g_lo
        g_hi *= 2
        got = dd_outer(a_hi, a_lo, b_hi, b_lo, scale=2.0)
    np.testing.assert_array_equal(got.view(np.uint64), g_hi.view(np.uint64))
    i, j = min(P - 1, 3), min(Q - 2, 5)
    exact = (
        2
        * (Fraction(a_hi[i, 0]) + Fraction(a_lo[i, 0]))
        * (Fraction(b_hi[0, j]) + Fraction(b_lo[0, j]))
    )
    assert abs(Fraction(got[i, j]) - exact) <= abs(exact) * Fraction(2) ** -52


def _slices_whole(a, beta=26, cap=4):
    """aligned_slices on whole arrays, as first written: the blocked one must equal it."""
    top = float(np.max(np.abs(a)))
    t = t0 = int(np.frexp(top)[1])
    rest, out, quanta = a, [], []
    while True:
        if len(out) == cap or t - beta < -1074:
            return None
        sigma = 1.5 * 2.0 ** (52 + t - beta)
        q = (rest + sigma) - sigma
        rest = rest - q
        out.append(q)
        quanta.append(t - beta)
        t -= beta + 1
        if not rest.any():
            return out, quanta, t0


@pytest.mark.parametrize("shape", [(1, 1), (9, 4), (300, 700), (70000, 2), (2, 70000)])
def test_aligned_slices_in_blocks_equal_the_whole_array_slices(shape):
    rng = np.random.default_rng(8)
    a = rng.standard_normal(shape) * 2.0 ** rng.integers(-12, 12, shape)
    a.flat[0] = 2.0**-40  # one element that needs the last slice, in the first block only
    for beta, cap in ((26, 4), (17, 12), (26, 2)):
        got, want = aligned_slices(a, beta, cap), _slices_whole(a, beta, cap)
        assert (got is None) == (want is None)
        if got is not None:
            assert got[1:] == want[1:] and len(got[0]) == len(want[0])
            for g, w in zip(got[0], want[0], strict=True):
                np.testing.assert_array_equal(g, w)
    if a.size > 1:  # 2**-40 beside values near 2**12: more than two slices
        assert aligned_slices(a, 26, 2) is None
