"""The empty regime: a size 0 where the function allows it; a value where mathematics gives
one (an empty sum is 0, its gradient an empty array), undefined where it gives none."""

from __future__ import annotations

import numpy as np
import pytest
from gradxval.errors import UsageError
from gradxval.model.functions import Input, function
from gradxval.model.sampling import FunctionCase, can_be_empty, draw, parse_case_id, sample
from gradxval.run.check_case import check_case
from gradxval.suite import BY_NAME


def _run(case_id, backends, methods=None):
    from gradxval.backends import load

    case = parse_case_id(case_id)
    return check_case(BY_NAME[case.function], case, {b: load(b) for b in backends}, methods, 1)


def test_empty_cases_set_one_size_to_zero_and_keep_declared_lower_bounds():
    f = BY_NAME["least_squares"]
    cases = sample(f, 12, 1, ("float32",), ("empty",))
    assert cases and all(c.regime == "empty" for c in cases)
    for c in cases:
        assert sum(v == 0 for _, v in c.sizes) == 1, c.id
        arrays, directions = draw(f, c)
        assert any(a.size == 0 for a in arrays.values())
    # det_laplace declares n >= 1: it has no empty cases, and says so when asked for them alone
    assert can_be_empty(BY_NAME["det_laplace"]) == ()
    assert {c.regime for c in sample(BY_NAME["det_laplace"], 20, 1)} == {
        "normal", "saturated", "extreme", "special", "strided",
    }  # fmt: skip
    with pytest.raises(UsageError, match="no empty cases"):
        sample(BY_NAME["det_laplace"], 4, 1, None, ("empty",))


def test_a_label_count_is_never_zero():
    f = BY_NAME["softmax_xent"]
    label_sizes = {i.classes for i in f.inputs.values() if i.domain == "labels"}
    assert label_sizes and not label_sizes & set(can_be_empty(f))


def test_an_empty_sum_is_zero_and_every_backend_agrees():
    """least squares with no rows: 0, gradients 0 and empty, in every backend."""
    recs = _run("least_squares:empty-float32-m0n3-s5", ("numpy", "autograd"))
    assert recs and {r["outcome"] for r in recs} == {"agree"}, recs

    from gradxval.backends import load

    numpy = load("numpy")

    class NaNOnEmpty(type(numpy)):  # a backend that calls an empty sum NaN
        name = "nan_on_empty"

        def run_function(self, method, function, arrays, dtype, extra=None):
            out = super().run_function(method, function, arrays, dtype, extra)
            return {q: np.full_like(v, np.nan) if q == "loss" else v for q, v in out.items()}

    case = parse_case_id("least_squares:empty-float32-m0n3-s5")
    recs = check_case(BY_NAME["least_squares"], case, {"nan_on_empty": NaNOnEmpty()}, None, 1)
    assert [r["outcome"] for r in recs if r["quantity"] == "loss"] == ["disagree"]


def test_no_value_at_an_empty_input_is_undefined_whatever_a_backend_does():
    """k-means with no centers: the min over none has no value; the reference cannot run
    and a backend that raises there is not wrong."""
    recs = _run("kmeans:empty-float64-c0d3n4-s9", ("numpy", "autograd"))
    assert recs and {r["outcome"] for r in recs} == {"undefined"}, recs
    assert all("no value at this empty input" in r["note"] for r in recs)


def test_a_body_that_raises_on_a_normal_case_is_still_a_usage_error():
    @function(x="n")
    def max_only(x, *, xp, nn):
        return xp.max(x) / 0.0 if x.shape[0] > 99 else xp.max(x)

    from gradxval.backends import load

    case = FunctionCase("max_only", "empty", "float64", (("n", 0),), 3)
    recs = check_case(max_only, case, {"numpy": load("numpy")}, None, 1)
    assert {r["outcome"] for r in recs} == {"undefined"}

    @function(x="n")
    def broken(x, *, xp, nn):  # raises in the reference engine only (its arrays are Vars)
        return xp.sum(x) + (1.0 / 0.0 if hasattr(x, "parents") else 0.0)

    case = FunctionCase("broken", "normal", "float64", (("n", 2),), 3)
    with pytest.raises(UsageError, match="ZeroDivisionError"):
        check_case(broken, case, {"numpy": load("numpy")}, None, 1)


