"""The command line and the report files it writes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _support import available_backends
from gradxval.cli import main
from gradxval.judge.compare import VERDICTS
from gradxval.output import read_jsonl

SUMMARY_KEYS = {
    "case_id",
    "backend",
    "method",
    "quantity",
    "dtype",
    "regime",
    "error_u",
    "tolerance_u",
    "classification",
    "reproduce",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    backends = ",".join(available_backends())
    code = main(
        [
            "run",
            "--cases",
            "24",
            "--seed",
            "3",
            "--backends",
            backends,
            "--out",
            str(out),
            "--quiet",
        ]
    )
    return out, code


def test_run_writes_three_parseable_files(report):
    out, code = report
    records = read_jsonl(out / "results.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "gradxval.summary/2"
    assert set(summary["counts"]) == set(VERDICTS)
    assert sum(summary["counts"].values()) == len(records)
    assert set(summary["environment"]) >= {"python", "platform", "gradxval", "backends", "flags"}
    for d in summary["disagreements"]:
        assert SUMMARY_KEYS <= set(d) and d["reproduce"].startswith("gradxval replay ")
    known = [d for d in summary["disagreements"] if d["classification"]]
    assert all(r["verdict"] in VERDICTS for r in records)
    md = (out / "report.md").read_text()
    assert "## Agreement matrix" in md and "## Worst results" in md
    assert code == (1 if summary["counts"]["disagree"] + summary["counts"]["error"] else 0)
    assert summary["counts"]["disagree"] == 0 and summary["counts"]["error"] == 0
    # known entries are listed once each, with their count, under a heading that counts them
    n_known = summary["counts"]["known"]
    assert f"## Known disagreements ({n_known})" in md
    assert "## Unexplained disagreements and errors (0)" in md
    for entry in {p for d in known for p in d["classification"].split("+")}:
        assert md.count(f"- **{entry}** (") == 1
    assert "## Coverage" in md and "## Accuracy outliers (0)" in md


def test_replay_reproduces_the_run_bit_for_bit(report, capsys):
    out, _ = report
    records = read_jsonl(out / "results.jsonl")
    picked = next(r for r in records if r["verdict"] in ("agree", "known") and r["error_u"])
    capsys.readouterr()
    assert main(["replay", picked["case_id"], "--backends", picked["backend"], "--json"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    again = next(
        r for r in lines if r["method"] == picked["method"] and r["quantity"] == picked["quantity"]
    )
    for key in ("error_u", "actual", "reference", "worst_index", "verdict"):
        assert again[key] == picked[key], key


def test_replay_prints_reference_and_every_method(capsys):
    assert main(["replay", "normal-float32-m3n2-s1", "--backends", "numpy"]) == 0
    text = capsys.readouterr().out
    assert "reference grad_x" in text and "numpy/closed_form" in text and "agree" in text


@pytest.mark.parametrize(
    "argv, words",
    [
        (["run", "--dtypes", "float8"], "dtype='float8', expected one of float16"),
        (["run", "--backends", "tensorflo"], "backend='tensorflo', expected one of numpy"),
        (["run", "--regimes", "wild"], "regime='wild'"),
        (["run", "--cases", "-1"], "cases=-1"),
        (["replay", "bogus"], "malformed"),
        (["run", "--dtypes", ","], "dtypes=',' names nothing"),
        (["run", "--regimes", ","], "regimes=',' names nothing"),
        (["run", "--timeout", "nan"], "--timeout=nan, expected a finite number"),
        (["run", "--timeout", "0"], "--timeout=0.0"),
        (["run", "--timeout", "-1"], "--timeout=-1.0"),
        (["run", "--backends", "numpy", "--methods", "autodif"], "methods='autodif'"),
        (["replay", "normal-float64-m100000n100000-s1"], "needs about"),
        # refused before any case runs (it used to run every case and then exit 4)
        (
            ["run", "--backends", "numpy,mutants:NotABackend", "--cases", "3", "--quiet"],
            "is not a gradxval Backend: it lacks evaluate",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_strict_turns_known_into_failure(tmp_path):
    args = [
        "run",
        "--cases",
        "2",
        "--regimes",
        "saturated",
        "--dtypes",
        "float32",
        "--backends",
        "torch",
        "--quiet",
        "--in-process",
    ]
    pytest.importorskip("torch")
    assert main(args) == 0
    assert main([*args, "--strict"]) == 1


def test_backends_lists_every_builtin_with_its_dtypes(capsys):
    # `python -m gradxval` itself runs in test_rundir's and test_store_runs' subprocesses
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("numpy", "autograd", "jax", "torch")), out
    assert "float32" in out and "complex128" in out


def test_crash_keeps_results_already_written(tmp_path):
    """Kill a run midway: every line written so far parses."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gradxval",
            "run",
            "--backends",
            "numpy",
            "--cases",
            "5000",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    path = tmp_path / "results.jsonl"
    import time

    deadline = time.time() + 60
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 2000):
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    records = read_jsonl(path)
    assert len(records) > 5 and all("verdict" in r for r in records)


