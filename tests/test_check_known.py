"""Registered faults in declared-function checks: named only where their model reproduces."""

from __future__ import annotations

import numpy as np
import pytest
from gradxval.model.functions import function
from gradxval.model.sampling import FunctionCase
from gradxval.run.check_case import check_case


@function(x="n")
def tanh_plus_x(x, *, xp, nn):
    return xp.sum(xp.tanh(x) * 1e4) + xp.sum(x)


def _case(dtype, seed=3):
    return FunctionCase("tanh_plus_x", "saturated", dtype, (("n", 2),), seed)


def _altered(backend, alter):
    """``backend`` whose declared-function results pass through ``alter(quantity, array)``:
    a planted fault on top of an honest library."""

    class Altered(type(backend)):
        name = f"altered_{backend.name}"

        def run_function(self, method, function, arrays, dtype, extra=None):
            out = super().run_function(method, function, arrays, dtype, extra)
            return {q: alter(q, v) for q, v in out.items()}

    return Altered()


def test_jax_tanh_rule_absorbing_other_terms_is_known_in_bfloat16():
    pytest.importorskip("jax")
    from gradxval.backends import load

    recs = check_case(tanh_plus_x, _case("bfloat16"), {"jax": load("jax")}, ("autodiff",), 1)
    grad = [r for r in recs if r["quantity"] == "grad_x"][0]
    # the case draws |x| > 10: tanh saturates, and jax 0.10 returns 0 where the truth is 1
    assert grad["outcome"] == "known", grad
    assert grad["note"] == "jax-tanh-vjp-absorbs-other-cotangents"


def test_the_same_result_from_another_backend_is_not_explained():
    """The jax model is scoped to jax: a torch plug-in returning jax's bfloat16 answer
    disagrees (a known label is a claim about one library)."""
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    from gradxval.backends import load
    from gradxval.backends.torch_backend import TorchBackend

    jax = load("jax")

    class LikeJax(TorchBackend):
        def run_function(self, method, function, arrays, dtype, extra=None):
            return jax.run_function(method, function, arrays, dtype, extra)

    case = FunctionCase("tanh_plus_x", "saturated", "bfloat16", (("n", 2),), 4)
    from gradxval.model.sampling import draw

    x = draw(tanh_plus_x, case)[0]["x"]
    if not np.any(np.abs(x.astype(np.float64)) > 10):
        pytest.skip("no saturated element in this draw")
    mine = check_case(tanh_plus_x, case, {"likejax": LikeJax()}, ("autodiff",), 1)
    theirs = check_case(tanh_plus_x, case, {"jax": jax}, ("autodiff",), 1)
    g_mine = [r for r in mine if r["quantity"] == "grad_x"][0]
    g_theirs = [r for r in theirs if r["quantity"] == "grad_x"][0]
    assert g_theirs["outcome"] == "known", g_theirs
    assert g_mine["outcome"] == "disagree", g_mine


def test_torch_forward_mode_float64_tangent_is_known():
    pytest.importorskip("torch")
    from gradxval.backends import load

    @function(x="n")
    def scaled(x, *, xp, nn):
        return 0.5 * xp.sum(x * x)

    case = FunctionCase("scaled", "normal", "float32", (("n", 3),), 2)
    recs = check_case(scaled, case, {"torch": load("torch")}, ("forward",), 1)
    (jvp,) = [r for r in recs if r["quantity"] == "jvp"]
    # pytorch#90065 (open in torch 2.13, CI's pin): a Python float times a 0-d tensor gives a
    # float64 tangent; the values, cast to float32, agree
    assert jvp["outcome"] == "known", jvp
    assert jvp["note"] == "torch-forward-ad-scalar-promotes-tangent"


