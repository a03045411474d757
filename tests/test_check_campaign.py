"""gradxval check as a campaign: shards merge into the whole check, a crashed check resumes
without losing or repeating a case, a baseline fails only what is new, Dask gives the same
records as a local check, and every failure reaches report.html."""

from __future__ import annotations

import json
import textwrap

import pytest
from gradxval.checking import check, merge
from gradxval.cli import main
from gradxval.errors import UsageError

TARGET = "suite:huber,softplus_sum,least_squares"
FAST = dict(backends="numpy", dtypes=("float32", "float64"), cases=6, seed=3)

# one function, declared twice: with a right and with a wrong formula (the same case ids)
FORMULAS = textwrap.dedent(
    """\
    import gradxval


    def right(A, x, *, xp, nn):
        t = xp.tanh(x)
        return {"grad_x": 2 * (1 - t * t) * (A.T @ (A @ t))}


    def wrong(A, x, *, xp, nn):
        t = xp.tanh(x)
        return {"grad_x": 2 * (1 - t) * (A.T @ (A @ t))}  # (1 - t), not (1 - t^2)


    def body(A, x, *, xp, nn):
        return xp.sum((A @ xp.tanh(x)) ** 2)


    good = gradxval.function(A="m n", x="n", formula=right)(body)
    bad = gradxval.function(A="m n", x="n", formula=wrong)(body)
    """
)


