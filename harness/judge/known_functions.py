"""Registered library faults that explain a declared function's disagreement.

A fault is named only where its model reproduces the result: the result is judged again
against the model's expectation and must pass there, element by element.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FAULTS", "explain", "explain_error", "registered_dtype_faults"]


@dataclass(frozen=True)
class Fault:
    id: str
    backends: tuple[str, ...]
    methods: tuple[str, ...]
    # "flush": subnormals flushed to zero; "tangent_dtype": values right, dtype wider;
    # "variant:NAME": the engine with a library's derivative rule NAME (engine.tape), or
    # several joined by "+" (one library kernel with more than one of them); "raises:TEXT":
    # an exception whose message holds TEXT where the function has a value
    model: str
    upstream: tuple[str, ...]
    title: str
    ops: tuple[str, ...] = ()  # named only where the function called one of these nn operations
    # "raises:" faults: the exception must come through one of these "path/file.py:function"
    # frames (the library's own code, not the same message from elsewhere)
    frames: tuple[str, ...] = ()


FAULTS = (
    Fault(
        "xla-cpu-flush-to-zero",
        ("jax",),
        ("autodiff", "jit", "forward", "hvp", "formula", "value", "vmap"),
        "flush",
        ("https://github.com/jax-ml/jax/issues/16200", "https://github.com/jax-ml/jax/issues/4042"),
        "XLA on the CPU flushes subnormal values and intermediates to zero",
    ),
    Fault(
        "library-sigmoid-underflows-to-zero",
        ("torch", "autograd", "numpy"),
        ("autodiff", "forward", "hvp", "value", "vmap"),
        "variant:sigmoid_exp_overflow",
        ("https://github.com/HIPS/autograd/blob/master/autograd/scipy/special.py",),
        "torch.sigmoid and scipy's expit compute 1 / (1 + exp(-x)): exp(-x) overflows for "
        "x < -88.7 in float32 (the type they compute float16 in too) and sigma is 0 where it "
        "is a representable subnormal",
        ("sigmoid", "silu"),
    ),
    Fault(
        "jax-float16-sigmoid-underflows-to-zero",
        ("jax",),
        ("autodiff", "jit", "forward", "hvp", "value", "vmap"),
        "variant:sigmoid_exp_overflow_in_dtype",
        ("https://github.com/jax-ml/jax/blob/main/jax/_src/lax/lax.py",),
        "jax's logistic in float16 computes 1 / (1 + exp(-x)) in float16: exp(-x) overflows "
        "below x = -11.1 and sigma is 0 where it is a float16 subnormal (6e-6 at x = -12; torch, "
        "computing in float32, gives it)",
        ("sigmoid", "silu"),
    ),
    Fault(
        "logaddexp-vjp-exp-of-rounded-difference",
        ("jax", "autograd"),
        ("autodiff", "jit", "forward", "hvp", "vmap"),
        "variant:logaddexp_rule",
        ("https://github.com/jax-ml/jax/issues/39794",),
        "softplus as logaddexp(x, 0) differentiates to exp(x - y), which cancels for large x",
    ),
    Fault(
        "jax-tanh-vjp-absorbs-other-cotangents",
        ("jax",),
        ("autodiff", "jit", "hvp", "vmap"),
        "variant:jax_tanh_rule",
        ("https://github.com/jax-ml/jax/pull/40319",),
        "jax's tanh rule adds g(1 - y) and g(1 - y) y to the input's cotangent separately: for a "
        "large g through a saturated tanh they cancel and take the input's other gradient "
        "terms with them (docs/upstream/jax_tanh_vjp_absorbs_other_cotangents.py)",
    ),
    Fault(
        "torch-layer-norm-backward-recomputes-normalized-input",
        ("torch",),
        ("autodiff", "hvp", "vmap"),
        "variant:torch_layer_norm_backward",
        ("https://github.com/pytorch/pytorch/issues/188375",),
        "torch's CPU LayerNorm backward recomputes the normalized input as rstd * x + "
        "(-rstd * mean), two products rounded apart, not (x - mean) * rstd: where x equals its "
        "mean (normalized_shape=(1,)) weight.grad and x.grad are a rounding residue times dy, "
        "not 0 (weight.grad 1.1e20 at x = 2.7e7 in float32; "
        "docs/upstream/torch_layer_norm_backward_residue.py)",
        ("layer_norm",),
    ),
    Fault(
        "torch-layer-norm-statistics-square-the-input",
        ("torch",),
        ("autodiff", "forward", "hvp", "vmap"),
        "variant:torch_layer_norm_squares+torch_layer_norm_backward",
        ("https://github.com/pytorch/pytorch/blob/main/aten/src/ATen/native/cpu/moments_utils.h",),
        "torch's CPU LayerNorm computes its row statistics from x * x: where that overflows "
        "(|x| > 1.3e154 in float64, 1.8e19 in float32 and bfloat16) the output, loss and "
        "gradients are NaN where a two-pass variance is finite (x - mean is 0 at width 1); in "
        "float16 and bfloat16 the forward also normalizes as rstd * x - rstd * mean "
        "(docs/upstream/torch_layer_norm_square_overflow.py)",
        ("layer_norm",),
    ),
    Fault(
        "torch-layer-norm-half-weight-grads-accumulate-in-half",
        ("torch",),
        ("autodiff", "hvp", "vmap"),
        "variant:torch_layer_norm_backward+torch_layer_norm_half_sums",
        (
            "https://github.com/pytorch/pytorch/blob/main/aten/src/ATen/native/cpu/layer_norm_kernel.cpp",
        ),
        "torch's CPU LayerNorm backward sums weight.grad and bias.grad for float16 and bfloat16 "
        "inputs in a buffer of the input's dtype, rounded after every row (one buffer per "
        "thread, added in float32 at the end): 3 % off for a bias gradient of 8 rows in float16 "
        "(-0.00653 where -0.006744 is right, which a float32 sum gives) "
        "(docs/upstream/torch_layer_norm_half_weight_grads.py)",
        ("layer_norm",),
    ),
    Fault(
        "torch-gelu-backward-cancels-below-minus-five",
        ("torch",),
        ("autodiff", "hvp", "vmap"),
        "variant:torch_gelu_rule",
        ("https://github.com/pytorch/pytorch/blob/main/aten/src/ATen/native/cpu/Activation.cpp",),
        "torch's vectorized CPU GELU (erf) backward in float32, bfloat16 and float16 sums two "
        "terms near 0.5 that cancel, (0.5 + x pdf) + 0.5 erf(x / sqrt 2): the derivative is a "
        "multiple of 2^-25, 18 % off at x = -6 and 0 for x < -6.1, where the one-element "
        "(scalar) path is right (docs/upstream/torch_gelu_backward_cancellation.py)",
        ("gelu",),
    ),
    Fault(
        "torch-layer-norm-width-one-inexact-statistics",
        ("torch",),
        ("autodiff", "forward", "hvp", "vmap"),
        "variant:no_exact_ops",
        ("https://github.com/pytorch/pytorch/issues/188375",),
        "torch's CPU LayerNorm statistics are not exact where the formula is (a mean of one "
        "element): x - mean != 0, so weight.grad and x.grad are nonzero for normalized_shape=(1,)",
        ("layer_norm",),
    ),
    Fault(
        "torch-layer-norm-forward-ad-rsqrt-cubed-overflows",
        ("torch",),
        ("forward",),
        "variant:rsqrt_layer_norm",
        ("https://github.com/pytorch/pytorch/issues/188375",),
        "torch's forward-mode LayerNorm differentiates rsqrt(var + eps) as -rsqrt^3 / 2, which "
        "overflows float16 for a small variance (width 1: 1/sqrt(1e-5)^3 = 3.2e7): NaN where "
        "the JVP is finite (docs/upstream/torch_layer_norm_forward_ad_float16.py)",
        ("layer_norm",),
    ),
    Fault(
        "torch-softplus-linear-above-threshold",
        ("torch",),
        ("autodiff", "forward", "hvp", "vmap"),
        "variant:softplus_threshold",
        ("https://docs.pytorch.org/docs/stable/generated/torch.nn.functional.softplus.html",),
        "torch's softplus returns x (derivative 1) for x > threshold = 20, off by log1p(e^-x): "
        "up to 2e-9, millions of float64 ulps",
        ("softplus",),
    ),
    Fault(
        "jax-div-jvp-squares-the-divisor",
        ("jax",),
        ("autodiff", "jit", "forward", "hvp", "vmap"),
        "variant:jax_div_rule",
        ("https://github.com/jax-ml/jax/pull/3140", "https://github.com/jax-ml/jax/issues/40634"),
        "jax differentiates x / y in y as -g * x * y ** -2: y ** -2 underflows or overflows in "
        "float16 and bfloat16 where the quotient's derivative does not "
        "(docs/upstream/jax_div_jvp_integer_pow.py)",
    ),
    Fault(
        "jax-xlogy-vjp-divides-the-cotangent-first",
        ("jax",),
        ("autodiff", "jit", "hvp", "vmap"),
        "variant:jax_xlogy_rule",
        ("https://github.com/jax-ml/jax/blob/main/jax/_src/scipy/special.py",),
        "jax.scipy.special.xlogy's JVP in y is y_dot * x / y; reverse mode transposes it to "
        "(g / y) * x, and g / y overflows float16 for y below 1.5e-5, where x / y is 1: the "
        "gradient of xlogy(p, p) at p = 1.9e-6 is inf, of an entropy NaN "
        "(docs/upstream/jax_xlogy_vjp_float16.py)",
        ("xlogy",),
    ),
    Fault(
        "autograd-div-vjp-squares-the-divisor",
        ("autograd",),
        ("autodiff", "hvp"),
        "variant:autograd_div_rule",
        ("https://github.com/HIPS/autograd/blob/master/autograd/numpy/numpy_vjps.py",),
        "autograd differentiates x / y in y as -g * x / y**2: y**2 overflows (the term vanishes:"
        " cosine similarity's gradient 2e-142 where it is 0 at |a| = 5e141) and g * x overflows"
        " (inf - inf: NaN in BatchNorm at 8e8 in float32) where the quotient's derivative is in "
        "range (docs/upstream/autograd_div_vjp_squares_divisor.py)",
    ),
    Fault(
        "jax-broadcast-cotangent-summed-in-bfloat16",
        ("jax",),
        ("autodiff", "jit", "hvp", "vmap"),
        "variant:jax_broadcast_transpose",
        ("https://github.com/jax-ml/jax/blob/main/jax/_src/lax/lax.py",),
        "jax sums the cotangent of a broadcast (a bias's gradient) with reduce_sum in float16 or "
        "bfloat16, where jnp.sum accumulates in float32: 300 terms of 0.01 give 2.94 for 3.00 "
        "(docs/upstream/jax_broadcast_transpose_low_precision.py)",
    ),
    Fault(
        "scipy-softmax-raises-on-empty-axis",
        ("numpy",),
        ("value", "formula"),
        "raises:zero-size array to reduction operation maximum which has no identity",
        (
            "https://github.com/scipy/scipy/issues/20399",
            "https://github.com/scipy/scipy/pull/20511",
        ),
        "scipy.special.softmax and log_softmax take np.amax of an empty axis and raise "
        "ValueError, where the softmax of no entries is no entries (scipy#20399 fixed "
        "logsumexp alone, which returns -inf; docs/upstream/scipy_softmax_empty_axis.py)",
        ("softmax", "log_softmax", "cross_entropy"),
        ("scipy/special/_logsumexp.py:softmax", "scipy/special/_logsumexp.py:log_softmax"),
    ),
    Fault(
        "torch-forward-ad-scalar-promotes-tangent",
        ("torch",),
        ("forward", "hvp"),
        "tangent_dtype",
        (
            "https://github.com/pytorch/pytorch/issues/90065",
            "https://github.com/pytorch/pytorch/issues/160513",
        ),  # fmt: skip
        "forward-mode AD: a Python float times a 0-d tensor gives a float64 tangent",
    ),
)


def explain_error(backend: str, method: str, exc: BaseException, used=frozenset()) -> str | None:
    """The id of the registered fault that raised ``exc`` here, or None: its message, and a
    frame of the library function the fault is in."""
    import traceback

    frames = {f"{fr.filename.replace(chr(92), '/')}:{fr.name}"
              for fr in traceback.extract_tb(exc.__traceback__)}  # fmt: skip
    for f in FAULTS:
        if (f.model.startswith("raises:") and backend in f.backends and method in f.methods
                and (not f.ops or set(f.ops) & set(used))
                and f.model.split(":", 1)[1] in str(exc)
                and any(fr.endswith(want) for fr in frames for want in f.frames)):  # fmt: skip
            return f.id
    return None


def _kind(quantity: str) -> str:
    """loss, grad (a gradient, JVP or VJP) or hvp: what a registry entry's quantities name."""
    base = quantity.split(".")[0]
    if base.startswith("hvp"):
        return "hvp"
    return "loss" if base == "loss" else "grad"


