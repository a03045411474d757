"""The columnar result store and the streaming summary (issue 24): records round-trip through
Parquet unchanged, and the summary built from mergeable per-batch state equals the one built
from the records (the error distribution within its histogram's stated accuracy)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason='the store needs pyarrow: pip install "gradxval[store]"')

from gradxval.judge.accuracy import distributions  # noqa: E402
from gradxval.output.store import StoreWriter, export_jsonl, iter_batches, iter_records  # noqa: E402
from gradxval.output.summary import known_seen, matrix_counts  # noqa: E402
from gradxval.output.tally import BINS_PER_DECADE, Tally  # noqa: E402

DEFAULT = Path(__file__).resolve().parent.parent / "reports" / "default" / "results.jsonl.gz"


@pytest.fixture(scope="module")
def records():
    recs = [json.loads(line) for line in gzip.open(DEFAULT, "rt")]
    return [r for r in recs if "case_done" not in r]


@pytest.fixture(scope="module")
def store(records, tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    w = StoreWriter(d, part_rows=3000)  # several parts
    for r in records:
        w.append(r)
    w.close()
    return d


def test_records_round_trip_through_the_store(records, store, tmp_path):
    assert len(list((store / "results").glob("part-*.parquet"))) == 3
    assert list(iter_records(store)) == records
    with open(tmp_path / "out.jsonl", "w") as f:
        assert export_jsonl(store, f) == len(records)
    assert [json.loads(line) for line in open(tmp_path / "out.jsonl")] == records


def test_the_streaming_summary_equals_the_one_from_records(records, store):
    t = Tally()
    for b in iter_batches(store):
        t.add_batch(b)
    s = t.summary()
    assert s["records"] == len(records)
    assert s["matrix"] == matrix_counts(records)
    assert s["known_seen"] == known_seen(records)
    assert sum(s["counts"].values()) == len(records)
    exact, sketch = distributions(records), s["accuracy"]
    assert exact.keys() == sketch.keys()
    half_bin = 10 ** (1 / (2 * BINS_PER_DECADE))
    for key in exact:
        for q in ("results", "median_u", "p99_u", "max_u"):
            a, b = exact[key][q], sketch[key][q]
            if q in ("results", "max_u") or a in (0, "inf", None):
                assert a == b, (key, q, a, b)
            else:
                assert 1 / half_bin - 1e-9 <= b / a <= half_bin + 1e-9, (key, q, a, b)


def _cases(records):
    import itertools

    return [list(rs) for _, rs in itertools.groupby(records, key=lambda r: r["case_id"])]


def test_tallies_merge_as_if_one(records):
    whole, a, b = Tally(), Tally(), Tally()
    for i, rs in enumerate(_cases(records)):
        whole.add_case(rs)
        (a if i % 3 else b).add_case(rs)
    merged, one = a.merge(b).summary(), whole.summary()
    # merged parts list their disagreements part by part: the same ones, in another order
    for s in (merged, one):
        s["disagreements"].sort(key=lambda d: json.dumps(d, sort_keys=True))
    assert merged == one


def test_every_figure_from_records_streams(records):
    """Case by case, the default run's summary: every figure summary.json computes from the
    records equals build_summary's (the error distribution: tested above)."""
    from gradxval.output.summary import build_summary

    default = json.loads((DEFAULT.parent / "summary.json").read_text())
    exact = build_summary(records, default["environment"], default["run"])
    t = Tally()
    for rs in _cases(records):
        t.add_case(rs)
    s = t.summary()
    for key in ("counts", "unexplained", "disagreements", "errors", "matrix", "known_seen",
                "profiles", "coverage", "accuracy_outliers", "findings"):  # fmt: skip
        assert s[key] == exact[key], key
    assert s["determinism"] == {k: exact["determinism"][k] for k in ("results", "repeat_checked")}
    assert s["disagreements_not_listed"] == 0


def test_findings_and_accuracy_outliers_stream_too():
    """Flagged records are kept (a healthy campaign has few): findings equal build_summary's;
    a systematically biased backend is the same accuracy outlier, with the same counts."""
    from gradxval.campaign import Settings, execute, plan
    from gradxval.judge.evidence import DIAGNOSES
    from gradxval.judge.known import load_registry

    o = execute(plan(Settings(backends="mutants:FactorTwo", dtypes="float32", cases=12)), None,
                isolate=False, follow_up=False)  # fmt: skip
    t = Tally()
    for r in o.records:
        t.add(r)
    assert (
        o.summary["findings"]
        and t.summary(load_registry(), DIAGNOSES)["findings"] == (o.summary["findings"])
    )


def test_a_writer_never_writes_over_a_part(records, tmp_path):
    """Parts are numbered after the last one, and a part that exists is never replaced (found
    in review: numbering by count overwrote a part after a gap)."""
    from gradxval.errors import UsageError
    from gradxval.output.store import import_jsonl

    w = StoreWriter(tmp_path, part_rows=10)
    for r in records[:30]:
        w.append(r)
    w.close()
    (tmp_path / "results" / "part-w0-000000.parquet").unlink()
    w = StoreWriter(tmp_path, part_rows=10)
    for r in records[30:40]:
        w.append(r)
    w.close()
    assert len(list(iter_records(tmp_path))) == 30
    with pytest.raises(UsageError, match="already holds a store"):
        import_jsonl(records[:5], tmp_path)