def _records(d):
    return [json.loads(line) for line in (d / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    d = tmp_path_factory.mktemp("whole")
    return d, check(TARGET, out=d, **FAST)


def test_shards_merge_into_the_whole_check(whole, tmp_path):
    d, result = whole
    parts = []
    for i in (1, 2, 3):
        parts.append(tmp_path / f"s{i}")
        check(TARGET, out=parts[-1], shard=f"{i}/3", **FAST)
    counts = [len(json.loads((p / "check.json").read_text())["cases"]) for p in parts]
    assert sum(counts) == 18 and min(counts) == 6  # disjoint, and every case in one of them
    merged = merge(tmp_path / "m", parts[::-1])
    assert merged.records == result.records
    assert _records(tmp_path / "m") == _records(d)
    for name in ("counts", "cells", "failures"):
        mine = json.loads((tmp_path / "m" / "summary.json").read_text())[name]
        assert mine == json.loads((d / "summary.json").read_text())[name], name
    with pytest.raises(UsageError, match="shard.s. 2/3 missing"):
        merge(tmp_path / "m2", [parts[0], parts[2]])


def test_a_crashed_check_resumes_without_losing_or_repeating_a_case(whole, tmp_path, monkeypatch):
    import gradxval.checking as checking

    d, result = whole
    real, calls = checking.check_case, []

    def dies_on_the_fifth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("the process dies here")
        return real(*args, **kwargs)

    monkeypatch.setattr(checking, "check_case", dies_on_the_fifth)
    with pytest.raises(RuntimeError):
        check(TARGET, out=tmp_path, **FAST)
    assert len((tmp_path / "done.txt").read_text().split()) == 4
    monkeypatch.setattr(checking, "check_case", real)
    with pytest.raises(UsageError, match="seed=4"):
        check(TARGET, out=tmp_path, resume=True, **{**FAST, "seed": 4})
    calls.clear()
    monkeypatch.setattr(checking, "check_case", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = check(TARGET, out=tmp_path, resume=True, **FAST)
    assert len(calls) == 18 - 4  # the four cases done are not run again
    assert resumed.records == result.records
    assert sorted(map(json.dumps, _records(tmp_path))) == sorted(map(json.dumps, _records(d)))


def test_a_baseline_fails_only_what_is_new(tmp_path):
    path = tmp_path / "formulas.py"
    path.write_text(FORMULAS)
    opts = dict(backends="numpy", dtypes=("float64",), cases=3, seed=1, regimes=("normal",))
    good = check(f"{path}:good", out=tmp_path / "good", **opts)
    assert good.ok
    bad = check(f"{path}:bad", out=tmp_path / "bad", baseline=tmp_path / "good", **opts)
    assert not bad.ok and bad.exit_status == 1
    assert bad.new and all(r["method"] == "formula" for r in bad.new)
    assert "formula grad_x disagree" in (tmp_path / "bad" / "diff.md").read_text()
    again = check(f"{path}:bad", out=tmp_path / "again", baseline=tmp_path / "bad", **opts)
    assert again.failures and not again.new  # the same failures as the base: not new
    assert again.ok and again.exit_status == 0
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert summary["baseline"]["new"] == 0 and summary["failures"] == len(again.failures)


def test_every_failure_is_in_report_html(tmp_path):
    path = tmp_path / "formulas.py"
    path.write_text(FORMULAS)
    result = check(f"{path}:bad", out=tmp_path, backends="numpy", dtypes=("float32", "float64"),
                   cases=30, seed=2, regimes=("normal",))  # fmt: skip
    assert len(result.failures) > 20  # more than report.md lists
    page = (tmp_path / "report.html").read_text()
    for r in result.failures:
        assert r["case"] in page
    assert 'href="#numpy/formula/float32"' in page and 'id="numpy/formula/float32"' in page
    md = (tmp_path / "report.md").read_text()
    assert f"and {len(result.failures) - 20} more" in md


def test_check_options_that_exclude_each_other_are_usage_errors(tmp_path, capsys):
    assert main(["check", TARGET, "--out", str(tmp_path / "a"), "--resume", str(tmp_path)]) == 2
    assert main(["check", TARGET, "--scheduler", "tcp://x:1"]) == 2
    assert main(["check", TARGET, "--shard", "3/2"]) == 2
    assert main(["check", TARGET, "--resume", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "--scheduler needs --executor dask" in err and "1 <= I <= N" in err
    assert "nothing to resume" in err


def test_dask_gives_the_records_of_a_local_check(whole, tmp_path):
    pytest.importorskip("distributed")
    d, result = whole
    on_dask = check(TARGET, out=tmp_path, executor="dask", workers=1, **FAST)
    assert on_dask.records == result.records
    with pytest.raises(UsageError, match="target as a string"):
        from gradxval.suite import BY_NAME

        check(BY_NAME["huber"], executor="dask", **FAST)


def test_check_formula_takes_any_quantity_of_a_declared_function(tmp_path, capsys):
    path = tmp_path / "layer.py"
    path.write_text(textwrap.dedent(
        """\
        import gradxval


        def grads(W, b, x, *, xp, nn):
            s = nn.sigmoid(W @ x + b)
            return {"grad_b": s * (1 - s), "grad_W": (s * (1 - s))[:, None] * x[None, :] * 1.01}


        @gradxval.function(W="m n", b="m", x="n", formula=grads)
        def layer(W, b, x, *, xp, nn):
            return xp.sum(nn.sigmoid(W @ x + b))


        @gradxval.function(x="n")
        def plain(x, *, xp, nn):
            return xp.sum(x * x)
        """
    ))  # fmt: skip
    args = ["--backends", "numpy", "--dtypes", "float64", "--regimes", "normal", "--cases", "3"]
    assert main(["check-formula", f"{path}:layer", *args]) == 1
    out = capsys.readouterr().out
    assert "grad_W     numpy    float64   disagree 3" in out  # the planted 1 % error
    assert "grad_b     numpy    float64   agree 3" in out
    assert "FAILS" in out and "formula grad_W disagree" in out
    assert main(["check-formula", f"{path}:plain", *args]) == 2
    assert "without a formula" in capsys.readouterr().err


def test_a_resume_killed_in_its_first_case_loses_nothing(whole, tmp_path):
    """The kept records are rewritten atomically before any new case runs, and a case is
    listed done only after its records are flushed (found in review: a resume killed in its
    first case used to leave results.jsonl truncated and done.txt complete)."""
    import os
    import subprocess
    import sys

    d, result = whole
    import shutil

    shutil.copytree(d, tmp_path / "c")
    done = (tmp_path / "c" / "done.txt").read_text().split()
    (tmp_path / "c" / "done.txt").write_text("".join(c + "\n" for c in done[:-3]))
    code = (
        "import os, gradxval.checking as c\n"
        "c.check_case = lambda *a, **k: os._exit(9)\n"
        f"c.check({TARGET!r}, resume=True, out={str(tmp_path / 'c')!r}, backends='numpy', "
        "dtypes=('float32', 'float64'), cases=6, seed=3)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], env=dict(os.environ)).returncode == 9
    again = check(TARGET, out=tmp_path / "c", resume=True, **FAST)
    assert again.records == result.records


def test_a_case_id_must_name_the_functions_regime_dtype_and_sizes(capsys):
    for bad, why in (("huber:bogus-float64-m3n2-s1", "regime"),
                     ("huber:normal-float64-m3n2q5-s1", "symbols"),
                     ("huber:normal-float64-n3-s1", "symbols")):  # fmt: skip
        assert main(["check", "suite:huber", "--case", bad, "--backends", "numpy"]) == 2
        assert why in capsys.readouterr().err


def test_a_backend_returning_no_dict_is_an_error_record_not_a_crash():
    from types import SimpleNamespace

    from gradxval.model.sampling import sample
    from gradxval.run.check_case import check_case
    from gradxval.suite import BY_NAME

    f = BY_NAME["huber"]
    broken = SimpleNamespace(function_methods=("autodiff",), run_function=lambda *a: None)
    (c,) = sample(f, 1, 0, ("float64",), ("normal",))
    (r,) = check_case(f, c, {"broken": broken}, None, 1)
    assert r["outcome"] == "error" and "returned NoneType" in r["note"]


def test_check_groups_failures_into_findings(tmp_path, capsys):
    path = tmp_path / "formulas.py"
    path.write_text(FORMULAS)
    args = ["check", f"{path}:bad", "--backends", "numpy", "--dtypes", "float32,float64",
            "--regimes", "normal", "--cases", "8", "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 1
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (f,) = summary["findings"]  # eight failing results, one finding
    assert (f["backend"], f["method"], f["quantity"], f["signature"]) == (
        "numpy",
        "formula",
        "grad_x",
        "wrong value",
    )
    assert f["count"] == summary["failures"] == 8 and f["dtypes"] == ["float32", "float64"]
    assert f"--case {f['smallest_case']} --backends numpy" in out
    assert "## Findings (1)" in (tmp_path / "out" / "report.md").read_text()


def test_a_dask_worker_loads_the_target_again_for_each_check(tmp_path):
    """What a worker loaded is kept within one check only (found in review: a long-lived
    scheduler kept testing the code of the first check)."""
    from gradxval.model.sampling import sample
    from gradxval.model.targets import load_target
    from gradxval.run.dask_executor import _check_task

    path = tmp_path / "f.py"
    body = (
        "import gradxval\n\n\ndef grad(x, *, xp, nn):\n    return {'grad_x': 3 * x}\n\n\n"
        "@gradxval.function(x='n'EXTRA)\ndef f(x, *, xp, nn):\n    return xp.sum(x * x)\n"
    )
    path.write_text(body.replace("EXTRA", ""))
    (c,) = sample(load_target(f"{path}:f")[0], 1, 0, ("float64",), ("normal",))
    args = (f"{path}:f", [c.id], "numpy", None, None, None, [])
    first = _check_task(*args, "check-1")
    path.write_text(body.replace("EXTRA", ", formula=grad"))  # the user adds a (wrong) formula
    assert _check_task(*args, "check-1") == first  # the same check: what was loaded is kept
    again = _check_task(*args, "check-2")  # a new check: loaded again
    assert not any(r["method"] == "formula" for _, rs in first for r in rs)
    assert [r["outcome"] for _, rs in again for r in rs if r["method"] == "formula"] == ["disagree"]
