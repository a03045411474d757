"""The finite-difference witness: accurate where it can be, and it picks the right side."""

import numpy as np
import pytest
from gradxval.judge.problem_reference import reference_for
from gradxval.judge.witness import partial_derivative
from gradxval.model.cases import Case
from gradxval.run.runner import run_cases


@pytest.mark.parametrize(
    "cid, quantity, index",
    [
        ("normal-float64-m7n5-s1", "grad_x", (2,)),
        ("normal-float32-m6n4k3-s2", "grad_x", (3, 2)),
        ("normal-float64-m7n5-s1", "grad_A", (4, 1)),
        ("normal-complex128-m3n4-s3", "grad_A", (2, 3)),
    ],
)
def test_witness_brackets_the_reference(cid, quantity, index):
    case = Case.from_id(cid)
    ref = reference_for(case, case.inputs())
    w = partial_derivative(ref, case, quantity, index)
    exact = ref.values[quantity][index]
    assert w.error < 1e-6 * max(1.0, abs(exact))
    assert w.admits(exact)


def test_witness_is_absent_for_non_finite_inputs():
    case = Case("special", "float32", 4, 3, None, 3)  # inf in A
    ref = reference_for(case, case.inputs())
    assert partial_derivative(ref, case, "grad_x", (0,)) is None


def test_witness_sides_with_the_closed_form_on_saturated_input():
    pytest.importorskip("torch")
    out: list = []
    run_cases(
        [Case.from_id("saturated-float32-m30n20-s3")], ["numpy", "torch"], out.append, isolate=False
    )
    v = next(
        v for v in out if v.backend == "torch" and v.method == "autodiff" and v.quantity == "grad_x"
    )
    note = v.attribution.split("numeric witness")[1]
    assert "siding with numpy/closed_form, torch/closed_form and the reference" in note
    assert "torch/autodiff" not in note


def test_witness_does_not_side_with_a_planted_fault():
    out: list = []
    run_cases(
        [Case.from_id("normal-float32-m8n6-s4")],
        ["numpy", "mutants:FactorTwo"],
        out.append,
        isolate=False,
    )
    v = next(v for v in out if v.backend == "mutants:FactorTwo" and v.quantity == "grad_x")
    assert "siding with numpy/closed_form and the reference" in v.attribution
    assert np.isfinite(v.error_u)
