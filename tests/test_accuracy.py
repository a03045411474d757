"""Accuracy outliers: a systematic shift inside every per-case tolerance still fails the run."""

from __future__ import annotations

import pytest
from gradxval.cli import main
from gradxval.judge.accuracy import accuracy_outliers, distributions, sign_test
from gradxval.model.cases import sample_cases
from gradxval.run.runner import run_cases


def test_sign_test():
    assert sign_test(10, 10) == 1.0
    assert sign_test(21, 0) < 1e-6 < sign_test(20, 0)
    assert sign_test(0, 24) == sign_test(24, 0)


@pytest.fixture(scope="module")
def records():
    torch = pytest.importorskip("torch")
    del torch
    out: list = []
    cases = sample_cases(48, 11, dtypes=("float16", "float32"), regimes=("normal",))
    run_cases(
        cases,
        ["numpy", "torch", "mutants:SystematicDrift"],
        lambda v: out.append(v.to_json()),
        isolate=False,
        method_spec=("closed_form",),
    )
    return out


def test_a_drift_inside_every_tolerance_is_an_accuracy_outlier(records):
    drift = [r for r in records if r["backend"] == "mutants:SystematicDrift"]
    assert drift and all(r["verdict"] in ("agree", "overflow") for r in drift)  # case by case
    found = accuracy_outliers(records)
    assert found and {o["backend"] for o in found} == {"mutants:SystematicDrift"}
    assert {o["dtype"] for o in found} == {"float16", "float32"}
    assert all(o["lower"] == 0 and o["p_value"] < 1e-6 for o in found)


def test_honest_closed_forms_are_not_outliers(records):
    honest = [r for r in records if r["backend"] != "mutants:SystematicDrift"]
    assert accuracy_outliers(honest) == []


def test_error_distributions_per_backend_method_dtype(records):
    d = distributions(records)
    row = d["numpy/closed_form float16"]
    assert row["results"] == 24 * 3 and 0 <= row["median_u"] <= row["p99_u"] <= row["max_u"]


def test_an_accuracy_outlier_fails_the_run_unless_allowed(capsys):
    pytest.importorskip("torch")
    args = [
        "run",
        "--backends",
        "numpy,torch,mutants:SystematicDrift",
        "--methods",
        "closed_form",
        "--dtypes",
        "float32",
        "--regimes",
        "normal",
        "--cases",
        "40",
        "--quiet",
        "--in-process",  # the flag and the exit status are under test, not the workers
    ]
    assert main(args) == 1
    assert "accuracy outlier mutants:SystematicDrift/closed_form" in capsys.readouterr().out
    assert main([*args, "--allow-accuracy-outliers"]) == 0
