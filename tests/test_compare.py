"""Verdict logic on planted faults: each must be `disagree`, attributed to the faulty backend."""

from pathlib import Path

import numpy as np
import pytest
from gradxval.dtypes import info
from gradxval.judge.error_model import measure
from gradxval.model.cases import Case
from gradxval.run.runner import run_cases

FAULTS = [
    # (backend spec, case id, quantity that must disagree)
    ("mutants:FactorTwo", "normal-float32-m7n5-s1", "grad_x"),
    ("mutants:SigmaForSigmaPrime", "normal-float64-m7n5k2-s2", "grad_x"),
    ("mutants:MissingTranspose", "normal-float32-m6n6-s3", "grad_x"),
    ("mutants:Float32Inside", "normal-float64-m20n30-s4", "grad_x"),
    ("mutants:Float32Inside", "normal-complex128-m20n30-s4", "grad_A"),
    ("mutants:ConjDropped", "normal-complex64-m5n4-s5", "grad_A"),
    ("mutants:NormSquaredJax", "special-float32-m4n3-s2", "grad_A"),  # zero_A
    # results of 120,000 elements: judged by measure()'s blocked fast path
    ("mutants:ZeroGradClosedForm", "normal-float64-m300n400-s6", "grad_A"),
    ("mutants:GradAMissingFactor2", "normal-complex128-m300n400-s7", "grad_A"),
    ("mutants:Float32Inside", "saturated-float64-m400n300-s8", "grad_A"),
]


def _verdicts(specs, case_ids, **kw):
    out = []
    run_cases([Case.from_id(c) for c in case_ids], specs, out.append, **kw)
    return out


@pytest.mark.parametrize(
    "spec, case_id, quantity", FAULTS, ids=[f[0].split(":")[1] for f in FAULTS]
)
def test_planted_fault_is_detected_and_attributed(spec, case_id, quantity):
    if "Jax" in spec:
        pytest.importorskip("jax")
    verdicts = _verdicts(["numpy", spec], [case_id], isolate=False)
    bad = [v for v in verdicts if v.backend == spec and v.quantity == quantity]
    assert bad and all(v.verdict == "disagree" for v in bad), [v.message for v in bad]
    v = bad[0]
    assert v.classification is None
    assert v.attribution.startswith(f"outlier: {spec}/")
    assert "numpy/closed_form" in v.attribution  # the honest method is named as agreeing
    assert "reference" in v.message and "u" in v.message
    # mutants is importable from tests/ only: the line carries that PYTHONPATH
    assert v.reproduce.endswith(f"gradxval replay {case_id} --backends {spec}")
    assert v.reproduce.startswith("PYTHONPATH=") and v.reproduce.split()[0].endswith("tests")
    honest = [w for w in verdicts if w.backend == "numpy" and w.quantity == quantity]
    assert honest[0].verdict == "agree"


def test_norm_squared_gives_nan_at_zero():
    pytest.importorskip("jax")
    verdicts = _verdicts(["mutants:NormSquaredJax"], ["special-float32-m4n3-s2"], isolate=False)
    gA = next(v for v in verdicts if v.quantity == "grad_A")
    assert gA.actual == "nan" and gA.reference == "0.0"


def test_consensus_against_the_reference_is_said_plainly():
    names = [n for n in ("jax", "torch") if pytest.importorskip(n)]
    verdicts = _verdicts(["numpy", *names], ["saturated-float32-m10n50-s7"], isolate=False)
    auto = [v for v in verdicts if v.method == "autodiff" and v.quantity == "grad_x"]
    assert all(v.verdict == "known" for v in auto)
    assert "agrees with" in auto[0].attribution
    assert "results from 2 backends share the error" in auto[0].attribution
    assert "agreeing with the reference: numpy/closed_form" in auto[0].attribution


def test_attribution_of_one_backends_methods_says_so():
    pytest.importorskip("torch")
    verdicts = _verdicts(
        ["numpy", "torch"], ["saturated-float32-m10n50-s7"], isolate=False, method_spec="all"
    )
    v = next(
        v
        for v in verdicts
        if (v.method, v.quantity) == ("autodiff", "grad_x") and v.backend == "torch"
    )
    assert "methods of torch share the error; no other backend does" in v.attribution
    assert "backends" not in v.attribution.split(";")[0]


