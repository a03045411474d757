"""Registered library faults that explain a declared function's disagreement.

A fault is named only where its model reproduces the result: the result is judged again
against the model's expectation and must pass there, element by element.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FAULTS", "explain"]


@dataclass(frozen=True)
class Fault:
    id: str
    backends: tuple[str, ...]
    methods: tuple[str, ...]
    # "flush": subnormals flushed to zero; "tangent_dtype": values right, dtype wider;
    # "variant:NAME": the engine with a library's derivative rule NAME (engine.tape)
    model: str
    upstream: tuple[str, ...]
    title: str


FAULTS = (
    Fault(
        "xla-cpu-flush-to-zero",
        ("jax",),
        ("autodiff", "jit", "forward", "hvp", "formula", "value"),
        "flush",
        ("https://github.com/jax-ml/jax/issues/16200", "https://github.com/jax-ml/jax/issues/4042"),
        "XLA on the CPU flushes subnormal values and intermediates to zero",
    ),
    Fault(
        "logaddexp-vjp-exp-of-rounded-difference",
        ("jax", "autograd"),
        ("autodiff", "jit", "forward", "hvp"),
        "variant:logaddexp_rule",
        ("https://github.com/jax-ml/jax/issues/39794",),
        "softplus as logaddexp(x, 0) differentiates to exp(x - y), which cancels for large x",
    ),
    Fault(
        "jax-tanh-vjp-absorbs-other-cotangents",
        ("jax",),
        ("autodiff", "jit", "hvp"),
        "variant:jax_tanh_rule",
        ("https://github.com/jax-ml/jax/pull/40319",),
        "jax's tanh rule adds g(1 - y) and g(1 - y) y to the input's cotangent separately: for a "
        "large g through a saturated tanh they cancel and take the input's other gradient "
        "terms with them (docs/upstream/jax_tanh_vjp_absorbs_other_cotangents.py)",
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


def explain(backend: str, method: str, result, dtype: str, judge_again, model) -> str | None:
    """The id of the registered fault whose model reproduces ``result``, or None.

    ``judge_again(result, expectations)`` re-judges; ``model(flush=, variants=)`` gives the
    expectations under a fault's model (computed only when asked for, then cached)."""
    from gradxval.dtypes import info

    for f in FAULTS:
        if backend not in f.backends or method not in f.methods:
            continue
        if f.model == "tangent_dtype":
            r = np.asarray(result)
            if r.dtype == np.float64 and dtype != "float64":
                with np.errstate(all="ignore"):
                    if judge_again(r.astype(info(dtype).np_real), None):
                        return f.id
        elif f.model == "flush" and judge_again(result, model(flush=True)):
            return f.id
        elif f.model.startswith("variant:") and judge_again(
            result, model(variants=frozenset([f.model.split(":", 1)[1]]))
        ):
            return f.id
    return None