def test_a_wrong_value_in_float64_is_not_the_dtype_fault():
    """The tangent-dtype model needs the values to agree after the cast."""
    pytest.importorskip("torch")
    from gradxval.backends.torch_backend import TorchBackend

    @function(x="n")
    def scaled(x, *, xp, nn):
        return 0.5 * xp.sum(x * x)

    class WideAndWrong(TorchBackend):
        name = "torch"

        def run_function(self, method, function, arrays, dtype, extra=None):
            out = super().run_function(method, function, arrays, dtype, extra)
            return {k: (v.astype(np.float64) * 1.5) for k, v in out.items()}

    case = FunctionCase("scaled", "normal", "float32", (("n", 3),), 2)
    recs = check_case(scaled, case, {"torch": WideAndWrong()}, ("forward",), 1)
    (jvp,) = [r for r in recs if r["quantity"] == "jvp"]
    assert jvp["outcome"] == "disagree"


def test_torch_layer_norm_backward_residue_is_known_by_its_own_model():
    """Width-1 LayerNorm at x = 2.7e7 (held-out seed 9): torch's backward returns weight.grad
    1.1e20 where 0 is exact. The model of torch's backward formulas reproduces it; a plug-in
    returning the same numbers as another library is not explained (scoped to torch), and a
    result far past any residue (weight.grad times 1e4) is a disagreement."""
    pytest.importorskip("torch")
    from gradxval.backends import load
    from gradxval.model.sampling import parse_case_id
    from gradxval.suite import BY_NAME

    f = BY_NAME["layer_norm_width1"]
    case = parse_case_id("layer_norm_width1:extreme-float32-k2-s657422")
    torch = load("torch")
    recs = check_case(f, case, {"torch": torch}, ("autodiff",), 1)
    by_q = {r["quantity"]: r for r in recs}
    assert by_q["grad_w"]["outcome"] == "known", by_q["grad_w"]
    assert by_q["grad_w"]["note"] == "torch-layer-norm-backward-recomputes-normalized-input"

    amplified = _altered(torch, lambda q, v: v * 1e4 if q == "grad_w" else v)
    recs = check_case(f, case, {"torch": amplified}, ("autodiff",), 1)
    assert [r["outcome"] for r in recs if r["quantity"] == "grad_w"] == ["disagree"]


def test_autograd_division_rule_overflow_is_known():
    """Cosine similarity at |a| = 5e141 (held-out seed 10): autograd's -g * x / y**2 loses a
    term to y**2 = inf and returns 2e-142 where the gradient is 0; its model explains it."""
    from gradxval.backends import load
    from gradxval.model.sampling import parse_case_id
    from gradxval.suite import BY_NAME

    f = BY_NAME["cosine_similarity"]
    case = parse_case_id("cosine_similarity:extreme-float64-n2-s576892")
    recs = check_case(f, case, {"autograd": load("autograd")}, ("autodiff",), 1)
    grads = [r for r in recs if r["quantity"] in ("grad_a", "grad_b")]
    assert [r["outcome"] for r in grads] == ["known", "known"], grads
    assert {r["note"] for r in grads} == {"autograd-div-vjp-squares-the-divisor"}

    # the model overflows inside (y**2 = inf): that excuses no result as a whole; a result the
    # model does not reproduce element by element is a disagreement
    autograd = load("autograd")
    for wrong in (lambda g: g * 1e4, lambda g: np.ones_like(g), lambda g: g + 1e-200):
        planted = _altered(autograd, lambda q, v, w=wrong: w(v) if q.startswith("grad") else v)
        recs = check_case(f, case, {"autograd": planted}, ("autodiff",), 1)
        assert {r["outcome"] for r in recs if r["quantity"] != "loss"} == {"disagree"}, recs