def registered_dtype_faults(backend: str, method: str, dtype: str, quantity: str) -> list[Fault]:
    """The entries of the known-fault registries (gradxval's known.toml and each plug-in's,
    docs/plugins.md) that hold for declared functions: those whose evidence is the result's
    dtype alone (``promoted_dtype``: a wider dtype, right once rounded).  That evidence reads
    no function, so it applies to any; an entry covers the quantity kinds it lists (loss;
    grad_* for every gradient, JVP and VJP; hvp_*), its dtypes, and its scopes' backends,
    methods and versions."""
    from gradxval.judge.evidence import DTYPE_EVIDENCE
    from gradxval.judge.known import backend_identity, load_registry

    who = backend_identity(backend)
    out = []
    for e in load_registry().entries:
        if e.evidence not in DTYPE_EVIDENCE or (e.dtypes and dtype not in e.dtypes):
            continue
        if e.problems:  # scoped to the seed problems (gradxval run), not to any function
            continue
        if _kind(quantity) not in {_kind(q) for q in e.quantities}:
            continue
        if any(s.covers(who, method) for s in e.scopes):
            out.append(Fault(e.id, (backend,), (method,), "tangent_dtype", e.upstream, e.title))
    return out


def explain(backend: str, method: str, result, dtype: str, judge_again, model,
            used=frozenset(), specific: bool = True, quantity: str = "",
            keeps_dtype=None) -> str | None:  # fmt: skip
    """The id of the registered fault whose model reproduces ``result``, or None.

    ``judge_again(result, expectations, specific)`` re-judges; ``model(flush=, variants=)``
    gives the expectations under a fault's model (computed only when asked for, then cached).
    ``specific=False``: the first fault whose model merely admits the result (a note).
    ``quantity`` names what ``result`` is, for the registries' dtype entries, which apply only
    where ``keeps_dtype()`` says the function itself stays in the dtype."""
    from gradxval.dtypes import info

    faults = list(FAULTS)
    if quantity and np.asarray(result).dtype == np.float64 and dtype != "float64":
        extra = registered_dtype_faults(backend, method, dtype, quantity)
        if extra and (keeps_dtype is None or keeps_dtype()):
            faults += extra
    for f in faults:
        if backend not in f.backends or method not in f.methods:
            continue
        if f.ops and not set(f.ops) & set(used):
            continue
        if f.model == "tangent_dtype":
            r = np.asarray(result)
            if r.dtype == np.float64 and dtype != "float64":
                with np.errstate(all="ignore"):
                    if judge_again(r.astype(info(dtype).np_real), None, specific):
                        return f.id
        elif f.model == "flush" and judge_again(result, model(flush=True), specific):
            return f.id
        elif f.model.startswith("variant:") and judge_again(
            result, model(variants=frozenset(f.model.split(":", 1)[1].split("+"))), specific
        ):
            return f.id
    return None