def test_scipys_softmax_of_an_empty_axis_is_a_known_fault_and_only_that():
    """scipy.special.softmax raises on an empty axis where the entropy is 0; the registry
    names it for numpy. The same error from a function without softmax is an error."""
    recs = _run("entropy_softmax:empty-float32-n0-s4", ("numpy", "autograd"))
    by = {(r["backend"], r["method"]): r for r in recs}
    assert by[("numpy", "value")]["outcome"] == "known"
    assert by[("numpy", "value")]["note"] == "scipy-softmax-raises-on-empty-axis"
    assert {r["outcome"] for r in recs if r["backend"] == "autograd"} == {"agree"}

    from gradxval.backends import load

    numpy = load("numpy")

    class RaisesAlike(type(numpy)):
        name = "raises_alike"

        def run_function(self, method, function, arrays, dtype, extra=None):
            np.max(np.zeros(0))  # the same message, from no softmax
            return super().run_function(method, function, arrays, dtype, extra)

    case = parse_case_id("least_squares:empty-float32-m0n3-s5")
    recs = check_case(BY_NAME["least_squares"], case, {"numpy": RaisesAlike()}, None, 1)
    assert {r["outcome"] for r in recs} == {"error"}, recs


def test_the_check_command_runs_the_empty_regime_over_the_suite(tmp_path):
    from gradxval.checking import plan

    pairs = plan(list(BY_NAME.values()), 2, 1, None, ("empty",))
    names = {f.name for f, _ in pairs}
    assert "det_laplace" not in names and "least_squares" in names
    with pytest.raises(UsageError, match="regimes"):
        plan([BY_NAME["det_laplace"], BY_NAME["ode_rk4"]], 2, 1, None, ("empty",))


def test_a_broken_body_at_an_empty_input_is_still_a_usage_error():
    """Undefined is for bodies that cannot run only because a size is 0: one that fails with
    the sizes made 1 too (an operation the engine lacks, a non-scalar return) is the user's."""
    from gradxval.backends import load

    @function(x="n")
    def lacks_op(x, *, xp, nn):
        return xp.sum(xp.nonexistent_op(x))

    @function(x="n")
    def not_scalar(x, *, xp, nn):
        return x * 2.0

    case = FunctionCase("f", "empty", "float64", (("n", 0),), 3)
    for f in (lacks_op, not_scalar):
        with pytest.raises(UsageError, match="reference engine cannot evaluate"):
            check_case(f, case, {"numpy": load("numpy")}, None, 1)


def test_the_same_message_from_outside_scipys_softmax_is_not_the_fault():
    """The fault is named where scipy's softmax raised, not wherever its message appears: a
    function that calls softmax on 0 rows of 3 (which scipy handles) and a backend that raises
    the message from numpy's own max are an error."""
    from gradxval.backends import load

    @function(x="m c", P=Input("m c", diff=False))
    def rows(x, P, *, xp, nn):
        return xp.sum(nn.softmax(x, axis=-1) * P)

    numpy = load("numpy")

    class RaisesAlike(type(numpy)):
        name = "numpy"

        def run_function(self, method, function, arrays, dtype, extra=None):
            np.max(np.zeros(0))
            return super().run_function(method, function, arrays, dtype, extra)

    case = FunctionCase("rows", "empty", "float32", (("c", 3), ("m", 0)), 4)
    assert {r["outcome"] for r in check_case(rows, case, {"numpy": numpy}, None, 1)} == {"agree"}
    recs = check_case(rows, case, {"numpy": RaisesAlike()}, None, 1)
    assert {r["outcome"] for r in recs} == {"error"}, recs
