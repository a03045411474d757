"""A short soak in the test suite: honest backends raise no false alarm on normal inputs.
(scripts/soak.py runs the long one: 10,000 cases, figures in docs/soak-normal.md.)"""

from _support import available_backends
from gradxval.model.cases import sample_cases
from gradxval.run.runner import run_cases, select_methods


def test_short_soak_has_no_unexplained_disagreement():
    cases = sample_cases(36, seed=7, regimes=("normal",), pool_size=6)
    out: list = []
    stats = run_cases(cases, available_backends(), out.append, isolate=False)
    assert stats.cases == 36
    bad = [v.message for v in out if v.verdict in ("disagree", "error")]
    assert not bad, bad[:3]
    # every backend, method and supported dtype was judged, not skipped
    judged = {(v.backend, v.method, v.dtype) for v in out if v.verdict != "unsupported"}
    for info in stats.backends:
        for method in select_methods(info.methods):
            for dtype in info.dtypes:
                assert (info.name, method, dtype) in judged
