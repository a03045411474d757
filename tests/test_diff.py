"""gradxval diff on constructed pairs of runs, and on real ones."""

from __future__ import annotations

import json

from gradxval.cli import main
from gradxval.output.diff import diff_records


def _r(
    case,
    verdict,
    error_u=0.5,
    classification=None,
    backend="torch",
    method="autodiff",
    quantity="grad_x",
):
    return {
        "case_id": case,
        "backend": backend,
        "method": method,
        "quantity": quantity,
        "dtype": "float32",
        "verdict": verdict,
        "error_u": error_u,
        "classification": classification,
        "message": f"{verdict} message",
    }


def _s(versions, outliers=()):
    return {"environment": {"backends": versions}, "accuracy_outliers": list(outliers)}


BASE = [
    _r("c1", "agree"),
    _r("c2", "disagree", 50.0),
    _r("c3", "known", 1e6, "sigmoid-grad-cancellation"),
    _r("c4", "agree", 0.4),
    _r("c5", "agree"),
    _r("c6", "agree"),  # only in the base
]
NEW = [
    _r("c1", "disagree", 30.0),  # new
    _r("c2", "agree"),  # fixed
    _r("c3", "known", 1e6, "sigmoid-grad-cancellation+xla-cpu-flush-to-zero"),  # label change
    _r("c4", "agree", 9.0),  # regression: 0.4 u -> 9 u
    _r("c5", "error", None),  # new (error)
    _r("c7", "disagree", 99.0),  # only in the new run: not comparable
]
OUT = {"backend": "b", "method": "m", "dtype": "float16", "quantity": "loss", "message": "drift"}


def test_each_category_on_a_constructed_pair():
    d = diff_records(
        BASE,
        NEW,
        base_summary=_s({"torch": "2.12.0", "jax": "0.10.2"}),
        new_summary=_s({"torch": "2.13.0", "jax": "0.10.2"}, [OUT]),
    )
    assert (d.compared_cases, d.only_in_base, d.only_in_new) == (5, 1, 1)
    # c7 was never judged by the base: its disagreement is new too
    assert [x["case_id"] for x in d.new_problems] == ["c7", "c1", "c5"]
    assert d.new_problems[0]["before"] == "not in the base run"
    assert d.new_problems[1]["before"] == "agree" and d.new_problems[1]["after"] == "disagree"
    assert [x["case_id"] for x in d.fixed] == ["c2"]
    assert [x["case_id"] for x in d.label_changes] == ["c3"]
    assert d.label_changes[0]["after"] == "known sigmoid-grad-cancellation+xla-cpu-flush-to-zero"
    assert [(x["case_id"], x["before"], x["after"]) for x in d.regressions] == [("c4", 0.4, 9.0)]
    assert d.versions == {"torch": ["2.12.0", "2.13.0"]}
    assert d.new_outliers == [OUT] and d.has_new
    md = d.markdown()
    assert "### New disagreements and errors (3)" in md and "- torch: 2.12.0 -> 2.13.0" in md
    assert json.loads(json.dumps(d.to_json()))["has_new"] is True


def test_the_reverse_diff_swaps_new_and_fixed():
    d = diff_records(NEW, BASE)
    assert {x["case_id"] for x in d.fixed} == {"c1", "c5"}
    assert [x["case_id"] for x in d.new_problems] == ["c2"] and d.has_new


def test_disjoint_runs_compare_nothing_and_new_cases_still_count():
    d = diff_records([_r("a", "disagree")], [_r("b", "disagree")])
    assert (d.compared_cases, d.only_in_base, d.only_in_new) == (0, 1, 1)
    assert d.has_new and [x["case_id"] for x in d.new_problems] == ["b"]
    assert not diff_records([_r("a", "disagree")], [_r("b", "agree")]).has_new
    assert "0 cases compared; 1 only in the base and 1 only in the new run" in d.text()


def test_small_growth_below_one_u_is_not_a_regression():
    d = diff_records([_r("a", "agree", 0.01)], [_r("a", "agree", 0.9)])
    assert d.regressions == []


def test_diff_and_baseline_on_real_runs(tmp_path, capsys):
    base, new = tmp_path / "base", tmp_path / "new"
    args = ["run", "--cases", "6", "--quiet", "--no-follow-up", "--in-process"]
    assert main([*args, "--backends", "numpy", "--out", str(base)]) == 0
    assert main([*args, "--backends", "numpy,mutants:FactorTwo", "--out", str(new)]) == 1
    capsys.readouterr()
    assert main(["diff", str(base), str(new), "--markdown", str(tmp_path / "d.md")]) == 1
    out = capsys.readouterr().out
    assert "New disagreements and errors" in out and "mutants:FactorTwo/closed_form" in out
    assert (tmp_path / "d.md").read_text().startswith("## gradxval diff")
    assert main(["diff", str(new), str(new)]) == 0
    # --baseline: the same planted fault in both runs is not new, so the run passes
    again = tmp_path / "again"
    code = main(
        [
            *args,
            "--backends",
            "numpy,mutants:FactorTwo",
            "--out",
            str(again),
            "--baseline",
            str(new),
        ]
    )
    assert code == 0
    assert json.loads((again / "diff.json").read_text())["has_new"] is False
    assert main([*args, "--backends", "numpy", "--baseline", str(tmp_path / "nope")]) == 2
