"""Every backend's autodiff and closed form against the reference, in every regime and dtype."""

import numpy as np
import pytest
from _support import available_backends
from gradxval.backends import describe, load
from gradxval.dtypes import DTYPES
from gradxval.errors import Unsupported
from gradxval.judge.compare import judge
from gradxval.judge.problem_reference import reference_for
from gradxval.model.cases import REGIMES, Case
from gradxval.run.runner import evaluate_backend

SHAPES = {
    "normal": "m9n7k2",
    "saturated": "m6n40",
    "extreme": "m5n30k3",
    "special": "m4n5",
    "empty": "m0n6",
    "strided": "m8n5",
}


def pytest_generate_tests(metafunc):
    if "backend_case" in metafunc.fixturenames:
        params, ids = [], []
        for b in available_backends():
            for regime in REGIMES:
                for dtype in DTYPES:
                    seeds = range(4) if regime == "special" else (1,)
                    for s in seeds:
                        cid = f"{regime}-{dtype}-{SHAPES[regime]}-s{s}"
                        params.append((b, cid))
                        ids.append(f"{b}-{cid}")
        metafunc.parametrize("backend_case", params, ids=ids)


def test_backend_against_reference(backend_case, registry):
    name, cid = backend_case
    case = Case.from_id(cid)
    backend = load(name)
    inputs = case.inputs()
    ref = reference_for(case, inputs)
    outcomes = evaluate_backend(backend, case, inputs)
    for method, oc in outcomes.items():
        if case.dtype not in backend.dtypes():
            assert "unsupported" in oc, oc
            continue
        assert "ok" in oc, oc
        for q, val in oc["ok"].items():
            v = judge(case, name, method, q, val, ref, registry)
            if method == "closed_form" or case.regime in ("normal", "empty", "special", "strided"):
                # closed forms use sigma(x) sigma(-x) and must agree in every regime
                ok = {"agree", "overflow"} | ({"known"} if method == "autodiff" else set())
                if name == "numpy" and q == "loss" and case.dtype == "bfloat16":
                    ok.add("known")  # bfloat16-sum-accumulates-in-bfloat16
                if name == "jax" and case.regime == "extreme":
                    ok.add("known")  # subnormal-flush
                assert v.verdict in ok, v.message
            else:
                assert v.verdict in ("agree", "known", "overflow"), v.message


@pytest.mark.parametrize("name", ["jax", "torch", "autograd"])
def test_saturated_autodiff_is_flagged_and_closed_form_agrees(name, registry):
    if not describe(name).available:
        pytest.skip(f"{name} not installed")
    for dtype in ("float32", "float64"):
        case = Case.from_id(f"saturated-{dtype}-m12n60-s3")
        inputs = case.inputs()
        ref = reference_for(case, inputs)
        out = evaluate_backend(load(name), case, inputs)
        auto = judge(
            case, name, "autodiff", "grad_x", out["autodiff"]["ok"]["grad_x"], ref, registry
        )
        closed = judge(
            case, name, "closed_form", "grad_x", out["closed_form"]["ok"]["grad_x"], ref, registry
        )
        assert auto.verdict == "known" and "sigmoid-grad-cancellation" in auto.classification
        assert closed.verdict == "agree", closed.message


def test_complex_gradients_follow_one_convention():
    names = [b for b in available_backends() if "complex128" in load(b).dtypes()]
    case = Case.from_id("normal-complex128-m3n4-s2")
    inputs = case.inputs()
    grads = {
        (b, m): oc["ok"]["grad_A"]
        for b in names
        for m, oc in evaluate_backend(load(b), case, inputs).items()
    }
    first = next(iter(grads.values()))
    for key, g in grads.items():
        np.testing.assert_allclose(g, first, rtol=1e-12, err_msg=str(key))


def test_unsupported_dtype_raises_with_reason():
    if not describe("autograd").available:
        pytest.skip("autograd not installed")
    x = np.zeros(2, dtype=np.float16)
    with pytest.raises(Unsupported, match="float16"):
        load("autograd").evaluate("autodiff", np.zeros((2, 2), np.float16), x, "float16")


@pytest.mark.parametrize(
    "cid",
    [
        "normal-float32-m7n5k3-s1",
        "normal-float64-m6n4-s2",
        "normal-complex128-m5n4k2-s3",
        "normal-bfloat16-m6n5k2-s4",
    ],
)
def test_extra_modes_agree_with_the_reference(cid):
    from gradxval.run.runner import run_cases

    out: list = []
    stats = run_cases(
        [Case.from_id(cid)], available_backends(), out.append, isolate=False, method_spec="all"
    )
    extra = [v for v in out if v.method not in ("autodiff", "closed_form")]
    ran = {(b.name, m) for b in stats.backends for m in b.methods} - {
        (b, m) for b in available_backends() for m in ("autodiff", "closed_form")
    }
    assert {(v.backend, v.method) for v in extra} == ran
    for v in extra:
        assert v.verdict in ("agree", "unsupported"), v.message


def test_repeat_call_must_give_the_same_bits():
    from gradxval.run.runner import run_cases

    out: list = []
    run_cases(
        [Case.from_id("normal-float64-m5n4-s1")],
        ["mutants:Nondeterministic"],
        out.append,
        isolate=False,
    )
    assert {v.verdict for v in out} == {"error"}
    assert "not deterministic: repeating the call changed grad_x at index" in out[0].message