def test_exit_codes_and_commands_are_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for word in ("run", "report", "known", "replay", "check-backend", "check-formula"):
        assert word in text
    for code in ("0", "1", "2", "3", "4", "130", "143"):
        assert f"  {code:>3}  " in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "(default: 120.0)" in text and "(default: 300)" in text and "--startup-timeout" in text
    assert "(default: None)" not in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("gradxval ")


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["run", "--backends", "numpy", "--cases", "0", "--quiet"],
            "nothing tested: the run had 0",
        ),
        (
            ["run", "--backends", "numpy", "--methods", "autodiff", "--cases", "3", "--quiet"],
            "nothing tested",
        ),
        (
            ["run", "--backends", "numpy,mutants:VersionRaises", "--cases", "3", "--quiet"],
            "RuntimeError: no version today",
        ),
        (
            ["run", "--backends", "numpy,broken_plugin:Backend", "--cases", "3", "--quiet"],
            "ImportError: broken_plugin: a dependency is missing",
        ),
        (
            [
                "run",
                "--backends",
                "numpy",
                "--dtypes",
                "float16,float32",
                "--problems",
                "logsumexp_problem:LogSumExp",
                "--cases",
                "4",
                "--quiet",
            ],
            "dtype float16 was asked for by name but judged nothing",
        ),
    ],
)
def test_a_run_that_judged_less_than_asked_exits_4(argv, words, capsys, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent / "examples"))
    assert main(argv) == 4
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_replay_exits_1_on_a_disagreement_and_names_a_crash(capsys):
    assert main(["replay", "normal-float32-m3n2-s1", "--backends", "numpy,mutants:FactorTwo"]) == 1
    assert "disagree" in capsys.readouterr().out
    assert main(["replay", "normal-float32-m3n2-s1", "--backends", "mutants:Crashes"]) == 1
    assert "worker process died" in capsys.readouterr().out


def test_known_lists_every_entry_with_its_scope(capsys):
    assert main(["known"]) == 0
    text = capsys.readouterr().out
    assert "sigmoid-grad-cancellation  [gradxval]" in text
    assert "scope: torch [autodiff, forward, vmap] (torch >=2.3)" in text
    assert "upstream: https://github.com/jax-ml/jax/issues/40385" in text


def test_known_check_names_unseen_entries_and_diagnosed_results(tmp_path, capsys):
    d = tmp_path / "run"
    args = ["run", "--backends", "numpy,mutants:ZeroGradClosedForm", "--cases", "4", "--quiet"]
    assert main([*args, "--out", str(d), "--no-follow-up"]) == 1
    capsys.readouterr()
    assert main(["known", "--check", str(d)]) == 0
    text = capsys.readouterr().out
    assert "entries not seen" in text and "sigmoid-grad-cancellation" in text
    assert "mutants:ZeroGradClosedForm/closed_form: all_zero_gradient" in text


def test_plugin_by_import_string_reproduces_from_anywhere(tmp_path):
    """A verdict names the class's own name, and its reproduce line carries the PYTHONPATH."""
    from gradxval.model.cases import Case
    from gradxval.run.runner import run_cases

    out: list = []
    run_cases(
        [Case.from_id("normal-float32-m7n5-s1")], ["mutants:FactorTwo"], out.append, isolate=False
    )
    v = next(v for v in out if v.quantity == "grad_x")
    assert v.extra["backend_name"] == "factor2"
    tests_dir = str(Path(__file__).parent)
    assert v.reproduce.startswith(f"PYTHONPATH={tests_dir} gradxval replay ")
    run = subprocess.run(v.reproduce, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 1 and "disagree" in run.stdout, run.stderr


def test_replay_computes_the_reference_once(monkeypatch, capsys):
    import gradxval.judge.problem_reference as reference

    calls = []
    real = reference.compute_reference

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(reference, "compute_reference", counting)
    assert main(["replay", "normal-float32-m3n2-s1", "--backends", "numpy"]) == 0
    assert len(calls) == 1


def test_a_closed_output_pipe_is_not_an_internal_error():
    run = subprocess.run(
        f"{sys.executable} -m gradxval known | head -1", shell=True, capture_output=True, text=True
    )
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr
    assert run.stdout.startswith("sigmoid-grad-cancellation")


def test_report_rebuilds_the_summary_the_run_wrote(tmp_path):
    d = tmp_path / "run"
    args = ["run", "--backends", "numpy", "--cases", "5", "--dtypes", "float32,float64"]
    assert main([*args, "--quiet", "--in-process", "--out", str(d)]) == 0
    before = json.loads((d / "summary.json").read_text())
    assert main(["report", str(d)]) == 0
    after = json.loads((d / "summary.json").read_text())
    assert after["run"].pop("rebuilt") is True
    assert after == before  # wall time, platform, flags, dtypes, regimes, problems kept
    assert "wall time None" not in (d / "report.md").read_text()
    assert " on None" not in (d / "report.md").read_text()
