"""What a wrong result looks like: evidence functions, used as diagnoses and by the registry.

An evidence function models one wrong computation (a cancelling derivative rule, flushed
subnormals, NaN from an infinity, ...) and says, for every element of a result, whether that
computation explains it.  An element is explained when the result reproduces the wrong
computation there, or when the wrong computation predicts no visible deviation from the
reference and the result agrees with the reference.  An element where the model predicts a
clear deviation (over twice the tolerance) and the result does not show it contradicts the
model.

Two uses, kept apart:
- a **diagnosis** runs every evidence function on a disagreeing result of any backend and
  names the ones that explain every element: a hint, never an excuse;
- the **registry** (known.py) turns a disagreement into ``known`` only when an entry's evidence
  explains every element and the entry's scope (library, versions, methods) covers the result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gradxval.dtypes import info
from gradxval.judge.error_model import expected_dtype, measure, outcome_sets
from gradxval.numerics import round_to

__all__ = ["EVIDENCE", "DTYPE_EVIDENCE", "DIAGNOSES", "diagnose"]

# the model must miss the reference by this many tolerances before a result that agrees with
# the reference counts against it: rounding differences near the tolerance decide nothing
_CLEAR = 2.0


def _err(actual, expected, ref, quantity, di, under=None):
    """Per-element error in u of ``actual`` against ``expected``, in actual's own dtype."""

    a = np.asarray(actual)
    return measure(
        a,
        expected,
        ref.scale[quantity],
        ref.under[quantity] if under is None else under,
        di,
        a.dtype.name,
    ).e


def _explained(reproduced, model_e, ms, tol) -> np.ndarray:
    """Reproduced by the model, or consistent with it: the model stays near the reference
    there and so does the result."""
    return reproduced | ((model_e <= _CLEAR * tol) & (ms.e <= tol))