def test_torch_vectorized_gelu_backward_is_known_and_scoped():
    """GELU at x = -9.46 in float32 (held-out seed 7): torch's vectorized backward returns 0
    where the gradient is -1.4e-19; its model explains it, for torch only, and not a result
    far off (the gradient times 1e3 where it is O(1))."""
    pytest.importorskip("torch")
    from gradxval.backends import load
    from gradxval.model.sampling import parse_case_id
    from gradxval.suite import BY_NAME

    f = BY_NAME["gelu_erf"]
    case = parse_case_id("gelu_erf:normal-float32-k1m3n19-s196061")
    torch = load("torch")
    recs = check_case(f, case, {"torch": torch}, ("autodiff",), 1)
    grads = {r["quantity"]: r for r in recs if r["quantity"] != "loss"}
    assert {r["outcome"] for r in grads.values()} <= {"known", "agree"}, grads
    assert grads["grad_b"]["note"] == "torch-gelu-backward-cancels-below-minus-five"

    scaled = _altered(torch, lambda q, v: v * 1e3 if q == "grad_b" else v)
    recs = check_case(f, case, {"torch": scaled}, ("autodiff",), 1)
    assert [r["outcome"] for r in recs if r["quantity"] == "grad_b"] == ["disagree"]


def test_torch_layer_norm_square_overflow_is_known():
    """Width-1 LayerNorm at |x| ~ 1e189 in float64 (held-out seed 8): torch's loss and
    gradients are NaN (its statistics square x); the model of its kernel explains them."""
    pytest.importorskip("torch")
    from gradxval.backends import load
    from gradxval.model.sampling import parse_case_id
    from gradxval.suite import BY_NAME

    f = BY_NAME["layer_norm_width1"]
    case = parse_case_id("layer_norm_width1:extreme-float64-k5-s613016")
    recs = check_case(f, case, {"torch": load("torch")}, ("autodiff",), 1)
    loss = [r for r in recs if r["quantity"] == "loss"][0]
    assert loss["outcome"] == "known", loss
    assert loss["note"] == "torch-layer-norm-statistics-square-the-input"
    assert {r["outcome"] for r in recs} <= {"known", "agree"}, recs


def _suite_case(case_id):
    from gradxval.model.sampling import parse_case_id
    from gradxval.suite import BY_NAME

    case = parse_case_id(case_id)
    return BY_NAME[case.function], case


def _drawn(f, case):
    from gradxval.model.sampling import draw

    return draw(f, case)[0], case.dtype


def _jax_jvp(case_id, plant):
    """jax's forward-mode JVP record on ``case_id``, and the record of jax with ``plant``
    applied to its JVP."""
    pytest.importorskip("jax")
    from gradxval.backends import load

    f, case = _suite_case(case_id)
    jax = load("jax")
    out = []
    for backend in (jax, _altered(jax, lambda q, v: plant(v) if q == "jvp" else v)):
        recs = check_case(f, case, {"jax": backend}, ("forward",), 1)
        out += [r for r in recs if r["quantity"] == "jvp"]
    return out


def test_jax_forward_division_overflow_is_known_by_the_forward_model():
    """Cosine similarity in float16 (held-out seed 7): jax's JVP of x / y is
    (-t * x) * integer_pow(y, -2); -t * x overflows, y**-2 is 1 / inf = 0, and the JVP is NaN.
    The fault's model reproduces it only propagated forward, in jax's order."""
    # planted: a finite wrong JVP, no overflow the model makes
    jvp, planted = _jax_jvp("cosine_similarity:saturated-float16-n5-s604896", np.ones_like)
    assert jvp["outcome"] == "known", jvp
    assert jvp["note"] == "jax-div-jvp-squares-the-divisor"
    assert planted["outcome"] == "disagree"


def test_a_model_explains_only_what_it_predicts():
    """A fault's model explains an element only where its prediction is specific.  Cosine
    similarity in float16: jax's division rule gives -0.02124 where the JVP is -0.01272, and
    the model's runs cluster there; a planted zero JVP lay inside 8x the model's distance
    from the reference and was labelled known, now it is a disagreement."""
    jvp, planted = _jax_jvp("cosine_similarity:saturated-float16-n6-s4709", np.zeros_like)
    assert jvp["outcome"] == "known", jvp
    assert jvp["note"] == "jax-div-jvp-squares-the-divisor"
    assert planted["outcome"] == "disagree", planted


