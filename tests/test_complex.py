"""Declared functions of complex inputs: sampled, referenced and judged part by part."""

import numpy as np
import pytest
from gradxval.backends import load
from gradxval.errors import UsageError
from gradxval.model.functions import Input, function
from gradxval.model.sampling import draw, sample
from gradxval.run.check_case import check_case
from gradxval.suite import BY_NAME

F = BY_NAME["sq_norm_complex_a_tanh"]


def test_a_complex_input_makes_the_function_complex():
    assert F.dtypes == ("complex64", "complex128")
    (case,) = sample(F, 1, 0, ("complex64",), ("normal",))
    arrays, directions = draw(F, case)
    assert arrays["A"].dtype == np.complex64 and arrays["x"].dtype == np.float32
    assert np.any(arrays["A"].imag != 0)
    assert directions["A"].dtype == np.complex64 and directions["x"].dtype == np.float32
    with pytest.raises(UsageError, match="complex64, complex128"):
        function(lambda A, *, xp, nn: xp.sum(A), A=Input("n", complex=True), dtypes=["float32"])
    with pytest.raises(UsageError, match="domain"):
        Input("n", complex=True, domain="positive")


def _records(backend, cases=4, order=2):
    out = []
    for case in sample(F, cases, 5, regimes=("normal", "saturated")):
        out += check_case(F, case, {backend.name or "b": backend}, None, order)
    return out


@pytest.mark.parametrize("name", ["jax", "torch", "autograd"])
def test_every_method_agrees_on_complex_inputs(name):
    """Gradients and HVPs of the complex input in torch's convention (jax's and autograd's
    conjugates turned), JVPs along complex tangents, and the closed form."""
    recs = _records(load(name))
    outcomes = {(r["method"], r["quantity"], r["outcome"]) for r in recs}
    assert all(o in ("agree", "overflow") for _, _, o in outcomes), sorted(outcomes)
    quantities = {q for _, q, _ in outcomes}
    assert {"grad_A", "grad_x", "hvp_A", "loss"} <= quantities, quantities


def test_a_conjugated_gradient_is_a_disagreement_in_its_imaginary_part():
    """A backend that forgets to conjugate (jax's convention left as it is) is caught."""
    jax = load("jax")

    class Unconjugated(type(jax)):
        name = "unconjugated"
        conj_grads = False

    recs = [r for r in _records(Unconjugated(), order=1)
            if r["quantity"] == "grad_A" and r["method"] != "formula"]  # fmt: skip
    bad = [r for r in recs if r["outcome"] == "disagree"]
    assert bad and len(bad) == len(recs), [(r["case"], r["outcome"]) for r in recs]
    assert all("imaginary part" in r["note"] for r in bad)


def test_a_complex_result_of_the_wrong_dtype_disagrees():
    torch = load("torch")

    class Widened(type(torch)):
        name = "widened"

        def run_function(self, method, function, arrays, dtype, extra=None):
            out = super().run_function(method, function, arrays, dtype, extra)
            return {q: v.astype(np.complex128) if v.dtype.kind == "c" else v
                    for q, v in out.items()}  # fmt: skip

    recs = [r for r in _records(Widened(), cases=2, order=1) if r["quantity"] == "grad_A"]
    assert recs and all(r["outcome"] == "disagree" for r in recs if "complex64" in r["case"])
    assert any("dtype complex128, expected complex64" in r["note"] for r in recs)


def test_an_operation_complex_arrays_lack_is_a_usage_error(tmp_path):
    """exp of a complex input is outside the engine's complex operations: one line naming
    the function and what it lacks (exit 2 from the command line), never a crash."""
    from gradxval.checking import check

    path = tmp_path / "mine.py"
    path.write_text(
        "import gradxval\n\n"
        "@gradxval.function(A=gradxval.Input('n', complex=True))\n"
        "def bad(A, *, xp, nn):\n"
        "    return xp.sum(xp.real(xp.exp(A)))\n"
    )
    with pytest.raises(UsageError, match="function bad: the reference engine cannot evaluate"):
        check(f"{path}:bad", backends="numpy", cases=1)


def test_a_complex_scalar_input_keeps_its_shape_when_judged_by_parts():
    """A declared function of a complex 0-d input: its exact gradient 2 z was judged
    "shape (1,), expected ()" (the parts were made at least 1-d); it agrees."""
    import numpy as np
    from gradxval.judge.expectation import expect
    from gradxval.judge.verdict import judge_parts
    from gradxval.model.functions import Input, function

    @function(z=Input((), complex=True))
    def abs2(z, *, xp, nn):
        return xp.real(z * xp.conj(z))

    z = np.asarray(0.75 - 1.25j, dtype=np.complex128)
    exps = expect(abs2, {"z": z}, "complex128", {"z": z}, 1, 0)
    v = judge_parts(2 * z, exps, "grad_z", "complex128")
    assert v.outcome == "agree", v
    assert judge_parts(3 * z, exps, "grad_z", "complex128").outcome == "disagree"