def test_measure_nan_patterns_and_overflow():
    di = info("float16")
    ref = np.array([1.0, np.nan, np.inf, 1e6])
    scale, under = np.ones(4), np.ones(4)
    ok = np.array([1.0, np.nan, np.inf, np.inf], dtype=np.float16)
    m = measure(ok, ref, scale, under, di, "float16")
    assert m.error_u == 0 and m.overflow
    for bad in (
        [1.0, 0.0, np.inf, np.inf],
        [1.0, np.nan, -np.inf, np.inf],
        [1.0, np.inf, np.inf, np.inf],
    ):
        assert (
            measure(np.array(bad, np.float16), ref, scale, under, di, "float16").error_u == np.inf
        )
    # a finite result where the reference overflows is an ordinary (huge) error, not overflow
    m = measure(np.array([1.0, np.nan, np.inf, 5.0], np.float16), ref, scale, under, di, "float16")
    assert m.error_u > 1e9 and not m.overflow
    assert (
        measure(ok.astype(np.float32), ref, scale, under, di, "float16").mismatch
        == "dtype float32, expected float16"
    )
    assert "shape" in measure(ok[:3], ref, scale, under, di, "float16").mismatch


def test_known_match_needs_evidence_not_a_name(registry):
    """Half the true saturated grad_x is not what sigma(1 - sigma) gives: it stays disagree."""
    from gradxval.judge.compare import judge
    from gradxval.judge.problem_reference import reference_for

    case = Case.from_id("saturated-float32-m10n50-s7")
    ref = reference_for(case, case.inputs())
    half = (ref.values["grad_x"] / 2).astype(np.float32)
    v = judge(case, "torch", "autodiff", "grad_x", half, ref, registry)
    assert v.verdict == "disagree" and v.classification is None
    zeros = np.zeros(case.x_shape, np.float32)
    v = judge(case, "torch", "autodiff", "grad_x", zeros, ref, registry)
    assert v.verdict == "disagree" and v.classification is None
    assert v.extra["diagnosis"] == ["all_zero_gradient"]
    assert "diagnosis (a hint, not an excuse): every element is exactly 0" in v.message


def test_known_needs_the_library_and_method_in_scope(registry):
    """The same values are known from torch's autodiff, a diagnosis from anything else."""
    from gradxval.judge.compare import judge
    from gradxval.judge.problem_reference import reference_for

    torch = pytest.importorskip("torch")
    case = Case.from_id("saturated-float32-m10n50-s7")
    inp = case.inputs()
    ref = reference_for(case, inp)
    tA = torch.tensor(inp.A)
    tx = torch.tensor(inp.x, requires_grad=True)
    loss = ((tA @ torch.sigmoid(tx)) ** 2).sum()
    (gx,) = torch.autograd.grad(loss, tx)
    gx = gx.numpy()
    assert judge(case, "torch", "autodiff", "grad_x", gx, ref, registry).verdict == "known"
    for backend, method in [
        ("torch", "closed_form"),
        ("numpy", "closed_form"),
        ("mutants:TorchClone", "autodiff"),
        ("gradxval.backends.numpy_backend:NumpyBackend", "autodiff"),
    ]:
        v = judge(case, backend, method, "grad_x", gx, ref, registry)
        assert v.verdict == "disagree", (backend, method, v.message)
        assert v.extra["diagnosis"] == ["derivative_cancellation"]
    # the built-in's own import string is the built-in
    v = judge(
        case,
        "gradxval.backends.torch_backend:TorchBackend",
        "autodiff",
        "grad_x",
        gx,
        ref,
        registry,
    )
    assert v.verdict == "known"