@pytest.mark.parametrize(
    "case_id",
    [
        "layer_norm_width1:normal-bfloat16-k1-s329833",
        "layer_norm_width1:saturated-bfloat16-k4-s926514",
    ],
)
def test_a_model_whose_runs_scatter_claims_nothing(case_id):
    """Width-1 LayerNorm in bfloat16: the model of torch's kernel (rstd * x - rstd * mean)
    scatters from -4192 to 9e8 over its perturbed runs, around a JVP of 16; torch itself is
    right here.  A planted zero JVP is inside that scatter, and is a disagreement: a model
    that admits everything explains nothing."""
    pytest.importorskip("torch")
    from gradxval.backends import load

    f, case = _suite_case(case_id)
    torch = load("torch")
    zero = _altered(torch, lambda q, v: np.zeros_like(v) if q == "jvp" else v)
    records = []
    for backend in (torch, zero):
        recs = check_case(f, case, {"torch": backend}, ("forward",), 1)
        records += [r for r in recs if r["quantity"] == "jvp"]
    assert [r["outcome"] for r in records] == ["agree", "disagree"]
    # the fault is named as a hint only: its model admits the zero, it does not predict it
    assert records[1]["note"].startswith("consistent with registered fault torch-layer-norm")


def test_a_non_finite_result_is_explained_by_a_model_whose_runs_are_all_non_finite():
    """Width-1 LayerNorm JVP in float16: torch's forward mode is NaN.  One of the seven runs
    of the statistics model is NaN (a variance that rounds below 0), every run of the
    forward-mode rsqrt model is: that model is the one named."""
    pytest.importorskip("torch")
    from gradxval.backends import load

    f, case = _suite_case("layer_norm_width1:normal-float16-k9-s190280")
    recs = check_case(f, case, {"torch": load("torch")}, ("forward",), 1)
    (jvp,) = [r for r in recs if r["quantity"] == "jvp"]
    assert (jvp["outcome"], jvp["note"]) == (
        "known", "torch-layer-norm-forward-ad-rsqrt-cubed-overflows"), jvp  # fmt: skip


def test_xla_keeps_float16_subnormals_and_jax_xlogy_rule_overflows():
    """Width-1 LayerNorm in float16: eps = 1e-5 is a float16 subnormal that XLA keeps (it
    computes float16 in float32), jax's weight.grad is 0 and right; a planted NaN there was
    labelled flush-to-zero while the flush model flushed float16 subnormals.  The entropy of
    a float16 softmax whose smallest probability is 1.2e-7: jax's gradient is NaN and inf,
    from xlogy's transposed rule (g / y) * x, and that fault's model is the one named."""
    pytest.importorskip("jax")
    from gradxval.backends import load

    jax = load("jax")
    f, case = _suite_case("layer_norm_width1:normal-float16-k9-s190280")
    nan = _altered(jax, lambda q, v: np.full_like(v, np.nan) if q == "grad_w" else v)
    outcomes = []
    for backend in (jax, nan):
        recs = check_case(f, case, {"jax": backend}, ("autodiff",), 1)
        outcomes += [r["outcome"] for r in recs if r["quantity"] == "grad_w"]
    assert outcomes == ["agree", "disagree"]

    f, case = _suite_case("entropy_softmax:extreme-float16-n6-s317433")
    recs = check_case(f, case, {"jax": jax}, ("autodiff", "forward"), 1)
    by_q = {r["quantity"]: r for r in recs}
    assert (by_q["grad_x"]["outcome"], by_q["grad_x"]["note"]) == (
        "known", "jax-xlogy-vjp-divides-the-cotangent-first"), by_q["grad_x"]  # fmt: skip
    assert by_q["jvp"]["outcome"] == "agree"  # forward mode computes (t * x) / y


