"""The accurate answer a case is judged against; no backend takes part in computing it.

Inputs are the case's rounded values, upcast exactly to float64/complex128.
- float16, bfloat16, float32 cases: plain float64 evaluation.  Its error is below
  n * 2**-53 times the condition scale, under 1e-6 of the tightest tolerance.
- float64, complex128 cases: sigma and sigma' come from mpmath (correctly rounded double-double)
  and every sum runs in double-double arithmetic (Dot2 of Ogita, Rump & Oishi 2005, built on
  the error-free TwoSum and Dekker's TwoProduct), which is as accurate as evaluating in 106
  bits and rounding.  np.longdouble is not used: it is float64 on some platforms.
Complex A enters through its real embedding R = [Re A; Im A], since Re(A^H A s) = R^T R s
for real s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mpmath
import numpy as np
from gradxval.dtypes import info
from gradxval.model.cases import Case, Inputs
from gradxval.model.tolerance import tolerance_u
from gradxval.numerics import aligned_slices, dd_matmul, dd_mul, dd_outer, two_prod, two_sum

__all__ = ["Reference", "compute_reference", "evaluate_plain"]


@dataclass
class Reference:
    """Reference values, rounded to float64/complex128, and what the tolerance needs."""

    values: dict[str, np.ndarray]  # loss (0-d), grad_x, grad_A
    scale: dict[str, np.ndarray]  # condition scale per element: the u-term of the error bound
    under: dict[str, np.ndarray]  # weight of the underflow term eta per element
    sigma: np.ndarray  # sigma(x), float64, shape of x
    sigma_prime: np.ndarray  # sigma(x) sigma(-x), float64
    back: np.ndarray  # Re(A^H A sigma(x)), float64, shape of x
    back_abs: np.ndarray  # |A|^T |A| |sigma(x)|, float64, shape of x
    embedding: np.ndarray | None = None  # [Re A; Im A] (or A), float64, for evidence checks
    x: np.ndarray | None = None  # the rounded x, float64 (for the numeric witness)
    activation: object = None  # the problem's Activation (phi = sigma for the seed problem)
    confidence: str = "high precision"  # or how a lower-confidence fallback was confirmed
    precise: bool = field(default=False)
    v: np.ndarray | None = None  # the hvp direction, float64, shape of x (second order only)
    sigma_second: np.ndarray | None = None  # phi''(x), float64 (second order only)
    missing: dict = field(default_factory=dict)  # quantity -> why it has no reference here
    # quantity -> (mask, values): where mask holds, other values an IEEE-correct evaluation
    # may give (complex infinities: docs/tolerance.md, "Outcome sets"), judged as the reference
    honest: dict = field(default_factory=dict)
    # quantity -> where an intermediate that evaluations form overflows the dtype (a subset of
    # honest's mask): a non-finite result there is the overflow outcome
    overflowing: dict = field(default_factory=dict)
    # quantity -> where NaN is the chain rule's honest 0 * NaN for a derivative that is 0 by
    # mathematics (no rows of A): accepted, and no overflow
    conventions: dict = field(default_factory=dict)
    # what judging computes from the reference alone, kept for the next result (compare.py)
    memo: dict = field(default_factory=dict, repr=False, compare=False)


# half-precision products are exact in the float32 accumulator: z's error is the sum of the
# rounding errors of its terms A_ij phi_j (phi to the dtype, ~5u each), which are independent of
# the random A, so its spread is sqrt(sum (A_ij phi_j)^2), not sum |A_ij phi_j|.  3 times the
# worst per-term rounding is 5.2 standard deviations of uniform rounding errors.
_HALF_LAMBDA = 3 * 5 / 4


def _half_z_bound(dtype, absR, s, z, za):
    """The weight of z_i's rounding error: za_i = sum |A_ij| |phi_j| (worst case), or for
    float16 and bfloat16 min(za_i, |z_i| + lambda sqrt(sum (A_ij phi_j)^2)) (issue 20)."""
    if dtype not in ("float16", "bfloat16"):
        return za
    rms = np.sqrt(np.square(absR) @ np.square(s))
    return np.minimum(za, np.abs(z) + _HALF_LAMBDA * rms)


def _mp_pairs(x: np.ndarray, activation, second: bool = False):
    """phi(x) and phi'(x) (and phi''(x)) as double-double pairs: from the activation's vectorised
    double-double form where it has one (to about 2**-97 relative), else from mpmath at 120
    bits, element by element (and for non-finite or far-out x)."""
    flat = x.ravel()
    out = np.zeros((6 if second else 4, flat.size))
    todo = np.ones(flat.size, dtype=bool)
    if activation.dd is not None:
        with np.errstate(all="ignore"):
            mag = np.abs(flat)  # tiny x: its scaled Taylor terms would be subnormal
            fast = (
                np.isfinite(flat) & (mag <= activation.dd_range) & ((mag >= 2.0**-900) | (mag == 0))
            )
        if fast.any():
            pairs = activation.dd(flat[fast], second)
            for j, (hi, lo) in enumerate(pairs):
                out[2 * j, fast], out[2 * j + 1, fast] = hi, lo
            todo = ~fast
    p_inf, dp_inf, p_ninf, dp_ninf = activation.at_inf
    with mpmath.workprec(120):
        for i in np.flatnonzero(todo).tolist():
            xi = float(flat[i])
            if math.isnan(xi):
                out[:, i] = np.nan
                continue
            if math.isinf(xi):  # phi'' is 0 at +-inf for every built-in phi
                at = (p_inf, 0.0, dp_inf, 0.0) if xi > 0 else (p_ninf, 0.0, dp_ninf, 0.0)
                out[:, i] = at + (0.0, 0.0) if second else at
                continue
            t = mpmath.mpf(xi)
            values = activation.mp(t)
            if second:
                values = (*values, activation.mp2(t))
            for j, v in enumerate(values):
                h = float(v)
                out[2 * j, i], out[2 * j + 1, i] = h, float(v - h) if math.isfinite(h) else 0.0
    return [a.reshape(x.shape) for a in out]


def compute_reference(
    case: Case, inputs: Inputs, activation, second_order: bool = False
) -> Reference:
    """Compute the reference for a case of f = ||A phi(x)||^2 from its rounded inputs.

    The caller names phi (``Problem.reference`` does): this module looks no problem up.
    ``second_order`` adds hvp_x, the Hessian with respect to x applied to the case's v:
    H v = 2 phi'' Re(A^H A phi) v + 2 phi' Re(A^H A (phi' v)).
    """
    di = info(case.dtype)
    precise = case.dtype in ("float64", "complex128")
    A = np.asarray(inputs.A, dtype=np.complex128 if di.is_complex else np.float64)
    x = np.asarray(inputs.x, dtype=np.float64)
    n = case.n
    k = 1 if case.k is None else case.k
    X = x.reshape(n, k)
    R = np.vstack([A.real, A.imag]) if di.is_complex else A  # real embedding, (M, n)
    second = second_order and inputs.v is not None and activation.second is not None
    V = np.asarray(inputs.v, dtype=np.float64).reshape(n, k) if second else None
    honest: dict = {}
    with np.errstate(all="ignore"):
        s, sp = activation.plain(X)
        spp = activation.second(X, np) if second else None
        z = R @ s
        back = R.T @ z
        plain = _plain(A, s, sp, di.is_complex, spp, V)
        if not (np.isfinite(A).all() and np.isfinite(X).all()):
            # NaN and inf arise as the case's dtype makes them: phi(x) that underflows to 0 in
            # the dtype (exp(-709) in float16) times an infinity is NaN there, not inf
            rs, rsp = (np.asarray(v).astype(di.np_real).astype(np.float64) for v in (s, sp))
            rspp = None if spp is None else spp.astype(di.np_real).astype(np.float64)
            rounded = _plain(A, rs, rsp, di.is_complex, rspp, V)
            unrounded = plain
            plain = {q: np.where(np.isfinite(rounded[q]), plain[q], rounded[q]) for q in plain}
            if di.is_complex:
                honest = _complex_outcomes(R, rs, rsp, case.m, rounded, plain, rspp, V)
            else:
                # libraries keep phi'(x) in float32 inside a float16 kernel (opmath), where it
                # does not underflow: the exact infinity is as honest as the dtype's 0 * inf
                # (softplus:extreme-float16-m1n13-s899847, torch: -inf where the dtype gives NaN)
                for q in plain:
                    mask = np.isnan(rounded[q]) & np.isinf(unrounded[q])
                    if mask.any():
                        _add_outcomes(honest, q, mask, plain[q], (unrounded[q],))
        if precise:
            vals = _precise(R, X, activation, V)
            vals = {q: _where_finite(plain[q], vals[q]) for q in vals}
        else:
            vals = plain
            if np.isfinite(plain["loss"]):  # fsum: a correctly rounded sum of the squares
                vals["loss"] = np.float64(math.fsum((z * z).ravel().tolist()))
        absR = np.abs(R)
        za = absR @ np.abs(s)
        W = absR.T @ za
        # the loss's first-order bound is sum 2 |z_i| dz_i with dz_i <= (T/2) u za_i, plus the
        # second-order dz_i^2, which decides where z_i cancels to ~0: za_i (|z_i| + T u za_i / 4)
        # in the tolerance's units (C = 8 counts the 2 |z| factor).  sum za_i^2, used before,
        # is the square of the cancellation's condition number: a float16 1 x 983 loss 66 %
        # off was accepted (issue 20)
        t_loss = tolerance_u("loss", case.m, n, case.k, case.dtype)
        zb = _half_z_bound(case.dtype, absR, s, z, za)
        scale = {
            "loss": np.float64(np.sum(zb * (np.abs(z) + 0.25 * t_loss * di.u * zb))),
            "grad_x": 2 * np.abs(sp) * W,
            "grad_A": 2 * zb @ np.abs(s).T,
        }
        under = {
            # each square z_i^2 may underflow in the dtype, losing up to eta / 2: M k of them
            # (saturated-float16-m409n2-s212268: 818 squares of ~1e-9 sum to 1.1e-6 exactly,
            # to 0 in float16, as numpy and torch give it)
            "loss": np.float64(max(1, z.size)),
            "grad_x": 1 + 2 * W,
            # constant along rows: a read-only broadcast view, not an (M, n) array
            "grad_A": np.broadcast_to(1 + 2 * za.sum(axis=1, keepdims=True), (R.shape[0], n)),
        }
        if second:
            # the first-order bound of H v's rounding errors, term by term (tolerance.py)
            Wv = absR.T @ (absR @ np.abs(sp * V))
            scale["hvp_x"] = 2 * np.abs(spp) * W * np.abs(V) + 2 * np.abs(sp) * Wv
            under["hvp_x"] = 1 + 2 * W * np.abs(V) + 2 * absR.T @ (absR @ np.abs(V))
    m = case.m
    if di.is_complex:
        vals["grad_A"] = _combine(vals["grad_A"][:m], vals["grad_A"][m:])
        scale["grad_A"] = scale["grad_A"][:m] + scale["grad_A"][m:]
        under["grad_A"] = under["grad_A"][:m] + under["grad_A"][m:]
    shape = case.x_shape
    for q in ("grad_x", "hvp_x") if second else ("grad_x",):
        vals[q], scale[q], under[q] = (a.reshape(shape) for a in (vals[q], scale[q], under[q]))
        if q in honest:
            mask, alts = honest[q]
            honest[q] = (mask.reshape(shape), [a.reshape(shape) for a in alts])
    conventions: dict = {}
    if case.m == 0:
        # no rows: the loss is 0 whatever x is, and so is its derivative; the chain rule's
        # phi'(x) * 0 is NaN where x is NaN or infinite, an honest IEEE outcome, not the truth
        # (special-float64-m0n994-s162872: forward mode gives 0, reverse mode NaN)
        for q in ("grad_x", "hvp_x") if second else ("grad_x",):
            bad = ~np.isfinite(np.asarray(vals[q]))
            if bad.any():
                zero = np.zeros_like(vals[q])
                _add_outcomes(honest, q, bad, zero, (np.nan,))
                conventions[q] = bad
                vals[q] = np.where(bad, zero, vals[q])
                with np.errstate(all="ignore"):
                    scale[q] = np.where(bad, 0.0, scale[q])
                    under[q] = np.where(bad, 1.0, under[q])
    overflowing = _intermediate_overflow(honest, vals, z, back, di.max, second,
                                         case.m if di.is_complex else 0, s)  # fmt: skip
    return Reference(
        values=vals,
        scale=scale,
        under=under,
        sigma=s.reshape(shape),
        sigma_prime=sp.reshape(shape),
        back=back.reshape(shape),
        back_abs=W.reshape(shape),
        embedding=R,
        x=x,
        activation=activation,
        precise=precise,
        v=V.reshape(shape) if second else None,
        sigma_second=spp.reshape(shape) if second else None,
        honest=honest,
        overflowing=overflowing,
        conventions=conventions,
    )


def _intermediate_overflow(honest, vals, z, back, dmax, second, m_complex, s=None) -> dict:
    """Where an intermediate that evaluations form in the case's dtype overflows it, ±inf and
    NaN are honest outcomes too (docs/tolerance.md, "Outcome sets"): the cotangent 2 z,
    z = A phi(x), for its row of grad_A and its column of grad_x; 2 Re(A^H z), the cotangent of
    phi(x), for its column of grad_x; and for hvp_x, whose routes double that once more (the
    derivative of 2 z), 4 Re(A^H z).  Seen in float16 cases whose A^H z nears 2 * 10^4: torch and
    jax give NaN where the closed forms, which form z and A^H z alone, stay finite."""
    overflowing: dict = {}
    with np.errstate(all="ignore"):
        # finite in exact arithmetic and too large for the dtype: an infinite input makes them
        # infinite by mathematics, and then the reference's own outcome stands
        zrows = np.isfinite(z) & (2 * np.abs(z) > dmax)  # (M, k) in the real embedding
        big = np.where(np.isfinite(back), np.abs(back), 0.0)
        for q, factor in (("grad_x", 2), ("hvp_x", 4)) if second else (("grad_x", 2),):
            cols = zrows.any(axis=0) | (factor * big > dmax).any(axis=0)  # (k,)
            if cols.any():
                ref = vals[q]
                mask = np.broadcast_to(cols, (back.shape[0], cols.size)).reshape(ref.shape)
                _add_outcomes(honest, q, mask, ref, _NON_FINITE)
                overflowing[q] = mask
    rows = zrows.any(axis=1)
    if m_complex:
        rows = rows[:m_complex] | rows[m_complex:]
    mask = np.broadcast_to(rows[:, None], vals["grad_A"].shape)
    if s is not None and z.shape[1] > 1:
        # grad_A sums one outer product 2 z_k phi_k^T per batch column; a method that forms
        # them apart (vmap over the columns, then a sum in the dtype) rounds each to the dtype:
        # one finite but too large for it is +-inf there, and inf - inf = NaN where another
        # column's is infinite by mathematics (logsigmoid:extreme-float16-m1n5k2-s5: -5.0e5
        # and +inf, jax and torch vmap give NaN where the sum is +inf)
        with np.errstate(all="ignore"):
            za, sa = (
                np.abs(np.where(np.isfinite(z), z, 0.0)),
                np.abs(np.where(np.isfinite(s), s, 0.0)),
            )
            if (2 * za.max(initial=0.0) * sa.max(initial=0.0)) > dmax:
                part = np.zeros((z.shape[0], s.shape[0]), dtype=bool)
                for c in range(z.shape[1]):
                    part |= 2 * np.outer(za[:, c], sa[:, c]) > dmax
                if m_complex:
                    part = part[:m_complex] | part[m_complex:]
                mask = mask | part
    if mask.any():
        ref = vals["grad_A"]
        _add_outcomes(honest, "grad_A", mask, ref, _NON_FINITE)
        overflowing["grad_A"] = mask
    return overflowing


_NON_FINITE = (np.nan, np.inf, -np.inf)


def _add_outcomes(honest, q, mask, ref, values) -> None:
    """Accept each of ``values`` (scalars, or arrays of ref's shape) where ``mask`` holds,
    besides what ``honest`` has for q; elsewhere the alternatives are ref itself."""
    if np.iscomplexobj(ref):  # a scalar stands for both parts
        values = [complex(v, v) if np.isscalar(v) else v for v in values]
    alts = [np.where(mask, v, ref) for v in values]
    if q in honest:
        old_mask, old_alts = honest[q]
        honest[q] = (old_mask | mask, [*old_alts, *alts])
    else:
        honest[q] = (np.asarray(mask), alts)


def _complex_outcomes(R, s, sp, m, naive, values, spp=None, V=None) -> dict:
    """The other outcomes of a complex case with infinities, per quantity.

    The reference's own non-finite pattern is the naive complex product's, (a + bi)(c + di) =
    (ac - bd) + (ad + bc)i, where inf * 0 makes NaN.  Two other evaluation orders are as
    honest: the real embedding, |z|^2 = Re(z)^2 + Im(z)^2 (hypot-like, +inf where the naive
    product gives NaN); and the BLAS complex kernels, which return nan + nan j for a product
    with an infinite operand (OpenBLAS under numpy and MKL under torch alike: [[0.5-0.75j]] @
    [-inf+0j] is nan+nanj, while the elementwise product is -inf+inf j).  So where any of the
    orders gives a non-finite value, its value and NaN are accepted; finite elements keep the
    one reference value.
    """
    embedded = evaluate_plain(R, s, sp, m, True, spp, V)
    out: dict = {}
    for q in values:
        alt = np.asarray(embedded[q])
        if q == "grad_A":
            ref_ = _combine(naive[q][:m], naive[q][m:])
        else:
            ref_ = np.asarray(naive[q])
        alt = alt.reshape(np.shape(ref_)) if np.size(alt) == np.size(ref_) else None
        if alt is None:
            continue
        bad = ~np.isfinite(ref_) | ~np.isfinite(alt)
        if bad.any():
            _add_outcomes(out, q, bad, ref_, (alt, np.nan))
    return out


def _where_finite(plain: np.ndarray, precise: np.ndarray) -> np.ndarray:
    """The precise values, and the plain ones where those are not finite (NaN, inf)."""
    if np.isfinite(np.sum(plain)):  # one pass, no temporary: every element finite
        return precise
    return np.where(np.isfinite(plain), precise, plain)


def evaluate_plain(
    R: np.ndarray, s: np.ndarray, sp: np.ndarray, m: int, is_complex: bool, spp=None, v=None
):
    """float64 loss and gradients from given phi and phi' values (and hvp_x from phi'' and the
    direction v), for evidence checks."""
    shape = s.shape
    S = s.reshape(shape[0], shape[1] if s.ndim == 2 else 1)
    SP = sp.reshape(S.shape)
    with np.errstate(all="ignore"):
        z = R @ S
        back = R.T @ z
        gA = 2 * z @ S.T
        out = {"loss": np.float64(np.sum(z * z)), "grad_x": (2 * SP * back).reshape(shape)}
        if spp is not None and v is not None:
            V = v.reshape(S.shape)
            hv = 2 * spp.reshape(S.shape) * back * V + 2 * SP * (R.T @ (R @ (SP * V)))
            out["hvp_x"] = hv.reshape(shape)
    if is_complex:
        gA = _combine(gA[:m], gA[m:])
    out["grad_A"] = gA
    return out


def _combine(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    # not re + 1j * im: 1j * inf is nan + inf j
    out = re.astype(np.complex128)
    out.imag = im
    return out


def _plain(A: np.ndarray, s, sp, is_complex: bool, spp=None, V=None) -> dict:
    """float64/complex128 evaluation in the case's own arithmetic (with spp = phi'' and V:
    hvp_x too).

    Its NaN/inf pattern is the IEEE one every backend produces: complex (inf + 0j) * s gives
    inf + nan j, which the real embedding would not.
    """
    sc = s.astype(A.dtype)
    z = A @ sc
    back = np.real(A.conj().T @ z)
    gA = 2 * z @ sc.T
    if is_complex:
        gA = np.vstack([gA.real, gA.imag])
    out = {
        "loss": np.float64(np.sum(np.real(z * z.conj()))),
        "grad_x": 2 * sp * back,
        "grad_A": gA,
    }
    if spp is not None:
        back2 = np.real(A.conj().T @ (A @ (sp * V).astype(A.dtype)))
        out["hvp_x"] = 2 * spp * back * V + 2 * sp * back2
    return out


def _precise(R: np.ndarray, X: np.ndarray, activation, V=None) -> dict[str, np.ndarray]:
    pairs = _mp_pairs(X, activation, second=V is not None)
    s_hi, s_lo, sp_hi, sp_lo = pairs[:4]
    # R's exact slices serve every product with R and R^T (None: Dot2 column by column)
    sl = aligned_slices(R)
    slT = None if sl is None else ([a.T for a in sl[0]], *sl[1:])
    z_hi, z_lo = dd_matmul(R, s_hi, s_lo, sl)
    b_hi, b_lo = dd_matmul(R.T, z_hi, z_lo, slT)
    p, e = two_prod(sp_hi, b_hi)
    grad_x = 2 * (p + (e + sp_hi * b_lo + sp_lo * b_hi))
    sq, sq_e = two_prod(z_hi, z_hi)
    loss = math.fsum(np.concatenate([sq.ravel(), sq_e.ravel(), (2 * z_hi * z_lo).ravel()]).tolist())
    if s_hi.shape[1] == 1:  # an outer product: z s^T by exact products, no sum
        g_hi = dd_outer(z_hi, z_lo, s_hi.T, s_lo.T, scale=2.0)
    else:
        g_hi, g_lo = dd_matmul(z_hi, s_hi.T.copy(), s_lo.T.copy())
        g_lo += z_lo @ s_hi.T  # below 2**-53 relative: float64 is exact enough
        g_hi += g_lo
        g_hi *= 2
    out = {"loss": np.float64(loss), "grad_x": grad_x, "grad_A": g_hi}
    if V is not None:  # H v in double-double: v is exact in float64
        spp_hi, spp_lo = pairs[4:]
        w_hi, w_lo = dd_mul(sp_hi, sp_lo, V, 0.0)
        zw_hi, zw_lo = dd_matmul(R, w_hi, w_lo, sl)
        c_hi, c_lo = dd_matmul(R.T, zw_hi, zw_lo, slT)
        t1 = dd_mul(*dd_mul(spp_hi, spp_lo, b_hi, b_lo), V, 0.0)
        t2 = dd_mul(sp_hi, sp_lo, c_hi, c_lo)
        h, e = two_sum(t1[0], t2[0])
        out["hvp_x"] = 2 * (h + (e + t1[1] + t2[1]))
    return out