def test_known_is_claimed_for_every_element_or_not_at_all(registry):
    """sigma(1 - sigma) where x saturates, and a 40 u error elsewhere: the known entry explains
    part of the array, so the verdict is disagree and the message shows the unexplained element."""
    from gradxval.judge.compare import judge
    from gradxval.judge.problem_reference import reference_for

    case = Case.from_id("saturated-float64-m10n50-s7")
    ref = reference_for(case, case.inputs())
    y = ref.sigma
    gx = 2 * (y * (1 - y)) * ref.back
    cancelled = np.flatnonzero(
        np.abs(gx - ref.values["grad_x"]) > 1e-3 * np.abs(ref.values["grad_x"])
    )
    assert cancelled.size
    ok = [j for j in range(case.n) if j not in set(cancelled.tolist())]
    j = ok[0]
    gx[j] += 40 * info("float64").u * ref.scale["grad_x"][j]
    v = judge(case, "torch", "autodiff", "grad_x", gx, ref, registry)
    assert v.verdict == "disagree", v.message
    assert v.worst_index == [j]
    assert "explains" in v.message and "not this one" in v.message


def test_combined_entries_cannot_paper_over_a_contradiction(monkeypatch):
    """Entry A explains the failing element but its model is contradicted elsewhere; entry B
    'explains' everything that agrees.  Together they must not make the result known."""
    from gradxval.judge import known as known_mod
    from gradxval.judge.error_model import Measure
    from gradxval.judge.known import KnownEntry, Registry, Scope

    e = np.array([50.0, 0.1, 0.1])  # element 0 fails; 1 and 2 agree
    ms = Measure(e, False, None)
    monkeypatch.setitem(known_mod.EVIDENCE, "model_a", lambda *a: np.array([True, True, False]))
    monkeypatch.setitem(known_mod.EVIDENCE, "model_b", lambda *a: np.array([True, True, True]))
    scope = (Scope(("torch",), ("autodiff",)),)
    entries = [
        KnownEntry("a", "A", "", "model_a", ("grad_x",), (), scope),
        KnownEntry("b", "B", "", "model_b", ("grad_x",), (), scope),
    ]
    case = Case.from_id("normal-float32-m2n3-s1")
    m = Registry(entries).match(case, "torch", "autodiff", "grad_x", None, None, ms, 10.0)
    assert not m.complete and not m.explained[2]
    alone = Registry(entries[1:]).match(case, "torch", "autodiff", "grad_x", None, None, ms, 10.0)
    assert alone.complete


def test_a_plugin_registry_cannot_speak_for_a_builtin(monkeypatch, tmp_path):
    from importlib.metadata import EntryPoint

    from gradxval.errors import UsageError
    from gradxval.judge import known as known_mod

    fake = EntryPoint(name="torch", value="evil_pkg", group="gradxval.known")
    monkeypatch.setattr(
        known_mod, "entry_points", lambda group: [fake] if group == "gradxval.known" else []
    )
    with pytest.raises(UsageError, match="cannot speak for a built-in backend"):
        known_mod.load_registry()


def test_a_systematic_fault_excuses_only_the_bias_its_model_predicts(registry):
    """numpy's bfloat16 loss carries the sequential-sum model's own bias; a result shifted
    beyond it is an accuracy outlier that the known entry does not excuse."""
    from gradxval.judge.accuracy import accuracy_outliers
    from gradxval.model.cases import sample_cases
    from gradxval.run.runner import run_cases

    out: list = []
    cases = sample_cases(200, 5, dtypes=("bfloat16",), regimes=("normal",))
    run_cases(cases, ["numpy"], lambda v: out.append(v.to_json()), isolate=False)
    losses = [r for r in out if r["quantity"] == "loss" and "bias_u" in r["extra"]]
    assert losses and all(
        r["extra"]["explained_by"] == "bfloat16-sum-accumulates-in-bfloat16"
        and "model_bias_u" in r["extra"]
        for r in losses
    )
    for r in losses:  # what a real extra bias of 2 u on top of the fault would look like
        r["extra"]["bias_u"] = r["extra"]["model_bias_u"] + 2.0
    found = [o for o in accuracy_outliers(out) if o["quantity"] == "loss"]
    assert found and "known" not in found[0]
    for r in losses:  # exactly the model's bias: excused if flagged at all
        r["extra"]["bias_u"] = r["extra"]["model_bias_u"]
    assert all("known" in o or o["quantity"] != "loss" for o in accuracy_outliers(out))