def _derivative_cancellation(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """The result equals 2 d(y) * Re(A^H A phi(x)), y = phi(x) rounded to the dtype and d one of
    the activation's cancelling derivative rules (sigma: y (1 - y) or y - y^2; tanh: 1 - y^2).

    Library functions are not correctly rounded (torch's sigmoid is 1 ulp off at x = 12.84 in
    float32; XLA's float64 tanh is 7 ulps below 1 at x = 19), so y is tried at its rounded value
    and up to Activation.ulps ulps either side (2 for sigma, 8 for tanh); an element is
    reproduced if any candidate reproduces it.
    """

    if quantity == "hvp_x":
        return _second_derivative_cancellation(case, actual, ref, ms, tol)
    forms = getattr(ref.activation, "cancelled", ())
    if not forms or ref.sigma is None or quantity != "grad_x":
        return None
    di = info(case.dtype)
    dt = di.np_real
    candidates = _rounded_candidates(ref, dt)
    best = model = None
    for y, form in ((y, f) for y in candidates for f in forms):
        y = y.astype(np.float64)
        sp = form(y, dt)
        alt = 2 * sp * ref.back
        scale = 2 * np.abs(sp) * ref.back_abs
        m = measure(actual, alt, scale, ref.under[quantity], di, expected_dtype(case, quantity))
        if m.mismatch:
            return None
        gap = _err(alt, ref.values[quantity], ref, quantity, di)
        best = m.e if best is None else np.minimum(best, m.e)
        model = gap if model is None else np.minimum(model, gap)
    return _explained(best <= tol, model, ms, tol)


def _rounded_candidates(ref, dt) -> list[np.ndarray]:
    """y = phi(x) rounded to the dtype, and up to Activation.ulps ulps either side."""
    with np.errstate(all="ignore"):
        y0 = np.asarray(ref.sigma).astype(dt)
        out = [y0]
        for target in (-np.inf, np.inf):
            y = y0
            for _ in range(getattr(ref.activation, "ulps", 2)):
                y = np.nextafter(y, np.asarray(target, dtype=dt))
                out.append(y)
    return out


def _second_derivative_cancellation(case, actual, ref, ms, tol) -> np.ndarray | None:
    """hvp_x equals H v with phi' and phi'' from the autodiff rules' cancelling forms of
    y = fl(phi(x)): the derivative of sigma's VJP y (1 - y) is y (1 - y) (1 - 2 y), which loses
    all accuracy where y rounds to 1, as the first-order rule does one order down."""
    from gradxval.judge.reference import evaluate_plain

    forms = getattr(ref.activation, "cancelled2", ())
    if not forms or ref.sigma is None or ref.v is None or ref.embedding is None:
        return None
    di = info(case.dtype)
    absR = np.abs(ref.embedding)
    shape2 = (case.n, case.k or 1)
    W = np.asarray(ref.back_abs).reshape(shape2)
    V = ref.v.reshape(shape2)
    best = model = None
    # half-precision kernels compute in float32 and round once (torch's opmath): the rule
    # cancels at float32's precision there, not float16's (logsigmoid:extreme-float16-m1n608-
    # s858697: torch's phi'' is nonzero where the float16 rule gives 0)
    dts = (di.np_real, np.float32) if case.dtype in ("float16", "bfloat16") else (di.np_real,)
    pairs: dict = {}  # (dtype, form) -> (phi', phi'') per candidate y, the rounded y first
    for rdt, y in ((t, c) for t in dts for c in _rounded_candidates(ref, t)):
        y = y.astype(np.float64)
        for f, (d1, d2) in enumerate(forms):
            sp, spp = d1(y, rdt), d2(y, rdt)
            pairs.setdefault((rdt, f), []).append((sp, spp))
            alt = evaluate_plain(ref.embedding, ref.sigma, sp, case.m, False, spp, ref.v)["hvp_x"]
            SP, SPP = sp.reshape(shape2), spp.reshape(shape2)
            scale = 2 * np.abs(SPP) * W * np.abs(V) + 2 * np.abs(SP) * (
                absR.T @ (absR @ np.abs(SP * V))
            )
            m = measure(
                actual,
                alt,
                scale.reshape(case.x_shape),
                ref.under["hvp_x"],
                di,
                expected_dtype(case, "hvp_x"),
            )
            if m.mismatch:
                return None
            gap = _err(alt, ref.values["hvp_x"], ref, "hvp_x", di)
            best = m.e if best is None else np.minimum(best, m.e)
            model = gap if model is None else np.minimum(model, gap)
    # each y_j is the library's own rounding of phi(x_j), a candidate of its own: H v mixes
    # phi'_j of every j through R^T R, so trying one offset for all j at once is not enough
    # (tanh:saturated-float64-m353n49-s947265).  The result must lie within the spread that
    # independent offsets give, propagated to first order, around the rounded y.
    for group in pairs.values():
        inside = _within_spread(case, actual, ref, group, di, shape2, absR, W, V)
        if inside is not None:
            best = np.minimum(best, inside)
    return _explained(best <= tol, model, ms, tol)


def _within_spread(case, actual, ref, pairs, di, shape2, absR, W, V):
    """The error in u of hvp_x against H v from pairs[0] = (phi', phi''), with the other pairs'
    elementwise distance from it as each element's own uncertainty, propagated through
    R^T R to first order.  None where the model is not finite or the shapes do not fit."""
    from gradxval.judge.reference import evaluate_plain

    back = np.abs(np.asarray(ref.back)).reshape(shape2)
    sp0, spp0 = pairs[0]
    with np.errstate(all="ignore"):
        dsp = np.max([np.abs(a - sp0) for a, _ in pairs], axis=0).reshape(shape2)
        dspp = np.max([np.abs(b - spp0) for _, b in pairs], axis=0).reshape(shape2)
        SP, SPP = sp0.reshape(shape2), spp0.reshape(shape2)
        alt = evaluate_plain(ref.embedding, ref.sigma, sp0, case.m, False, spp0, ref.v)
        spread = (
            2 * dspp * back * np.abs(V)
            + 2 * dsp * (absR.T @ (absR @ np.abs(SP * V)))
            + 2 * (np.abs(SP) + dsp) * (absR.T @ (absR @ (dsp * np.abs(V))))
        )
        scale = 2 * np.abs(SPP) * W * np.abs(V) + 2 * np.abs(SP) * (
            absR.T @ (absR @ np.abs(SP * V))
        )
        # a column with an infinite x has a non-finite model there, as the reference has:
        # no spread to allow, the model's own NaN/inf pattern is compared
        spread = np.where(np.isfinite(spread), spread, 0.0)
        under = np.asarray(ref.under["hvp_x"]).reshape(shape2) + spread / di.eta
    m = measure(
        actual,
        alt["hvp_x"],
        scale.reshape(case.x_shape),
        under.reshape(case.x_shape),
        di,
        expected_dtype(case, "hvp_x"),
    )
    return None if m.mismatch else m.e


def _flush(a: np.ndarray, below: float, where_zero: np.ndarray | None = None) -> np.ndarray:
    """Zero the real and imaginary components of magnitude below ``below`` (only those that
    are zero in ``where_zero``, when it is given)."""
    a = np.array(a, copy=True)
    parts = (a.real, a.imag) if np.iscomplexobj(a) else (a,)
    if where_zero is None:
        refs = (None,) * len(parts)
    else:
        refs = (where_zero.real, where_zero.imag) if np.iscomplexobj(where_zero) else (where_zero,)
    for part, ref in zip(parts, refs, strict=True):
        mask = np.abs(part) < below
        if ref is not None:
            mask &= np.asarray(ref) == 0
        part[mask] = 0
    return a


def _subnormal_flush(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """Elements that equal the reference recomputed with subnormals flushed to zero (XLA CPU's
    FTZ/DAZ; torch's exp overflowing to 0 in sigma).

    Flushed are: sigma and sigma' below the smallest normal number, and those result components
    below twice it that the result has as zero -- the closed forms end in an exact doubling,
    2 * (z s), so a subnormal z s is flushed before it is doubled into the normal range.  Or, for
    grad_x, the result agrees once each subnormal product sigma'_j A_ij inside the sum may be lost
    (it is at most the smallest normal number times |z_i|).
    """
    from gradxval.judge.reference import evaluate_plain

    if ref.embedding is None or ref.sigma is None:
        return None
    di = info(case.dtype)
    # tanh' = 4 e / (1 + e)^2 with e = exp(-2|x|): e is flushed already where tanh' < 4 tiny
    # (tanh:extreme-float32-m2n329k6-s310481, jax's closed form: tanh' = 2.4e-38 became 0)
    below = 4 * di.tiny if getattr(ref.activation, "name", "") == "tanh" else di.tiny
    with np.errstate(all="ignore"):
        s = _flush(ref.sigma, di.tiny)
        sp = _flush(ref.sigma_prime, below)
        spp = None if ref.sigma_second is None else _flush(ref.sigma_second, below)
        # (not float16: XLA keeps float16's subnormals, engine.arith.Emulated)
        if (getattr(ref.activation, "name", "") == "tanh" and ref.x is not None
                and case.dtype != "float16"):  # fmt: skip
            # tanh'' = -2 tanh tanh' is formed from the same e: where e itself is subnormal
            # (|x| > -ln(tiny) / 2) both are 0, though tanh'' reaches 8 tiny there
            # (tanh:extreme-complex64-m1000n257-s325394, jax's closed form: H v = 0 at x = 43.79)
            gone = np.abs(np.asarray(ref.x, dtype=np.float64)).reshape(np.shape(sp))
            gone = gone > -np.log(di.tiny) / 2
            sp = np.where(gone, 0.0 * sp, sp)
            spp = None if spp is None else np.where(gone, 0.0 * spp, spp)
        want_ref = np.asarray(ref.values[quantity])
        changed = [(a, b) for a, b in ((s, ref.sigma), (sp, ref.sigma_prime),
                                       (spp, ref.sigma_second)) if a is not None]  # fmt: skip
        if any(not np.array_equal(a, b, equal_nan=True) for a, b in changed):
            alt = evaluate_plain(ref.embedding, s, sp, case.m, di.is_complex, spp, ref.v)
            if quantity not in alt:
                return None
            alt = alt[quantity]
        else:
            # nothing to flush inside: the model is the reference itself, not its float64
            # recomputation (whose own few ulps would "explain" any float64 result that close)
            alt = want_ref
        # flushing cannot make an undefined element defined: where the reference is NaN the
        # model is too (its real embedding would say inf there, and diagnose an inf as a flush)
        alt = np.where(_nan_parts(want_ref), want_ref, alt)
        alt = _flush(alt, 2 * di.tiny, where_zero=np.asarray(actual))
        want = expected_dtype(case, quantity)
        m = measure(actual, alt, ref.scale[quantity], ref.under[quantity], di, want)
        if m.mismatch:
            return None
        reproduced = m.e <= tol

        def within(lost):
            """Agrees with the reference once each element may lose ``lost`` more."""
            under = np.asarray(ref.under[quantity]) + np.reshape(lost, np.shape(ms.e)) / di.eta
            m = measure(actual, ref.values[quantity], ref.scale[quantity], under, di, want)
            return m.e <= tol

        # forward mode forms sigma'_j A_ij before multiplying by z_i: where that product is
        # subnormal it is flushed, and the sum loses at most tiny |z_i| for each such term
        if quantity == "grad_x":
            R = np.abs(ref.embedding)
            S = ref.sigma.reshape(case.n, case.k or 1)
            SP = np.abs(ref.sigma_prime.reshape(case.n, case.k or 1))
            Z = np.abs(ref.embedding @ S)
            lost = np.zeros_like(SP)
            for c in range(SP.shape[1]):
                term = SP[None, :, c] * R  # (M, n)
                flushed = term < di.tiny
                lost[:, c] = 2 * di.tiny * (flushed.T.astype(float) @ Z[:, c])
                # and each product 2 z_i (sigma'_j A_ij) that is itself subnormal loses up to
                # tiny (saturated-float32-m146n1-s21230, jax forward: 2.9e-6 relative)
                lost[:, c] += di.tiny * np.count_nonzero(2 * Z[:, c, None] * term < di.tiny, axis=0)
            reproduced |= within(lost)
        # H v = 2 phi'' (R^T R s) v + 2 phi' (R^T R w), w = phi' v: every product inside the
        # two normal-matrix products (R_ij t_j, then R_ij z_i) may be subnormal and flushed
        # before its sum, each losing at most the smallest normal number; w itself too
        # (extreme-complex64-m13n11-s442710, jax closed form 1.3e-3 off on a 1e-36 element)
        if quantity == "hvp_x" and ref.v is not None and spp is not None:
            R = np.abs(ref.embedding)
            S = np.abs(ref.sigma.reshape(case.n, case.k or 1))
            SP = np.abs(ref.sigma_prime.reshape(S.shape))
            SPP = np.abs(ref.sigma_second.reshape(S.shape))
            V = np.abs(ref.v.reshape(S.shape))
            W = SP * V
            lost = 2 * SPP * V * _normal_flush_loss(R, S, di.tiny)
            flushed_w = (R.T @ (R @ (W < di.tiny))) * di.tiny
            lost += 2 * SP * (_normal_flush_loss(R, W, di.tiny) + flushed_w)
            lost += 4 * di.tiny  # either term itself subnormal, flushed before the two are added
            # 2 phi'' back v in either order: phi'' v (or phi'' back) subnormal and flushed loses
            # up to tiny times the other factor (extreme-complex64-m65n815k8-s326641, jax
            # fwd_over_rev: 0.84 relative on a 5.5e-36 element)
            B = np.abs(np.asarray(ref.back)).reshape(S.shape)
            live = SPP > 0
            lost += 2 * di.tiny * live * (B * (SPP * V < di.tiny) + V * (SPP * B < di.tiny))
            reproduced |= within(lost)
        # grad_A = 2 sum_c z_ic s_jc: each term whose s_jc is subnormal may be flushed on its
        # own path or survive (a float16 subnormal is normal inside float32 ops), so any subset
        # of them may be missing (extreme-float16-m148n265k2-s829013: one of two columns)
        if quantity == "grad_A" and ref.sigma.ndim == 2:
            S = np.asarray(ref.sigma, dtype=np.float64)
            Z = np.abs(ref.embedding @ S)
            small = np.where(np.abs(S) < below, np.abs(S), 0.0)
            lost = 2 * Z @ small.T  # (M, n) in the real embedding
            if di.is_complex:
                lost = lost[: case.m] + lost[case.m :]
            reproduced |= within(lost)
        # the loss's squares z_i^2 are products too: a subnormal one is flushed before it is
        # summed (saturated-float32-m146n1-s21230: three of 146 squares below tiny, 2.9e-6 off)
        if quantity == "loss":
            S = s.reshape(case.n, case.k or 1)
            sq = np.square(ref.embedding @ S)
            dropped = np.float64(np.sum(np.where(sq < di.tiny, 0.0, sq)))
            m2 = measure(actual, dropped, ref.scale[quantity], ref.under[quantity], di, want)
            reproduced |= (not m2.mismatch) & (m2.e <= tol)
    # flushing cannot make an undefined (NaN) element defined
    reproduced &= ~(_nan_parts(np.asarray(ref.values[quantity])) & ~_nan_parts(actual))
    # whether a value is flushed depends on the path it takes (a float16 subnormal is a normal
    # float32 number inside XLA's upcast ops and survives), so each element may show the flush
    # or the right value; every element must show one of the two
    return reproduced | (ms.e <= tol)


def _normal_flush_loss(R: np.ndarray, T: np.ndarray, tiny: float) -> np.ndarray:
    """The most that flushing subnormal products loses from |R|^T |R| T (R, T >= 0): tiny for
    each product R_ij T_j below it inside z = R T, carried through R^T, and tiny for each product
    R_ij z_i below it inside R^T z."""
    out = np.zeros_like(T)
    for c in range(T.shape[1]):
        t = T[:, c]
        cnt1 = ((R * t[None, :]) < tiny) & (t[None, :] != 0)  # (M, n)
        z = R @ t + tiny * cnt1.sum(axis=1)
        cnt2 = (R * z[:, None]) < tiny
        out[:, c] = R.T @ (tiny * cnt1.sum(axis=1)) + tiny * cnt2.sum(axis=0)
    return out


def sequential_sum_value(case, quantity, ref) -> float | None:
    """The loss as sum(z * z) accumulated one term at a time in the case's (real) dtype,
    z = A sigma(x) rounded to the dtype; None where the model does not apply."""
    di = info(case.dtype)
    if di.is_complex or quantity != "loss" or ref.embedding is None or ref.sigma is None:
        return None
    dt = di.np
    S = ref.sigma.reshape(case.n, case.k or 1)
    with np.errstate(all="ignore"):
        z = (ref.embedding @ S).astype(dt)
        squares = (z * z).astype(dt).ravel()
        acc = np.zeros((), dtype=dt)
        for term in squares:
            acc = (acc + term).astype(dt)
    return np.float64(acc)


def _sequential_sum_in_dtype(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """The loss equals sum(z * z) accumulated one term at a time in the case's (real) dtype,
    z = A sigma(x) rounded to the dtype: a reduction with no wider accumulator."""

    alt = sequential_sum_value(case, quantity, ref)
    if alt is None:
        return None
    di = info(case.dtype)
    want = expected_dtype(case, quantity)
    m = measure(actual, alt, ref.scale[quantity], ref.under[quantity], di, want)
    if m.mismatch:
        return None
    return _explained(m.e <= tol, _err(alt, ref.values[quantity], ref, quantity, di), ms, tol)


# torch.nn.functional.softplus's default threshold: above it, softplus returns x
SOFTPLUS_THRESHOLD = 20.0


def _linear_above_threshold(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """The result equals the reference recomputed with phi = x, phi' = 1 and phi'' = 0 where
    x > 20 (torch's softplus threshold); softplus problems only."""
    from gradxval.judge.reference import evaluate_plain

    act = ref.activation
    if getattr(act, "name", "") != "softplus" or ref.embedding is None or ref.x is None:
        return None
    X = ref.x.reshape(ref.sigma.shape)
    over = X > SOFTPLUS_THRESHOLD
    if not over.any():
        return None
    di = info(case.dtype)
    with np.errstate(all="ignore"):
        s = np.where(over, X, ref.sigma)
        sp = np.where(over, 1.0, ref.sigma_prime)
        spp = None if ref.sigma_second is None else np.where(over, 0.0, ref.sigma_second)
        alt = evaluate_plain(ref.embedding, s, sp, case.m, di.is_complex, spp, ref.v)
    if quantity not in alt:
        return None
    # where the reference is not finite, the infinities decide the outcome, not the threshold:
    # the model keeps the reference's outcome there (its real embedding has another NaN pattern)
    want_ref = np.asarray(ref.values[quantity])
    with np.errstate(all="ignore"):
        alt[quantity] = np.where(np.isfinite(want_ref), alt[quantity], want_ref)
    m = measure(
        actual,
        alt[quantity],
        ref.scale[quantity],
        ref.under[quantity],
        di,
        expected_dtype(case, quantity),
    )
    if m.mismatch:
        return None
    gap = _err(alt[quantity], ref.values[quantity], ref, quantity, di)
    return _explained(m.e <= tol, gap, ms, tol)


# the value a systematic fault's model predicts, so that the run can compare the bias it
# predicts with the bias it sees (accuracy.py)
MODEL_VALUE = {"sequential_sum_in_dtype": sequential_sum_value}


def _nan_parts(actual) -> np.ndarray:
    with np.errstate(all="ignore"):
        a = np.asarray(actual).astype(np.complex128)
    return np.isnan(a.real) | np.isnan(a.imag)


def _nan_from_nonfinite_input(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """NaN elements of a result whose inputs hold an infinity or a NaN (forward mode multiplies
    the zero tangents of other entries by non-finite primals, and 0 * inf and 0 * NaN are NaN);
    every other element agrees with the reference."""
    finite_A = ref.embedding is None or np.isfinite(ref.embedding).all()
    finite_x = ref.x is None or np.isfinite(ref.x).all()
    if finite_A and finite_x:
        return None
    return _nan_parts(actual) | (ms.e <= tol)


def _nan_where_x_is_infinite(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """grad_x is NaN only where x is infinite (a VJP of the form g * exp(x - ans) evaluates
    exp(inf - inf) for one sign of the infinity: +inf in softplus, -inf in logsigmoid) and
    agrees with the reference everywhere else."""
    if quantity not in ("grad_x", "hvp_x") or ref.x is None or not np.isinf(ref.x).any():
        return None
    inf_x = np.isinf(ref.x).reshape(np.shape(ms.e))
    return np.where(inf_x, _nan_parts(actual) | (ms.e <= tol), ms.e <= tol)


def _tanh_jvp_inf_minus_inf(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """grad_x equals (g + g y)(1 - y), y = tanh(x), with the cotangent g = 2 Re(A^H A y):
    jax's tanh JVP rule in that order, each operation rounded to the dtype (y within
    Activation.ulps ulps), or its transpose a + a y with a = g (1 - y), the order jax's eager
    VJP runs it in (jit may reorder; tanh:saturated-complex128-m1n3-s0: eager 5e-9 off in
    float64, exactly the transposed order's rounding).  Where y nears -1, g + g y cancels (24 %
    off in bfloat16); where g is infinite and y < 0 it is inf - inf = NaN (the true value is an
    infinity)."""

    if quantity != "grad_x" or getattr(ref.activation, "name", "") != "tanh" or ref.back is None:
        return None
    di = info(case.dtype)
    dt = di.np_real
    with np.errstate(all="ignore"):
        g = round_to(2 * np.asarray(ref.back, dtype=np.float64), dt)
    want = expected_dtype(case, quantity)
    best = None
    for y in _rounded_candidates(ref, dt):
        y = y.astype(np.float64)
        with np.errstate(all="ignore"):
            one_minus = round_to(1 - y, dt)
            model = round_to(round_to(g + round_to(g * y, dt), dt) * one_minus, dt)
            a = round_to(g * one_minus, dt)
            transposed = round_to(a + round_to(a * y, dt), dt)
        for candidate in (model, transposed):
            m = measure(actual, candidate, ref.scale[quantity], ref.under[quantity], di, want)
            if m.mismatch:
                return None
            best = m.e if best is None else np.minimum(best, m.e)
    return (best <= tol) | (ms.e <= tol)


def _cosh_squared_overflow(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """grad_x equals g / cosh(x)^2 in the case's real dtype, g = 2 Re(A^H A tanh(x)): where
    cosh(x)^2 overflows (|x| > ~355 in float64, ~44.7 in float32) the quotient is 0 although
    4 exp(-2|x|) g is representable; elsewhere the result agrees with the reference."""
    if getattr(ref.activation, "name", "") != "tanh" or ref.x is None:
        return None
    if quantity == "hvp_x":
        return _cosh_squared_second_order(case, actual, ref, ms, tol)
    if quantity != "grad_x":
        return None
    di = info(case.dtype)
    dt = np.dtype(di.np_real)
    with np.errstate(all="ignore"):
        c = np.cosh(np.asarray(ref.x).reshape(np.shape(ms.e)).astype(dt))
        over = ~np.isfinite(c * c)
        if not over.any():
            return None
        g = (2 * np.asarray(ref.back)).astype(dt)
        model = g / (c * c)
    a = np.asarray(actual)
    return np.where(over & np.isfinite(g), a == model, ms.e <= tol)


def _cosh_squared_second_order(case, actual, ref, ms, tol) -> np.ndarray | None:
    """hvp_x equals H v with phi' = 1 / cosh(x)**2 and phi'' = -(2 cosh(x) sinh(x)) /
    (cosh(x)**2)**2, the derivative autograd takes of its own rule, in the dtype: where cosh^2
    or its square overflows, phi'' is 0 or inf / inf = NaN."""
    from gradxval.judge.reference import evaluate_plain

    if ref.v is None or ref.embedding is None or ref.sigma is None:
        return None
    di = info(case.dtype)
    dt = np.dtype(di.np_real)
    with np.errstate(all="ignore"):
        x = np.asarray(ref.x).reshape(ref.sigma.shape).astype(dt)
        c, sh = np.cosh(x), np.sinh(x)
        c2 = c * c
        if np.isfinite(c2 * c2).all():
            return None
        sp = (1 / c2).astype(np.float64)
        # forward mode divides the tangent 2 c sh by (c^2)^2 (inf / inf = NaN); reverse mode
        # multiplies the cotangent -1 / (c^2)^2 (= 0) by 2 c, then by sinh (0, or 0 * inf)
        spps = ((-(2 * c * sh) / (c2 * c2)), (-(1 / (c2 * c2)) * (2 * c)) * sh)
        alts = [evaluate_plain(ref.embedding, ref.sigma, sp, case.m, False,
                               spp.astype(np.float64), ref.v)["hvp_x"] for spp in spps]  # fmt: skip
        # forward over reverse, op by op in the dtype: the JVP of g / c2 is dg / c2 +
        # ((-dc2) g) / c2**2 with dc2 = (v sinh(x) 2) cosh(x); where c2**2 overflows and
        # dc2 g does too, inf / inf = NaN (tanh:extreme-float64-m4n252-s591467, bit for bit)
        R = np.asarray(ref.embedding, dtype=np.float64)
        V = np.asarray(ref.v, dtype=np.float64).reshape(x.shape)
        g = (2 * np.asarray(ref.back, dtype=np.float64)).reshape(x.shape).astype(dt)
        w = (sp * V).reshape(R.shape[1], -1)
        dg = (2 * (R.T @ (R @ w))).reshape(x.shape).astype(dt)
        dc2 = ((V.astype(dt) * sh) * dt.type(2)) * c
        alts.append((dg / c2 + ((-dc2) * g) / (c2 * c2)).astype(np.float64))
        out = ms.e <= tol
        for alt in alts:
            m = measure(
                actual,
                alt,
                ref.scale["hvp_x"],
                ref.under["hvp_x"],
                di,
                expected_dtype(case, "hvp_x"),
            )
            if not m.mismatch:  # (a mismatch is a wrong shape or dtype: no candidate fits)
                out = out | (m.e <= tol)
    return out


def _nan_leaks_to_previous_row(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """grad_A is NaN in (some of) the two rows before each row of A that holds an inf or a NaN
    (a bfloat16 product A s whose vector loads span two rows and spread a non-finite value
    backwards), and agrees with the reference everywhere else; the quantities that take A^T of
    those rows (grad_x, hvp_x, the loss) may be NaN anywhere, and are right elsewhere.

    Whether a row leaks depends on where the entry lies relative to a 32-element load, so on
    the buffer's address too: the model allows the leak, it does not demand it.
    """
    if ref.embedding is None:
        return None
    R = ref.embedding
    m = case.m
    rows = ~np.isfinite(R).all(axis=1)
    rows = rows[:m] | rows[m:] if R.shape[0] == 2 * m and m else rows
    leak = np.zeros(m, dtype=bool)
    for back in (1, 2):
        leak[:-back] |= rows[back:]
    leak &= ~rows
    nan = _nan_parts(actual)
    if quantity == "grad_A":
        # the same loads spread a NaN the product forms (inf * 0) along its output row: NaN
        # where the reference is an infinity in a row that holds a NaN (logsigmoid:extreme-
        # bfloat16-m742n914k3-s176771: z phi^T with z = inf and one phi = 0)
        r = np.asarray(ref.values[quantity])
        with np.errstate(all="ignore"):
            rnan = _nan_parts(r)
            spread = rnan.any(axis=1, keepdims=True) & ~rnan & ~np.isfinite(r)
        if not leak.any() and not spread.any():
            return None
        return np.where(leak[:, None] | spread, nan | (ms.e <= tol), ms.e <= tol)
    if not leak.any():
        return None
    # grad_x, hvp_x and the loss take A^T of (or sum over) the leaked rows: a NaN there
    # reaches every element (every column of a batch: each leaks through the same rows)
    return nan | (ms.e <= tol)


def _exp_of_rounded_difference(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """grad_x equals 2 exp(fl(x - y)) Re(A^H A phi(x)) for softplus (y = fl(softplus(x))), or
    2 exp(fl(y - x)) ... for logsigmoid (y = fl(logsigmoid(x))): logaddexp's VJP, g exp(x - ans).
    The difference is rounded to the dtype, and exp turns its absolute rounding error, up to
    |x| u / 2, into a relative error of the derivative (x = -23.9: up to 12 u)."""

    name = getattr(ref.activation, "name", "")
    if name not in ("softplus", "logsigmoid") or ref.x is None:
        return None
    if quantity == "hvp_x":
        return _exp_of_rounded_difference_second(case, actual, ref, ms, tol, name)
    if quantity != "grad_x":
        return None
    di = info(case.dtype)
    dt = np.dtype(di.np_real)
    x = np.asarray(ref.x, dtype=np.float64).reshape(np.shape(ms.e))
    y = np.asarray(ref.sigma, dtype=np.float64).astype(dt)
    with np.errstate(all="ignore"):
        arg = (x.astype(dt) - y) if name == "softplus" else (y - x.astype(dt))
        model = 2 * np.exp(np.asarray(arg, dtype=np.float64)) * np.asarray(ref.back)
        # where the reference is not finite the infinities decide, not the rule's rounding
        want_ref = np.asarray(ref.values[quantity])
        model = np.where(np.isfinite(want_ref), model, want_ref)
    m = measure(
        actual, model, ref.scale[quantity], ref.under[quantity], di, expected_dtype(case, quantity)
    )
    if m.mismatch:
        return None
    gap = _err(model, ref.values[quantity], ref, quantity, di)
    return _explained(m.e <= tol, gap, ms, tol)


def _exp_of_rounded_difference_second(case, actual, ref, ms, tol, name):
    """hvp_x with phi' = a = exp(fl(x - y)) (softplus; log-sigmoid: exp(fl(y - x))) and its
    derivative phi'' = a (1 - a) (log-sigmoid: -a (1 - a)), both in the dtype: differentiating
    exp(x - ans) once more gives the factor 1 - a, which cancels where a rounds near 1.  Each
    element's y may be an ulp or two off the rounded one (library functions are not correctly
    rounded), so the result must lie within the spread that y 2 ulps either side gives,
    propagated through R^T R."""
    if ref.v is None or ref.embedding is None or ref.sigma is None:
        return None
    di = info(case.dtype)
    dt = np.dtype(di.np_real)
    shape2 = (case.n, case.k or 1)
    x = np.asarray(ref.x, dtype=np.float64).reshape(ref.sigma.shape).astype(dt)
    sign = 1.0 if name == "softplus" else -1.0
    with np.errstate(all="ignore"):
        # the library's y may be an ulp or two from the rounded one, and where y nears x (the
        # linear tail) that shifts x - y by far more than its own ulp: candidates of y
        pairs = []
        for yc in _rounded_candidates(ref, dt):
            arg = (x - yc) if name == "softplus" else (yc - x)
            a = np.exp(arg.astype(np.float64)).astype(dt)
            pairs.append((a.astype(np.float64), (sign * a * (1 - a)).astype(dt).astype(np.float64)))
    absR = np.abs(ref.embedding)
    W = np.asarray(ref.back_abs).reshape(shape2)
    V = ref.v.reshape(shape2)
    e = _within_spread(case, actual, ref, pairs, di, shape2, absR, W, V)
    if e is None:
        return None
    return (e <= tol) | (ms.e <= tol)


def _limit_at_infinite_x(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """hvp_x equals H v with phi''(x) back(x) taken as its limit 0 where x is infinite and
    phi''(x) = 0 (jax's logaddexp JVP replaces the infinity, jnp._replace_inf): the reference
    calls 0 * inf undefined there, the library returns the limit.  Elsewhere the reference."""

    if quantity != "hvp_x" or ref.x is None or ref.v is None or ref.sigma_second is None:
        return None
    shape2 = (case.n, case.k or 1)
    X = np.asarray(ref.x, dtype=np.float64).reshape(shape2)
    if not np.isinf(X).any() or ref.embedding is None:
        return None
    if not np.isfinite(ref.embedding).all() or np.isnan(X).any():
        return None  # NaN inputs make everything undefined; no limit to take
    R = ref.embedding
    S, SP, SPP = (
        np.asarray(a, dtype=np.float64).reshape(shape2)
        for a in (ref.sigma, ref.sigma_prime, ref.sigma_second)
    )
    V = ref.v.reshape(shape2)
    with np.errstate(all="ignore"):
        back = R.T @ (R @ S)
        limit = np.isinf(X) & (SPP == 0)
        term1 = np.where(limit, 0.0, 2 * SPP * back * V)
        alt = (term1 + 2 * SP * (R.T @ (R @ (SP * V)))).reshape(case.x_shape)
        # the reference's scale is not finite where it is undefined: the model's own terms
        absR = np.abs(R)
        scale = np.where(limit, 0.0, np.abs(term1)) + 2 * np.abs(SP) * (
            absR.T @ (absR @ np.abs(SP * V))
        )
        under = 1 + 2 * absR.T @ (absR @ np.abs(V))
    di = info(case.dtype)
    m = measure(
        actual,
        alt,
        scale.reshape(case.x_shape),
        under.reshape(case.x_shape),
        di,
        expected_dtype(case, quantity),
    )
    if m.mismatch:
        return None
    return (m.e <= tol) | (ms.e <= tol)


# a float64 quantity computed in float32: its error in float32's units is this many times
# smaller than in float64's (u = 2**-24 against 2**-53)
_F32_OVER_F64 = 2.0**-24 / 2.0**-53


def _computed_in_float32(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """A float64 (complex128) result whose every finite value is a float32 number and which is
    within the same tolerance of the reference counted in float32's unit roundoff: the
    computation ran in float32 and was cast back.  A float64 computation rounds to float32
    numbers by chance only where its values are few and simple, so the first test is the
    model's signature, the second its accuracy."""
    if case.dtype not in ("float64", "complex128"):
        return None
    a = np.asarray(actual)
    parts = np.stack([a.real, a.imag]) if np.iscomplexobj(a) else a[None]
    fin = parts[np.isfinite(parts)]
    if not fin.size or np.any(fin.astype(np.float32).astype(np.float64) != fin):
        return None
    if np.all(fin == 0):
        return None  # zeros are float32 numbers too: all_zero_gradient says more
    # past float32's range the model's values are its underflow (0 or below float32's smallest
    # normal) and its overflow (an infinity)
    r = np.asarray(ref.values[quantity])
    rparts = np.stack([r.real, r.imag]) if np.iscomplexobj(r) else r[None]
    f32 = np.finfo(np.float32)
    with np.errstate(invalid="ignore"):
        under = (np.abs(rparts) < f32.tiny) & (np.abs(parts) < f32.tiny)
        over = (np.abs(rparts) > f32.max) & np.isinf(parts)
    return (ms.e <= tol * _F32_OVER_F64) | np.all(under | over, axis=0)


def _exact_from(A, S, SP, z, quantity):
    """loss, grad_A or grad_x of ||A phi||^2 in float64 from the model's phi (S, columns of the
    batch), phi' (SP) and z = A phi: the model's one inexact step, and nothing else."""
    if quantity == "loss":
        return np.sum(z * z)
    if quantity == "grad_A":
        return 2 * z @ S.T
    return 2 * SP * (A.T @ z)


def _model_explains(case, quantity, actual, alt, ref, ms, tol) -> np.ndarray | None:
    """Where the result fails, the model must reproduce it and fail there too (a model within
    tolerance of the reference explains no failure); elsewhere, as _explained."""
    di = info(case.dtype)
    alt = np.asarray(alt).reshape(np.shape(ref.values[quantity]))
    want = expected_dtype(case, quantity)
    m = measure(actual, alt, ref.scale[quantity], ref.under[quantity], di, want)
    if m.mismatch:
        return None
    model_e = _err(alt, ref.values[quantity], ref, quantity, di)
    reproduced = (m.e <= tol) & ((ms.e <= tol) | (model_e > tol))
    return _explained(reproduced, model_e, ms, tol)


# XLA's CPU float64 tanh (xla/codegen/intrinsic/tanh.cc, EmitFastTanhF64) clamps its argument
# at 17.714196154005176 (the bound of Eigen's rational approximation evaluated without fma),
# but the rational is evaluated with contracted multiply-adds, and there it gives 1 - 7 * 2^-53;
# it returns +-1 only from |x| = 20.  jax 0.10: jnp.tanh(19.877130465494965) is
# 0.9999999999999992 where tanh is 1 - 1.1e-17 (7 ulps off, XLA's own budget is 4).
_XLA_TANH_CLAMP, _XLA_TANH_ONE = 17.714196154005176, 20.0
_XLA_TANH_PLATEAU = 1.0 - 7.0 * 2.0**-53


def _xla_tanh_plateau(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """loss and grad_A equal the closed form with tanh(x) = +-(1 - 7 * 2^-53) where
    17.714 <= |x| < 20 (XLA's float64 tanh there), the reference's tanh elsewhere; the result
    must fail where the model does."""
    from gradxval.judge.reference import evaluate_plain

    if (quantity not in ("loss", "grad_A") or getattr(ref.activation, "name", "") != "tanh"
            or ref.x is None or ref.embedding is None
            or info(case.dtype).np_real != np.float64):  # fmt: skip
        return None
    x = np.asarray(ref.x, dtype=np.float64).reshape(np.shape(ref.sigma))
    plateau = (np.abs(x) >= _XLA_TANH_CLAMP) & (np.abs(x) < _XLA_TANH_ONE)
    if not plateau.any():
        return None
    s = np.where(plateau, np.sign(x) * _XLA_TANH_PLATEAU, ref.sigma)
    di = info(case.dtype)
    with np.errstate(all="ignore"):
        alt = evaluate_plain(ref.embedding, s, ref.sigma_prime, case.m, di.is_complex)
    return _model_explains(case, quantity, actual, alt[quantity], ref, ms, tol)


def _products_accumulated_in_dtype(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """float16/bfloat16: z = A phi(x) summed one product at a time in the case's own dtype
    (every library accumulates half-precision products in float32), the rest of the quantity
    exact.  The model is evaluated from the rounded inputs and must reproduce every element."""
    di = info(case.dtype)
    if case.dtype not in ("float16", "bfloat16") or quantity not in ("loss", "grad_x", "grad_A"):
        return None
    if ref.embedding is None or ref.sigma is None or not ref.embedding.size:
        return None
    dt = di.np
    A = ref.embedding
    S = ref.sigma.reshape(case.n, case.k or 1)
    with np.errstate(all="ignore"):
        Ad, Sd = A.astype(dt), S.astype(dt)
        acc = np.zeros((A.shape[0], S.shape[1]), dtype=dt)
        for j in range(A.shape[1]):
            acc = (acc + (Ad[:, j : j + 1] * Sd[j]).astype(dt)).astype(dt)
        z = acc.astype(np.float64)
        alt = _exact_from(A, S, ref.sigma_prime.reshape(S.shape), z, quantity)
    return _model_explains(case, quantity, actual, alt, ref, ms, tol)


def _rewritten_sigmoid(t: np.ndarray) -> np.ndarray:
    """sigma(t) as 1 - 1/(1 + y), y = exp(t), every operation rounded to t's dtype: equal to
    y/(1 + y) in exact arithmetic, and cancelling to 0 where y is small (t < 0)."""
    one = np.ones((), dtype=t.dtype)
    return one - one / (one + np.exp(t))


def _rewrite_cancellation(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """The result equals the quantity with sigma(x) = y/(1 + y) rewritten as 1 - 1/(1 + y)
    (an algebraically equal form an optimizer or a hand may choose), evaluated in the case's
    dtype, for sigma(x) and sigma(-x); everything else exact.  The model is evaluated, not
    assumed, and must reproduce every element."""
    di = info(case.dtype)
    if case.problem != "logistic" or di.is_complex or quantity not in ("loss", "grad_x", "grad_A"):
        return None
    if ref.embedding is None or ref.x is None:
        return None
    xd = np.asarray(ref.x).astype(di.np)
    with np.errstate(all="ignore"):
        s = _rewritten_sigmoid(xd).astype(np.float64)
        sn = _rewritten_sigmoid(-xd).astype(np.float64)
        S = s.reshape(case.n, case.k or 1)
        A = ref.embedding
        alt = _exact_from(A, S, (s * sn).reshape(S.shape), A @ S, quantity)
    return _model_explains(case, quantity, actual, alt, ref, ms, tol)


def _all_zero_gradient(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """Every element of the gradient is exactly zero while the reference is not all zero: the
    autodiff graph was cut somewhere between the inputs and the loss."""
    a = np.asarray(actual)
    if quantity == "loss" or not a.size or np.any(a != 0):
        return None
    if not np.any(np.asarray(ref.values[quantity]) != 0):
        return None
    return np.ones(np.shape(ms.e), dtype=bool)


_FACTOR_ELEMENTS = 2  # elements well above underflow a constant factor must fit


def _constant_factor(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """The result is c times the reference, one real constant c != 1 for every element (a
    factor 2 dropped or doubled, a sign, a 1/n): c is the median ratio over the elements
    well above underflow, and c times the reference must be within tolerance everywhere."""
    a = np.asarray(actual)
    r = np.asarray(ref.values[quantity])
    if not a.size or a.shape != r.shape or not np.isfinite(a).all() or not np.isfinite(r).all():
        return None
    big = np.abs(r) > 1e3 * info(case.dtype).eta
    if big.sum() < _FACTOR_ELEMENTS:  # one number is c times another for some c: says nothing
        return None
    with np.errstate(all="ignore"):
        ratios = (a[big] / r[big]).ravel()
    ratios = ratios[np.isfinite(ratios)]
    if not ratios.size or np.iscomplexobj(ratios) and np.any(np.abs(ratios.imag) > 1e-3):
        return None
    c = float(np.median(ratios.real))
    if not np.isfinite(c) or abs(c - 1) < 1e-2 or c == 0:
        return None
    return _model_explains(case, quantity, actual, c * r, ref, ms, tol)


def _all_nan(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """Every element is NaN while the reference has finite values."""
    a = np.asarray(actual)
    if not a.size or not _nan_parts(a).all():
        return None
    if not np.isfinite(np.asarray(ref.values[quantity])).any():
        return None
    return np.ones(np.shape(ms.e), dtype=bool)


def _sigmoid_exp_overflow(case, quantity, actual, ref, ms, tol) -> np.ndarray | None:
    """Elements that equal the logistic problem's reference recomputed with sigma evaluated as
    1 / (1 + exp(-x)) in the case's dtype: 0 where exp(-x) overflows that dtype, and so sigma'
    and sigma'' there; every other sigma kept, subnormal ones included (jax's float16
    logistic: sigma(-10.5) = 2.75e-5 is kept, sigma(-11.2) is 0).  A flush of subnormals
    predicts 0 at -10.5 too: this model is the narrower one."""
    from gradxval.judge.reference import evaluate_plain

    if case.problem != "logistic" or ref.embedding is None or ref.sigma is None or ref.x is None:
        return None
    di = info(case.dtype)
    x = np.asarray(ref.x, dtype=np.float64).reshape(np.shape(ref.sigma))
    with np.errstate(all="ignore"):
        # exp in float32, rounded to the dtype, as XLA computes a float16 exp
        gone = np.isinf(np.exp(-x.astype(np.float32)).astype(di.np_real))
    if not gone.any():
        return None
    zero = np.zeros_like(ref.sigma)
    s = np.where(gone, zero, ref.sigma)
    sp = np.where(gone, zero, ref.sigma_prime)
    spp = None if ref.sigma_second is None else np.where(gone, zero, ref.sigma_second)
    with np.errstate(all="ignore"):
        alt = evaluate_plain(ref.embedding, s, sp, case.m, di.is_complex, spp, ref.v)
    if quantity not in alt:
        return None
    want_ref = np.asarray(ref.values[quantity])
    alt = np.where(_nan_parts(want_ref), want_ref, alt[quantity])  # undefined stays undefined
    m = measure(actual, alt, ref.scale[quantity], ref.under[quantity], di,
                expected_dtype(case, quantity))  # fmt: skip
    return None if m.mismatch else m.e <= tol


def _promoted_dtype(case, quantity, actual, ref, tol) -> bool:
    """The result came back in a wider float dtype (float64 for a float32 case), and rounded
    to the case's dtype it agrees with the reference at every element."""

    di = info(case.dtype)
    want = expected_dtype(case, quantity)
    actual = np.asarray(actual)
    if actual.dtype.kind not in "fc" or actual.dtype.itemsize <= info(want).np.itemsize:
        return False
    with np.errstate(all="ignore"):
        rounded = actual.astype(info(want).np)
    m = measure(rounded, ref.values[quantity], ref.scale[quantity], ref.under[quantity], di, want)
    m = outcome_sets(m, rounded, ref, quantity, di, want, tol)  # as judge applies them
    return m.mismatch is None and m.error_u <= tol


# (case, quantity, actual, ref, ms, tol) -> bool mask over ms.e (explained elements) or None
EVIDENCE: dict[str, Callable] = {
    "all_zero_gradient": _all_zero_gradient,
    "all_nan": _all_nan,
    "nan_where_x_is_infinite": _nan_where_x_is_infinite,
    "nan_from_nonfinite_input": _nan_from_nonfinite_input,
    "sequential_sum_in_dtype": _sequential_sum_in_dtype,
    "derivative_cancellation": _derivative_cancellation,
    "subnormal_flush": _subnormal_flush,
    "sigmoid_exp_overflow": _sigmoid_exp_overflow,
    "linear_above_threshold": _linear_above_threshold,
    "tanh_jvp_inf_minus_inf": _tanh_jvp_inf_minus_inf,
    "cosh_squared_overflow": _cosh_squared_overflow,
    "nan_leaks_to_previous_row": _nan_leaks_to_previous_row,
    "exp_of_rounded_difference": _exp_of_rounded_difference,
    "limit_at_infinite_x": _limit_at_infinite_x,
    "computed_in_float32": _computed_in_float32,
    "rewrite_cancellation": _rewrite_cancellation,
    "products_accumulated_in_dtype": _products_accumulated_in_dtype,
    "constant_factor": _constant_factor,
    "xla_tanh_plateau": _xla_tanh_plateau,
}
# evidence for results of the wrong dtype: (case, quantity, actual, ref, tol) -> bool
DTYPE_EVIDENCE: dict[str, Callable] = {"promoted_dtype": _promoted_dtype}

# what each evidence means, as a diagnosis shown on any backend's disagreement
DIAGNOSES = {
    "all_zero_gradient": "every element is exactly 0 where the reference is not (a cut autodiff "
    "graph, a stub, or values lost to underflow or cancellation)",
    "all_nan": "every element is NaN",
    "nan_where_x_is_infinite": "NaN only where x is infinite, right elsewhere",
    "nan_from_nonfinite_input": "NaN from a non-finite input (inf or NaN), right elsewhere",
    "sequential_sum_in_dtype": "the loss equals a sum accumulated in the case's own dtype",
    "derivative_cancellation": "equals the cancelling derivative rule from y = fl(phi(x)), "
    "such as sigma(1 - sigma) (second order: its derivative sigma(1 - sigma)(1 - 2 sigma))",
    "subnormal_flush": "equals the reference with subnormal values flushed to zero",
    "sigmoid_exp_overflow": "equals the reference with sigma = 1 / (1 + exp(-x)) in the dtype: "
    "0 where exp(-x) overflows it, subnormal sigma kept",
    "linear_above_threshold": "equals the reference with softplus taken as x above x = 20 "
    "(torch's threshold)",
    "tanh_jvp_inf_minus_inf": "NaN where an infinite cotangent meets tanh(x) < 0 in "
    "(g + g tanh)(1 - tanh), right elsewhere",
    "cosh_squared_overflow": "equals g / cosh(x)^2, which is 0 where cosh(x)^2 overflows",
    "nan_leaks_to_previous_row": "NaN in the row before each non-finite row of A, right elsewhere",
    "exp_of_rounded_difference": "equals the derivative taken as exp(x - softplus(x)) with the "
    "difference rounded (logaddexp's VJP: |x| u / 2 relative)",
    "limit_at_infinite_x": "finite where x is infinite: phi''(x) times an infinite back taken "
    "as its limit 0 instead of 0 * inf",
    "promoted_dtype": "a wider dtype than the case's, right once rounded (a promoting scalar?)",
    "xla_tanh_plateau": "equals the closed form with tanh(x) = 1 - 7 * 2^-53 for 17.714 <= |x| < "
    "20 (XLA's float64 tanh)",
    "computed_in_float32": "float32 numbers within float32's tolerance of the reference: the "
    "float64 computation ran in float32 and was cast back",
    "constant_factor": "equals a constant c != 1 times the reference at every element (a factor "
    "dropped or doubled, a sign): the message's actual/reference at the worst element gives c",
    "products_accumulated_in_dtype": "equals A phi(x) summed one product at a time in the "
    "case's own half precision (libraries accumulate them in float32)",
    "rewrite_cancellation": "equals the closed form with sigma = y/(1 + y), y = exp(x), "
    "rewritten as 1 - 1/(1 + y): algebraically equal, but it cancels where x < 0",
}


def diagnose(case, quantity, actual, ref, ms, tol) -> list[str]:
    """The evidence names that explain every element of a disagreeing result (any backend)."""
    if ms.mismatch:
        if ms.mismatch.startswith("dtype"):
            return [n for n, f in DTYPE_EVIDENCE.items() if f(case, quantity, actual, ref, tol)]
        return []
    out = []
    for name, fn in EVIDENCE.items():
        with np.errstate(all="ignore"):
            explained = fn(case, quantity, actual, ref, ms, tol)
        if explained is not None and bool(np.all(explained)):
            out.append(name)
    return out