def test_jax_float16_sigmoid_zero_is_the_sigmoid_fault_not_a_flush():
    """jax computes float16's logistic as 1 / (1 + exp(-x)) in float16: exp(-x) overflows
    below x = -11.1 and sigma is 0 where it is a subnormal (6e-6 at x = -12).  The flush model
    no longer flushes float16 (XLA keeps its subnormals); the sigmoid's own model explains it,
    and the same zeros from another backend are not explained."""
    pytest.importorskip("jax")
    from gradxval.backends import load

    f, case = _suite_case("sq_norm_a_sigmoid:saturated-float16-m6n10-s734477")
    jax = load("jax")
    recs = check_case(f, case, {"jax": jax}, ("autodiff",), 1)
    by_q = {r["quantity"]: r for r in recs}
    assert (by_q["grad_x"]["outcome"], by_q["grad_x"]["note"]) == (
        "known", "jax-float16-sigmoid-underflows-to-zero"), by_q["grad_x"]  # fmt: skip
    other = _altered(jax, lambda q, v: v)
    recs = check_case(f, case, {"other": other}, ("autodiff",), 1)
    assert [r["outcome"] for r in recs if r["quantity"] == "grad_x"] == ["disagree"]
    # torch computes float16's sigmoid in float32 and keeps the subnormal: jax's zeros planted
    # on torch are not torch's fault (the review found them labelled known)
    pytest.importorskip("torch")
    zeros = jax.run_function("autodiff", f, *_drawn(f, case))["grad_x"]
    torch = load("torch")
    planted = _altered(torch, lambda q, v: zeros if q == "grad_x" else v)
    recs = check_case(f, case, {"torch": torch, "planted": planted}, ("autodiff",), 1)
    got = {r["backend"]: r["outcome"] for r in recs if r["quantity"] == "grad_x"}
    assert got == {"torch": "agree", "planted": "disagree"}


@pytest.mark.parametrize(
    "case_id",
    [
        "layer_norm_affine:strided-float16-k8n3-s394464",
        "layer_norm_affine:normal-bfloat16-k5n13-s313366",
    ],
)
def test_torch_half_precision_layer_norm_bias_grad_is_known_by_its_accumulation(case_id):
    """torch sums a float16 LayerNorm's bias.grad in a float16 buffer, row by row per thread:
    -0.00653 where -0.006744 is right (held-out seed 8).  The model of that accumulation
    explains it; 5 % off it (4 bfloat16 ulps) is a disagreement."""
    pytest.importorskip("torch")
    from gradxval.backends import load

    f, case = _suite_case(case_id)
    torch = load("torch")
    recs = check_case(f, case, {"torch": torch}, ("autodiff",), 1)
    grad_b = [r for r in recs if r["quantity"] == "grad_b"][0]
    assert (grad_b["outcome"], grad_b["note"]) == (
        "known", "torch-layer-norm-half-weight-grads-accumulate-in-half"), grad_b  # fmt: skip
    off = _altered(torch, lambda q, v: v * v.dtype.type(1.05) if q == "grad_b" else v)
    recs = check_case(f, case, {"torch": off}, ("autodiff",), 1)
    assert [r["outcome"] for r in recs if r["quantity"] == "grad_b"] == ["disagree"]


def test_torch_width_one_layer_norm_input_grad_residue_is_its_kernel_order():
    """Width-1 LayerNorm in float32 (held-out seed 9): torch's x.grad is 0.25 at one row, where
    0 is exact: the kernel's own order (B = fma(db, mean, -ds) a^3, dx = fma(B, x, a dy w) + C)
    leaves that residue, and the model run in that order reproduces it to the bit; 0.5 there
    (a residue the order does not give) is a disagreement."""
    pytest.importorskip("torch")
    from gradxval.backends import load

    f, case = _suite_case("layer_norm_width1:saturated-float32-k14-s592771")
    torch = load("torch")
    recs = check_case(f, case, {"torch": torch}, ("autodiff",), 1)
    grad_x = [r for r in recs if r["quantity"] == "grad_x"][0]
    assert (grad_x["outcome"], grad_x["note"]) == (
        "known", "torch-layer-norm-backward-recomputes-normalized-input"), grad_x  # fmt: skip
    doubled = _altered(torch, lambda q, v: v * v.dtype.type(2) if q == "grad_x" else v)
    recs = check_case(f, case, {"torch": doubled}, ("autodiff",), 1)
    assert [r["outcome"] for r in recs if r["quantity"] == "grad_x"] == ["disagree"]


