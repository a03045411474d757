"""Non-finite outcome sets and the library faults found outside the default run (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest
from gradxval.dtypes import info
from gradxval.judge.compare import judge
from gradxval.judge.known import load_registry
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import Case


def _judge(case_id, backend, method, quantity, actual, order=False):
    case = Case.from_id(case_id)
    ref = reference_for(case, case.inputs(), order) if order else reference_for(case, case.inputs())
    return judge(case, backend, method, quantity, np.asarray(actual), ref, load_registry())


def _ref(case_id):
    case = Case.from_id(case_id)
    inputs = case.inputs()
    return case, inputs, reference_for(case, inputs)


@pytest.mark.parametrize(
    "case_id",
    ["logsigmoid:extreme-complex64-m1n1-s117901", "logsigmoid:extreme-complex128-m37n5k3-s813616"],
)
def test_every_honest_complex_order_agrees_and_a_finite_answer_does_not(case_id):
    case, inputs, ref = _ref(case_id)
    assert not np.isfinite(ref.values["loss"])
    A = inputs.A.astype(np.complex128)
    phi = ref.activation.plain(np.asarray(inputs.x, np.float64).reshape(case.n, -1))[0]
    phi = phi.astype(info(case.dtype).np_real).astype(np.float64)  # phi rounded to the dtype
    with np.errstate(all="ignore"):
        z = A @ phi.astype(np.complex128)
        naive = np.sum(np.real(z * z.conj()))
        by_hypot = np.sum(np.hypot(z.real, z.imag) ** 2)  # |z| computed without inf * 0
    rdt = "float32" if case.dtype == "complex64" else "float64"
    for value in (naive, by_hypot, np.nan, np.inf):  # np.nan: a BLAS kernel's nan+nanj
        v = _judge(case_id, "mutants:Honest", "closed_form", "loss", np.array(value, rdt))
        assert v.verdict == "agree", (value, v.message)
    for value in (1.0, -np.inf):
        v = _judge(case_id, "mutants:Honest", "closed_form", "loss", np.array(value, rdt))
        assert v.verdict == "disagree", value


def test_blas_complex_products_with_an_infinity_are_nan():
    # the fact the outcome sets rest on: OpenBLAS (numpy) gives nan+nanj, the naive product inf
    A = np.array([[0.5 - 0.75j, 1 + 2j], [0.3 + 0.1j, -1 + 0.5j]])
    s = np.array([-np.inf, 1.0], dtype=np.complex128)
    with np.errstate(all="ignore"):
        blas = A @ s
        naive = (A * s).sum(axis=1)
    assert np.isnan(blas.real).all() and np.isinf(naive.real).all()


def test_jax_tanh_jvp_nan_is_known_in_jax_only():
    cid = "tanh:special-float64-m13n11-s634591"  # A holds an inf
    case, inputs, ref = _ref(cid)
    g = 2 * ref.back
    y = ref.sigma
    with np.errstate(all="ignore"):
        model = (g + g * y) * (1 - y)
    assert np.isnan(model).any() and np.isinf(ref.values["grad_x"]).all()
    v = _judge(cid, "jax", "autodiff", "grad_x", model)
    assert v.verdict == "known" and v.classification == "jax-tanh-jvp-nan-for-infinite-cotangent"
    assert _judge(cid, "torch", "autodiff", "grad_x", model).verdict == "disagree"
    assert _judge(cid, "jax", "closed_form", "grad_x", model).verdict == "disagree"
    # a NaN where tanh(x) > 0 is not what the rule gives
    wrong = np.where(y > 0, np.nan, ref.values["grad_x"])
    assert _judge(cid, "jax", "autodiff", "grad_x", wrong).verdict == "disagree"


def _cosh_squared_model(ref):
    """autograd's tanh rule g / cosh(x)**2 where it is 0 (cosh^2 overflows), the reference
    elsewhere."""
    with np.errstate(all="ignore"):
        model = 2 * ref.back / np.cosh(ref.x) ** 2
    return np.where(np.isfinite(ref.values["grad_x"]) & (model != 0), ref.values["grad_x"], model)


def test_autograd_tanh_cosh_overflow_is_known_in_autograd_only():
    cid = "tanh:extreme-complex128-m1000n257-s883039"
    case, inputs, ref = _ref(cid)
    model = _cosh_squared_model(ref)
    v = _judge(cid, "autograd", "autodiff", "grad_x", model)
    assert v.verdict == "known" and v.classification == "autograd-tanh-vjp-cosh-squared-overflows"
    assert _judge(cid, "torch", "autodiff", "grad_x", model).verdict == "disagree"
    # zero where cosh^2 does not overflow is a different fault
    wrong = np.array(ref.values["grad_x"], copy=True)
    wrong[np.flatnonzero(np.abs(ref.x) < 5)[:1]] = 0.0
    assert _judge(cid, "autograd", "autodiff", "grad_x", wrong).verdict == "disagree"


def test_torch_bfloat16_nan_leak_is_known_only_before_the_non_finite_row():
    cid = "special-bfloat16-m1000n257k3-s83"  # A[642, 9] is NaN
    case, inputs, ref = _ref(cid)
    r = int(np.argwhere(~np.isfinite(inputs.A.astype(np.float32)))[0][0])
    want = np.asarray(ref.values["grad_A"])
    leaked = np.array(want, copy=True)
    leaked[r - 1] = np.nan
    bf16 = info("bfloat16").np
    v = _judge(cid, "torch", "closed_form", "grad_A", leaked.astype(bf16))
    assert v.verdict == "known"
    assert v.classification == "torch-bfloat16-matmul-nan-leaks-to-previous-row"
    after = np.array(want, copy=True)
    after[r + 1] = np.nan
    assert _judge(cid, "torch", "closed_form", "grad_A", after.astype(bf16)).verdict == "disagree"
    assert _judge(cid, "jax", "closed_form", "grad_A", leaked.astype(bf16)).verdict == "disagree"


def test_xla_flush_model_covers_the_terms_of_h_v():
    # jax's closed form H v of this case drops 2 phi' (R^T R w) = 1.5e-39 (subnormal) from
    # element 1, 1.1e-36: 1.3e-3 relative, flushed before the two terms are added
    cid = "extreme-complex64-m13n11-s442710"
    case = Case.from_id(cid)
    ref = reference_for(case, case.inputs(), True)
    want = np.asarray(ref.values["hvp_x"])
    R, s, spp, v = ref.embedding, ref.sigma, ref.sigma_second, ref.v
    term1 = 2 * spp * (R.T @ (R @ s)) * v
    flushed = np.array(want, copy=True)
    flushed[1] = term1[1]
    assert abs(flushed[1] - want[1]) > 1e-3 * abs(want[1]) * 0.9
    known = judge(
        case, "jax", "closed_form", "hvp_x", flushed.astype(np.float32), ref, load_registry()
    )
    assert known.verdict == "known" and "xla-cpu-flush-to-zero" in known.classification
    off = np.array(want, copy=True)
    off[0] *= 1 + 1.3e-3  # the same relative error on a normal-sized element
    assert (
        judge(
            case, "jax", "closed_form", "hvp_x", off.astype(np.float32), ref, load_registry()
        ).verdict
        == "disagree"
    )


def test_logaddexp_rounded_difference_is_known_for_its_libraries_only():
    cid = "softplus:saturated-float64-m1n1-s764503"
    case, inputs, ref = _ref(cid)
    x = float(ref.x[0])
    y = float(ref.sigma[0])
    got = np.array([2 * np.exp(x - y) * float(ref.back[0])])  # x - y rounded: the VJP's order
    v = _judge(cid, "jax", "autodiff", "grad_x", got)
    assert v.error_u > v.tolerance_u  # outside the tolerance: it needs the model
    assert v.verdict == "known"
    assert v.classification == "logaddexp-vjp-exp-of-rounded-difference"
    assert _judge(cid, "torch", "autodiff", "grad_x", got).verdict == "disagree"
    assert _judge(cid, "jax", "closed_form", "grad_x", got).verdict == "disagree"
    # the same error the other way is not the model's
    mirrored = 2 * ref.values["grad_x"] - got
    assert _judge(cid, "jax", "autodiff", "grad_x", mirrored).verdict == "disagree"


def test_an_honest_hypot_loss_agrees_where_the_naive_product_is_nan():
    from gradxval.run.runner import run_cases

    # special complex cases with an inf in A (seed % 4 == 3), and normal ones
    ids = [f"special-{d}-m1n1-s{s}" for d in ("complex64", "complex128") for s in (3, 7, 11)]
    ids += ["special-complex128-m13n11-s7", "normal-complex128-m23n8k2-s1"]
    cases = [Case.from_id(c) for c in ids]
    naive_nan = 0
    for c in cases:  # where z * conj(z) is NaN, hypot's |z|^2 is +inf: the orders differ there
        i = c.inputs()
        with np.errstate(all="ignore"):
            z = i.A.astype(np.complex128) @ (1 / (1 + np.exp(-i.x.astype(np.float64))))
            naive_nan += bool(np.isnan(np.sum(np.real(z * z.conj()))))
    assert naive_nan >= 6
    out: list = []
    run_cases(cases, ["mutants:HonestHypot"], out.append, isolate=False)
    loss = [v for v in out if v.quantity == "loss"]
    assert len(loss) == len(ids)
    assert all(v.verdict in ("agree", "overflow") for v in out), [
        v.message for v in out if v.verdict != "agree"
    ]


SECOND_ORDER_CONVENTIONS = [
    (
        "softplus:extreme-float64-m13n11-s596943",
        "jax",
        "rev_over_rev",
        "jax-logaddexp-second-derivative-limit-at-infinity",
    ),
    (
        "tanh:saturated-float64-m353n49-s947265",
        "torch",
        "rev_over_rev",
        "tanh-second-derivative-cancellation",
    ),
    (
        "softplus:saturated-float64-m13n11-s362950",
        "autograd",
        "rev_over_rev",
        "logaddexp-vjp-exp-of-rounded-difference",
    ),
    (
        "tanh:extreme-float64-m37n5k3-s478089",
        "autograd",
        "rev_over_rev",
        "autograd-tanh-vjp-cosh-squared-overflows",
    ),
    # torch's half kernels round once from float32: its cancelling rule is tried there too
    (
        "logsigmoid:extreme-float16-m1n608-s858697",
        "torch",
        "rev_over_rev",
        "torch-logsigmoid-double-backward-cancellation",
    ),
    (
        "special-bfloat16-m47n169k4-s123519",
        "torch",
        "closed_form",
        "torch-bfloat16-matmul-nan-leaks-to-previous-row",
    ),
]


def _torch_bf16_nan_leaks() -> bool:
    """Whether this CPU's torch bfloat16 matmul leaks a NaN to the previous row
    (docs/upstream/torch_bfloat16_matmul_nan_leak.py's probe)."""
    import torch

    g = torch.Generator().manual_seed(0)
    A = torch.randn(1000, 257, generator=g).to(torch.bfloat16)
    s = torch.rand(257, generator=g).to(torch.bfloat16)
    A[329, 5] = float("nan")
    return bool(torch.isnan((A @ s)[328]))


@pytest.mark.parametrize(
    "case_id, backend, method, entry",
    SECOND_ORDER_CONVENTIONS,
    ids=[e for *_, e in SECOND_ORDER_CONVENTIONS],
)
def test_library_second_order_rules_are_known_with_their_own_values(
    case_id, backend, method, entry
):
    """Each found by --order 2 --problems all (issue 20); the library's own H v is the input."""
    from gradxval.backends import load
    from gradxval.model.problems import load_problem

    pytest.importorskip(backend)
    case = Case.from_id(case_id)
    inputs = case.inputs()
    ref = reference_for(case, inputs, True)
    problem = load_problem(case.problem)
    got = load(backend).evaluate_hvp(problem, method, inputs.A, inputs.x, inputs.v, case.dtype)
    v = judge(case, backend, method, "hvp_x", got, ref, load_registry())
    if entry == "torch-bfloat16-matmul-nan-leaks-to-previous-row" and not _torch_bf16_nan_leaks():
        # the leak is a vectorised kernel's (AVX-512 builds); on a CPU without it torch's
        # bfloat16 matmul is right, and so is its H v
        assert v.verdict == "agree", v.message
        return
    assert v.verdict == "known" and entry in v.classification.split("+"), v.message
    # the same values from a closed form, which no derivative rule excuses, disagree
    v = judge(case, "numpy", "closed_form", "hvp_x", got, ref, load_registry())
    assert v.verdict == "disagree"


def test_an_overflowing_cotangent_makes_nan_an_outcome_and_nothing_else_does():
    pytest.importorskip("torch")
    from gradxval.backends import load
    from gradxval.model.problems import load_problem

    cid = "softplus:saturated-float16-m1000n257-s313493"  # 2 A^T A phi(x) near 1.1e5 > 65504
    case = Case.from_id(cid)
    inputs = case.inputs()
    ref = reference_for(case, inputs, True)
    got = load("torch").evaluate_hvp(
        load_problem("softplus"), "rev_over_rev", inputs.A, inputs.x, inputs.v, case.dtype
    )
    assert np.isnan(got).any() and np.isfinite(ref.values["hvp_x"]).all()
    v = judge(case, "torch", "rev_over_rev", "hvp_x", got, ref, load_registry())
    assert v.verdict == "overflow" and "intermediate" in v.message
    # a finite wrong value there is still wrong, and a NaN in a case without overflow too
    wrong = np.where(np.isnan(got), got, got * np.float16(1.5))
    assert (
        judge(case, "torch", "rev_over_rev", "hvp_x", wrong, ref, load_registry()).verdict
        == "disagree"
    )
    small = Case.from_id("softplus:normal-float16-m13n11-s5")
    sref = reference_for(small, small.inputs(), True)
    planted = np.asarray(sref.values["hvp_x"]).astype(np.float16)
    planted[3] = np.nan
    assert (
        judge(small, "torch", "rev_over_rev", "hvp_x", planted, sref, load_registry()).verdict
        == "disagree"
    )


def test_no_flush_diagnosis_for_an_infinity_where_the_reference_is_undefined():
    from gradxval.judge.error_model import measure
    from gradxval.judge.evidence import diagnose

    # torch's loss of this case was "inf vs nan, diagnosis: flushed subnormals" (issue 20)
    cid = "logsigmoid:extreme-complex128-m37n5k3-s813616"
    case, inputs, ref = _ref(cid)
    want = np.asarray(ref.values["loss"])
    assert np.isnan(want)
    got = np.array(np.inf)
    di = info(case.dtype)
    ms = measure(got, want, ref.scale["loss"], ref.under["loss"], di, "float64")
    assert "subnormal_flush" not in diagnose(case, "loss", got, ref, ms, 20.8)


def test_jax_eager_tanh_vjp_in_transposed_order_is_known():
    """jax's eager VJP runs the tanh rule transposed: a = g (1 - y), then a + a y.  Near
    y = -1 that rounds differently from (g + g y)(1 - y); in float64 it is 5e-9 off the
    truth (tanh:saturated-complex128-m1n3-s0).  The model in that order explains it, for jax;
    the same values from torch, or 1 % off, are not explained."""
    cid = "tanh:saturated-complex128-m1n3-s0"
    case, inputs, ref = _ref(cid)
    g = 2 * np.asarray(ref.back, dtype=np.float64)
    y = ref.sigma
    with np.errstate(all="ignore"):
        a = g * (1 - y)
        transposed = a + a * y
    v = _judge(cid, "jax", "eager", "grad_x", transposed)
    assert v.verdict == "known", v.message
    assert "jax-tanh-jvp-nan-for-infinite-cotangent" in v.classification
    assert _judge(cid, "torch", "autodiff", "grad_x", transposed).verdict == "disagree"
    assert _judge(cid, "jax", "eager", "grad_x", transposed * 1.01).verdict == "disagree"


def test_a_per_column_sum_that_overflows_in_float16_makes_nan_an_outcome():
    """vmap over the batch columns sums one outer product per column in the dtype: in
    logsigmoid:extreme-float16-m1n5k2-s5 column 0 gives -5.0e5 at (0, 1), -inf in float16,
    and column 1 +inf (x holds -inf): NaN there is an honest overflow, where grad_A is +inf.
    NaN at an element whose partials all stay in range is not."""
    cid = "logsigmoid:extreme-float16-m1n5k2-s5"
    case, inputs, ref = _ref(cid)
    want = np.asarray(ref.values["grad_A"]).astype(np.float16)
    got = want.copy()
    got[0, 1] = np.nan
    assert _judge(cid, "torch", "vmap", "grad_A", got).verdict == "overflow"
    got = want.copy()
    got[0, 0] = np.nan  # 2 z_0 phi_00 = -7.8e-18: nothing overflows there
    assert _judge(cid, "torch", "vmap", "grad_A", got).verdict == "disagree"


def test_autograd_forward_mode_faults_are_the_registered_ones():
    """autograd's forward mode (make_jvp, one basis tangent at a time): NaN everywhere from a
    non-finite input, as jax's and torch's jacfwd; and its tanh JVP g / cosh(x)**2, 0 where
    cosh(x)**2 overflows (tanh:extreme-float64-m4n252-s591467: 0 where -8.1e-308 is right)."""
    cid = "tanh:special-float32-m23n8k2-s155471"
    case, inputs, ref = _ref(cid)
    nan = np.full(case.x_shape, np.nan, dtype=np.float32)
    v = _judge(cid, "autograd", "forward", "grad_x", nan)
    assert v.verdict == "known" and v.classification == "forward-mode-nan-from-nonfinite-input"
    assert _judge(cid, "autograd", "autodiff", "grad_x", nan).verdict == "disagree"

    cid = "tanh:extreme-float64-m4n252-s591467"
    case, inputs, ref = _ref(cid)
    model = _cosh_squared_model(ref)
    v = _judge(cid, "autograd", "forward", "grad_x", model)
    assert v.verdict == "known" and v.classification == "autograd-tanh-vjp-cosh-squared-overflows"


def test_xla_float64_tanh_plateau_is_known_for_jax_only():
    """XLA's float64 tanh is 1 - 7 * 2^-53 on 17.714 <= |x| < 20 (x = 19.88 here), where
    tanh rounds to 1: the loss is 11.8 u off a 10 u tolerance.  The closed form with that
    value explains it, for jax; from torch it is a disagreement, and so is twice the error."""
    cid = "tanh:saturated-float64-m1n1-s269957"
    case, inputs, ref = _ref(cid)
    y = np.sign(ref.x) * (1.0 - 7.0 * 2.0**-53)
    A = np.asarray(inputs.A, dtype=np.float64)
    loss = np.float64(np.sum((A @ y.reshape(case.n, -1)) ** 2))
    v = _judge(cid, "jax", "autodiff", "loss", np.array(loss))
    assert v.verdict == "known" and v.classification == "xla-cpu-tanh-float64-seven-ulps-below-one"
    assert _judge(cid, "torch", "autodiff", "loss", np.array(loss)).verdict == "disagree"
    worse = ref.values["loss"] + 2 * (loss - ref.values["loss"])
    assert _judge(cid, "jax", "autodiff", "loss", np.array(worse)).verdict == "disagree"


def test_autograd_forward_over_reverse_tanh_nan_is_its_rule_op_by_op():
    """autograd's forward over reverse differentiates its tanh VJP g / cosh(x)**2 op by op:
    dg / c2 + ((-dc2) g) / c2**2; at x = 353.2 both (-dc2) g and c2**2 overflow and H v is
    inf / inf = NaN where the truth is -7e-305.  That model explains autograd's NaN; a NaN
    elsewhere (where nothing overflows) is a disagreement."""
    cid = "tanh:extreme-float64-m4n252-s591467"
    case = Case.from_id(cid)
    inputs = case.inputs()
    ref = reference_for(case, inputs, True)
    pytest.importorskip("autograd")
    from gradxval.backends import load
    from gradxval.model.problems import load_problem

    got = load("autograd").evaluate_hvp(
        load_problem("tanh"), "fwd_over_rev", inputs.A, inputs.x, inputs.v, case.dtype
    )
    assert np.isnan(got).any()
    v = judge(case, "autograd", "fwd_over_rev", "hvp_x", got, ref, load_registry())
    assert v.verdict == "known" and v.classification == "autograd-tanh-vjp-cosh-squared-overflows"
    wrong = np.array(got, copy=True)
    wrong[np.flatnonzero(np.abs(ref.x) < 5)[:1]] = np.nan
    v = judge(case, "autograd", "fwd_over_rev", "hvp_x", wrong, ref, load_registry())
    assert v.verdict == "disagree"


def test_no_rows_make_every_derivative_zero_and_nan_its_honest_chain_rule():
    """A with no rows: the loss is 0 whatever x is, so grad_x is 0 even where x is NaN
    (forward mode gives 0); reverse mode's phi'(NaN) * 0 = NaN is honest there and agrees.
    A NaN where x is finite, or a nonzero value, is a disagreement."""
    cid = "special-float64-m0n994-s162872"
    case, inputs, ref = _ref(cid)
    x = np.asarray(inputs.x, dtype=np.float64)
    assert not np.isfinite(x).all()
    assert np.all(ref.values["grad_x"] == 0)
    chain = np.where(np.isfinite(x), 0.0, np.nan)
    assert _judge(cid, "torch", "autodiff", "grad_x", chain).verdict == "agree"
    assert _judge(cid, "torch", "forward", "grad_x", np.zeros_like(x)).verdict == "agree"
    wrong = np.where(np.isfinite(x), np.nan, 0.0)
    assert _judge(cid, "torch", "autodiff", "grad_x", wrong).verdict == "disagree"
    one = np.zeros_like(x)
    one[0] = 1.0
    assert _judge(cid, "torch", "autodiff", "grad_x", one).verdict == "disagree"
