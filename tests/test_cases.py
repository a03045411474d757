import numpy as np
import pytest
from gradxval.dtypes import DTYPES, parse_dtypes
from gradxval.errors import UsageError
from gradxval.model.cases import REGIMES, Case, parse_regimes, sample_cases


def test_id_round_trip():
    for cid in ("normal-float32-m37n5k3-s1234", "empty-bfloat16-m0n7-s3"):
        assert Case.from_id(cid).id == cid


@pytest.mark.parametrize(
    "bad, words",
    [
        ("normal-float8-m1n1-s1", "float8"),
        ("weird-float32-m1n1-s1", "weird"),
        ("normal-float32-m1-s1", "malformed"),
        ("empty-float32-m3n3-s1", "m == 0 or n == 0"),
    ],
)
def test_bad_ids_name_the_value(bad, words):
    with pytest.raises(UsageError, match=words):
        Case.from_id(bad)


def test_unknown_dtype_lists_allowed():
    with pytest.raises(UsageError) as e:
        parse_dtypes("float32,float8")
    assert "float8" in str(e.value) and "bfloat16" in str(e.value)
    with pytest.raises(UsageError, match="saturated"):
        parse_regimes("nope")


def test_inputs_are_deterministic_and_rounded():
    c = Case.from_id("normal-bfloat16-m5n4k2-s9")
    a, b = c.inputs(), c.inputs()
    assert a.A.tobytes() == b.A.tobytes() and a.x.tobytes() == b.x.tobytes()
    assert a.A.dtype.name == "bfloat16" and a.x.shape == (4, 2)
    c = Case.from_id("normal-complex64-m5n4-s9")
    assert c.inputs().A.dtype == np.complex64 and c.inputs().x.dtype == np.float32


def test_regimes_produce_what_they_promise():
    sat = Case.from_id("saturated-float64-m3n50-s1").inputs().x
    assert np.all((np.abs(sat) >= 8) & (np.abs(sat) <= 40))
    ext = Case.from_id("extreme-float64-m3n50-s1").inputs().x
    assert np.isinf(ext).any() and np.nanmax(np.abs(ext[np.isfinite(ext)])) > 10
    kinds = {Case("special", "float32", 4, 4, None, s).special_kind for s in range(4)}
    assert kinds == {"nan_x", "nan_A", "zero_A", "inf_A"}
    assert np.isnan(Case("special", "float32", 4, 4, None, 0).inputs().x).any()
    st = Case.from_id("strided-float32-m6n4-s2").inputs().A
    st1 = Case.from_id("strided-float32-m6n4-s1").inputs().A
    assert not st.flags.c_contiguous and not st1.flags.c_contiguous
    assert Case.from_id("empty-float32-m0n4-s2").inputs().A.shape == (0, 4)


def test_sample_cases_is_deterministic_and_covers_everything():
    a = sample_cases(72, seed=5)
    assert [c.id for c in a] == [c.id for c in sample_cases(72, seed=5)]
    assert {c.regime for c in a} == set(REGIMES) and {c.dtype for c in a} == set(DTYPES)
    assert len({c.id for c in a}) == len(a)
    assert any(c.m == 1000 or c.n == 1000 for c in a)
    assert all(0 <= c.m <= 1000 and 0 <= c.n <= 1000 for c in a)


@pytest.mark.parametrize("count", [30, 31, 47, 300])
def test_every_run_of_thirty_cases_covers_every_shape_class_for_every_dtype(count):
    from gradxval.dtypes import DTYPES
    from gradxval.model.cases import SHAPE_CLASSES, shape_classes

    covered = {d: set() for d in DTYPES}
    for c in sample_cases(count, 7):
        covered[c.dtype].update(shape_classes(c))
    assert all(covered[d] == set(SHAPE_CLASSES) for d in DTYPES), covered


def test_short_runs_reach_every_problem_round_robin():
    problems = ("logistic", "tanh", "softplus", "logsigmoid")
    cases = sample_cases(16, 3, problems=problems)
    assert [c.problem for c in cases[:4]] == list(problems)
    assert {c.problem for c in cases} == set(problems)


def test_shape_classes_of_hand_picked_cases():
    from gradxval.model.cases import shape_classes

    assert set(shape_classes(Case.from_id("strided-float32-m5n5k2-s2"))) == {
        "square",
        "k>=2",
        "strided",
    }
    assert set(shape_classes(Case.from_id("normal-float32-m1n300-s1"))) == {"m=1", "wide", "large"}
    assert set(shape_classes(Case.from_id("empty-float32-m0n3-s1"))) == {"empty"}


def test_every_problem_meets_every_regime():
    problems = ("logistic", "tanh", "softplus", "logsigmoid")
    met = {p: set() for p in problems}
    for c in sample_cases(300, 1, problems=problems):
        met[c.problem].add(c.regime)
    assert all(m == set(REGIMES) for m in met.values()), met