def test_measure_memo_and_fast_path_agree_with_the_full_model():
    """The finite fast path and the per-reference memo change nothing a verdict sees."""
    di = info("float64")
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(50)
    scale = np.abs(ref) + 1.0
    under = np.full(50, 1e-300)
    act = ref + rng.standard_normal(50) * 1e-15
    plain = measure(act, ref, scale, under, di, "float64")
    np.testing.assert_array_equal(plain.e, np.abs(act - ref) / (di.u * scale + di.eta * under))
    memo = {}
    first = measure(act, ref, scale, under, di, "float64", memo=memo)
    again = measure(act, ref, scale, under, di, "float64", memo=memo)
    assert len(memo) == 1
    for m in (first, again):
        np.testing.assert_array_equal(m.e, plain.e)
    # one NaN leaves the fast path: that element is infinitely wrong, the rest as before
    bad = act.copy()
    bad[7] = np.nan
    m = measure(bad, ref, scale, under, di, "float64", memo=memo)
    assert m.e[7] == np.inf
    np.testing.assert_array_equal(np.delete(m.e, 7), np.delete(plain.e, 7))


@pytest.mark.parametrize("shape", [(40, 30), (400, 300)])  # the second: scratch arrays
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_bias_from_the_kept_difference_is_the_same_number(dtype, shape):
    """bias_u reusing measure's actual - expected gives the bits it computes on its own."""
    from gradxval.judge.compare import bias_u

    di = info(dtype)
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(shape)
    if dtype == "complex128":
        ref = ref + 1j * rng.standard_normal(shape)
    scale = np.abs(ref) * rng.uniform(1, 11, ref.shape)  # a tenth too cancelled to count
    act = ref * (1 + 3e-16 * rng.standard_normal(ref.shape))
    under = np.ones(ref.shape)
    plain = bias_u(act, ref, scale, di, memo={})
    memo: dict = {}
    for _ in range(2):  # the second time through the memo's scratch arrays
        m = measure(act, ref, scale, under, di, dtype, memo=memo)
        assert m.diff is not None
        assert bias_u(act, ref, scale, di, memo=memo, diff=m.diff) == plain
    everything = bias_u(act, ref, np.abs(ref), di, memo={})
    m = measure(act, ref, np.abs(ref), under, di, dtype)
    assert bias_u(act, ref, np.abs(ref), di, diff=m.diff) == everything


def test_the_registry_is_loaded_again_when_its_file_changes(tmp_path):
    from gradxval.judge.known import load_registry

    src = tmp_path / "known.toml"
    src.write_text("")
    first = load_registry(src)
    assert load_registry(src) is first and first.entries == []
    main = load_registry(plugins=False)
    src.write_text(
        (Path(__file__).parents[1] / "harness" / "judge" / "known.toml").read_text(encoding="utf-8")
    )
    again = load_registry(src)
    assert again is not first and [e.id for e in again.entries] == [e.id for e in main.entries]


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_large_results_measured_in_blocks_match_whole_arrays(dtype):
    """Blocks (with a memo) and whole arrays (without) give the same errors, worst element
    (the first of equal maxima, across blocks) and fallback where a value is not finite."""
    di = info(dtype)
    rng = np.random.default_rng(3)
    shape = (300, 400)  # 120,000 elements: four blocks
    ref = rng.standard_normal(shape)
    if dtype == "complex128":
        ref = ref + 1j * rng.standard_normal(shape)
    ref[250, 10] = ref[20, 5]
    scale, under = np.abs(ref) + 1, np.ones(shape)
    act = ref + 1e-15 * rng.standard_normal(shape)
    act[250, 10] = act[20, 5] = ref[20, 5] + 1e-6  # equal maxima, in the fourth and first block
    plain = measure(act, ref, scale, under, di, dtype)
    memo: dict = {}
    blocked = measure(act, ref, scale, under, di, dtype, memo=memo)
    np.testing.assert_array_equal(blocked.e, plain.e)
    assert blocked.worst == plain.worst == (20, 5) and blocked.error_u == plain.error_u
    np.testing.assert_array_equal(blocked.diff, act - ref)
    act[299, 399] = np.nan  # the last block: the general path, the same answer
    plain = measure(act, ref, scale, under, di, dtype)
    blocked = measure(act, ref, scale, under, di, dtype, memo=memo)
    np.testing.assert_array_equal(blocked.e, plain.e)
    assert blocked.worst == plain.worst == (299, 399) and blocked.error_u == np.inf