def test_a_forward_mode_jvp_gets_forward_mode_rounding():
    """Width-1 LayerNorm in bfloat16 (held-out seed 8): the JVP is sum_i P_i t_b, rounded
    product by product in forward mode; jax's is 8 % from the reference and honest (it was a
    false alarm while the honest runs rounded the inner product <gradient, t>)."""
    jvp, planted = _jax_jvp("layer_norm_width1:strided-bfloat16-k6-s429955",
                            lambda v: v * np.asarray(8, v.dtype))  # fmt: skip
    assert jvp["outcome"] == "agree", jvp
    assert planted["outcome"] == "disagree"  # same sign, 8x: no longer noise (docs/functions.md)


def test_a_finite_result_where_every_honest_run_is_nan_is_judged_by_the_wide_runs():
    """Entropy of a float32 softmax (held-out seed 10): one probability underflows to 0 and
    xlogy's rule 0 / 0 makes every honest run NaN; autograd's rule stays finite, 8e-4 off at
    the element that cancels (-log p + sum p log p with p ~ 1), which float32 allows. The
    runs with float64's range give the spread there; a result 1 % off is still wrong."""
    from gradxval.backends import load

    f, case = _suite_case("entropy_softmax:saturated-float32-n17-s760659")
    autograd = load("autograd")
    recs = check_case(f, case, {"autograd": autograd}, ("autodiff",), 1)
    assert {r["outcome"] for r in recs} == {"agree"}, recs
    planted = _altered(autograd, lambda q, v: v * np.float32(1.01) if q == "grad_x" else v)
    recs = check_case(f, case, {"autograd": planted}, ("autodiff",), 1)
    assert [r["outcome"] for r in recs if r["quantity"] == "grad_x"] == ["disagree"]


def test_an_overflow_in_the_tangent_pass_excuses_no_gradient():
    """The forward-mode runs overflow in float16 where the value and gradient passes do not
    (an LSTM step, saturated): that is the JVP's range, and a gradient 1.5x off is still a
    disagreement whether or not a forward result is judged beside it."""
    pytest.importorskip("torch")
    from gradxval.backends import load

    f, case = _suite_case("lstm_step:saturated-float16-m4n4-s329833")
    wrong = _altered(load("torch"), lambda q, v: v * np.float16(1.5) if q.startswith("grad")
                     else v)  # fmt: skip
    verdicts = []
    for methods in (("autodiff",), ("autodiff", "forward")):
        recs = check_case(f, case, {"torch": wrong}, methods, 1)
        verdicts.append({r["quantity"]: r["outcome"] for r in recs
                         if r["quantity"].startswith("grad")})  # fmt: skip
    assert verdicts[0] == verdicts[1]
    assert "disagree" in verdicts[0].values() and "overflow" not in verdicts[0].values()


def test_declared_functions_become_pytest_items(pytester):
    # no torch import here: pytester drops modules a test imported, and torch cannot load twice
    pytester.makepyfile(
        test_mine="""
        import gradxval

        @gradxval.function(A="m n", x="n")
        def test_ridge(A, x, *, xp, nn):
            return xp.sum((A @ nn.sigmoid(x)) ** 2) + 0.5 * xp.sum(x * x)

        @gradxval.function(A="m n", x="n")
        def helper_not_collected(A, x, *, xp, nn):
            return xp.sum(x)
        """
    )
    run = pytester.runpytest_subprocess(
        "-v", "-p", "no:randomly", "-p", "no:hypothesispytest",  # unused, slow to import
        "--gradxval-cases", "3", "--gradxval-backends", "numpy",
        "--gradxval-dtypes", "float32,float64",
    )  # fmt: skip
    out = run.stdout.str()
    # one item per case, with the case's readable id; a declared function not named like a
    # test is not collected
    assert out.count("test_mine.py::test_ridge::") == 3, out
    assert "helper_not_collected" not in out
    run.assert_outcomes(passed=3)
