"""vmap for declared functions: a batch of two cases (this one and a sibling draw), each
member's loss and gradients judged against its own reference."""

from __future__ import annotations

import numpy as np
import pytest
from gradxval.model.sampling import parse_case_id
from gradxval.run.check_case import check_case
from gradxval.suite import BY_NAME

CASE = "softmax_xent:normal-float32-k3m4n2-s11"  # W, b, x and integer labels, all batched


@pytest.mark.parametrize("name", ["jax", "torch"])
def test_vmap_batches_every_input_and_agrees(name):
    pytest.importorskip(name)
    from gradxval.backends import load

    case = parse_case_id(CASE)
    f = BY_NAME[case.function]
    recs = check_case(f, case, {name: load(name)}, ("vmap",), 1)
    assert {r["quantity"] for r in recs} == set(f.quantities(1))
    assert {r["outcome"] for r in recs} == {"agree"}, recs


def test_a_vmap_that_mixes_batch_members_disagrees_and_names_the_member():
    pytest.importorskip("jax")
    from gradxval.backends import load

    jax = load("jax")

    class FirstMemberTwice(type(jax)):  # answers the first member's gradients for both
        name = "first_member_twice"

        def run_function(self, method, function, arrays, dtype, extra=None):
            out = super().run_function(method, function, arrays, dtype, extra)
            return {q: np.stack([v[0], v[0]]) for q, v in out.items()}

    case = parse_case_id(CASE)
    recs = check_case(BY_NAME[case.function], case, {"mixed": FirstMemberTwice()}, ("vmap",), 1)
    assert {r["outcome"] for r in recs} == {"disagree"}, recs
    assert {r["member"] for r in recs} == {"softmax_xent:normal-float32-k3m4n2-s12"}


def test_a_backend_without_vmap_says_so():
    from gradxval.backends import load

    case = parse_case_id("least_squares:normal-float64-m3n2-s5")
    recs = check_case(BY_NAME["least_squares"], case, {"numpy": load("numpy")}, ("vmap",), 1)
    assert recs == []  # numpy does not offer vmap: nothing is judged, nothing claimed

    autograd = load("autograd")

    class AskedAnyway(type(autograd)):
        name = "asked_anyway"
        function_methods = (*type(autograd).function_methods, "vmap")

    recs = check_case(BY_NAME["least_squares"], case, {"a": AskedAnyway()}, ("vmap",), 1)
    assert [(r["outcome"], r["note"]) for r in recs] == [
        ("unsupported", "asked_anyway has no vmap")
    ]


def test_a_strided_input_gives_a_strided_batch():
    from gradxval.backends.base import _batch

    a = np.arange(12.0).reshape(3, 4)[:, ::2]  # a view: non-contiguous
    b = -np.arange(6.0).reshape(3, 2)
    batch = _batch(a, b)
    assert not batch.flags.c_contiguous
    np.testing.assert_array_equal(batch, np.stack([a, b]))
    assert _batch(np.ones(3), np.zeros(3)).flags.c_contiguous
