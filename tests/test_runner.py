"""Fault isolation: a backend that raises, hangs, mutates or returns the wrong type."""

import sys

import pytest
from gradxval.backends import parse_backends
from gradxval.errors import BackendUnavailable, UsageError
from gradxval.model.cases import Case
from gradxval.run.runner import run_cases

pytestmark = pytest.mark.waits  # first in the run: see conftest.py

CASES = ["normal-float32-m5n4-s1", "normal-float64-m3n2k2-s2"]


def _run(specs, **kw):
    out = []
    stats = run_cases([Case.from_id(c) for c in CASES], specs, out.append, **kw)
    return out, stats


def test_raising_backend_is_an_error_and_the_run_goes_on():
    out, stats = _run(["mutants:Raises", "numpy"], isolate=False)
    assert stats.cases == 2
    errs = [v for v in out if v.backend == "mutants:Raises"]
    assert len(errs) == 6 and all(v.verdict == "error" for v in errs)
    assert "RuntimeError: planted failure" in errs[0].message
    assert all(v.verdict == "agree" for v in out if v.backend == "numpy")


def test_hanging_backend_times_out_and_is_restarted():
    out, stats = _run(["mutants:Hangs", "numpy"], isolate=True, timeout=1)
    hung = [v for v in out if v.backend == "mutants:Hangs"]
    assert len(hung) == 6 and all("timed out after 1s" in v.message for v in hung)
    assert all(v.verdict == "agree" for v in out if v.backend == "numpy")


def test_input_mutation_and_non_numpy_results_are_errors():
    out, _ = _run(["mutants:Mutates", "mutants:ReturnsList"], isolate=False)
    mut = [v for v in out if v.backend.endswith("Mutates")]
    # inputs arrive read-only: the write raises at the backend's own line
    assert mut and all(v.verdict == "error" for v in mut)
    assert all("read-only" in v.message and "mutants.py:" in v.message for v in mut), mut[0].message
    lst = [v for v in out if v.backend.endswith("ReturnsList")]
    assert all(v.verdict == "error" and "grad_x is a builtins.list" in v.message for v in lst)


def test_a_sneaky_write_is_caught_and_the_next_method_gets_clean_inputs():
    """Copies are shared by a backend's calls only while they stay unwritten."""
    out, _ = _run(["mutants:SneakyWriter", "mutants:SneakyWriterThenRaises"], isolate=False)
    ad = [v for v in out if v.method == "autodiff"]
    cf = [v for v in out if v.method == "closed_form"]
    assert ad and all(v.verdict == "error" for v in ad)
    assert all("modified its input" in v.message for v in ad if v.backend.endswith("Writer"))
    assert all("planted failure" in v.message for v in ad if v.backend.endswith("Raises"))
    assert len(cf) == 12 and all(v.verdict == "agree" for v in cf), [v.message for v in cf]


def test_isolated_and_in_process_runs_give_the_same_verdicts():
    a, _ = _run(["numpy", "mutants:FactorTwo"], isolate=False)
    b, _ = _run(["numpy", "mutants:FactorTwo"], isolate=True)
    strip = [(v.case_id, v.backend, v.quantity, v.verdict, v.error_u) for v in a]
    assert strip == [(v.case_id, v.backend, v.quantity, v.verdict, v.error_u) for v in b]


def test_unknown_backend_lists_known_ones():
    with pytest.raises(UsageError) as e:
        parse_backends("numpy,tensorflo")
    assert "tensorflo" in str(e.value) and "torch" in str(e.value)


def test_backend_that_fails_to_load_is_unavailable_or_skipped():
    with pytest.raises(BackendUnavailable, match="no_such_module"):
        _run(["no_such_module:Backend"], isolate=True)
    out, stats = _run(["no_such_module:Backend", "numpy"], isolate=True, skip_unavailable=True)
    assert "no_such_module:Backend" in stats.skipped and {v.backend for v in out} == {"numpy"}


def test_a_write_that_changes_no_bytes_is_still_caught():
    out, _ = _run(["mutants:WritesWithoutChange"], isolate=False)
    assert out and all(v.verdict == "error" and "read-only" in v.message for v in out)


def test_a_method_asked_for_by_name_is_never_replaced():
    """numpy has no autodiff: asking for it gives unsupported verdicts, not closed_form ones."""
    out, _ = _run(["numpy"], isolate=False, method_spec=("autodiff",))
    assert out and {v.method for v in out} == {"autodiff"}
    assert all(v.verdict == "unsupported" and "no method 'autodiff'" in v.message for v in out)


def test_same_bits_compares_every_bit_in_place():
    import ml_dtypes
    import numpy as np
    from gradxval.run.runner import same_bits

    a = np.array([1.0, -0.0, np.nan, 3.0])
    assert same_bits(a, a.copy())
    assert not same_bits(a, np.array([1.0, 0.0, np.nan, 3.0]))  # -0.0 is not 0.0
    other_nan = a.copy()
    other_nan.view(np.uint64)[2] ^= 1  # another NaN payload
    assert np.isnan(other_nan[2]) and not same_bits(a, other_nan)
    assert not same_bits(a, a.astype(np.float32))  # dtype
    assert not same_bits(a, a.reshape(2, 2))  # shape
    m = np.arange(24.0).reshape(4, 6)
    assert same_bits(m[:, ::2], np.ascontiguousarray(m[:, ::2]))  # any layout
    assert not same_bits(m[:, ::2], m[:, 1::2])
    z = (np.arange(6) + 1j * np.arange(6)).reshape(2, 3)
    assert same_bits(z.T, z.T.copy())
    w = z.copy()
    w[1, 2] = complex(w[1, 2].real, -w[1, 2].imag)
    assert not same_bits(z, w)
    b = np.array([1.5, -2.25], dtype=ml_dtypes.bfloat16)
    assert same_bits(b, b.copy())
    assert not same_bits(b, np.array([1.5, 2.25], dtype=ml_dtypes.bfloat16))


def test_workers_start_with_idle_threads_asleep_and_the_caller_keeps_its_environment(
    monkeypatch,
):
    import os

    from gradxval.run.tuning import PROCESS_ENV, keep_freed_memory

    for k in PROCESS_ENV:
        monkeypatch.delenv(k, raising=False)
    _, stats = _run(["mutants:EnvReporter"], isolate=True)
    assert stats.backends[0].version == "4/PASSIVE/1"
    assert not any(k in os.environ for k in PROCESS_ENV)  # only the workers got it
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user's own setting wins
    _, stats = _run(["mutants:EnvReporter"], isolate=True)
    assert stats.backends[0].version == "4/ACTIVE/1"
    assert keep_freed_memory() is sys.platform.startswith("linux")


def test_each_worker_sees_the_callers_environment_as_it_is_at_the_workers_start(monkeypatch):
    """Workers fork from a server started with the first one: a variable the caller sets or
    removes later is in the next worker's os.environ, where Python code and the frameworks
    that load in the worker read it (what numpy's BLAS read when it loaded is the server's)."""
    monkeypatch.delenv("GRADXVAL_TEST_MARK", raising=False)
    versions = []
    for mark in ("-", "one", "two", None):
        if mark in ("one", "two"):
            monkeypatch.setenv("GRADXVAL_TEST_MARK", mark)
        elif mark is None:
            monkeypatch.delenv("GRADXVAL_TEST_MARK")
        _, stats = _run(["mutants:MarkReporter"], isolate=True)
        versions.append(stats.backends[0].version)
    assert versions == ["-", "one", "two", "-"]


def test_spawned_workers_give_the_same_verdicts_and_a_bad_start_method_is_named(monkeypatch):
    from gradxval.run.tuning import WORKER_START_ENV

    def verdicts():
        return sorted((v.case_id, v.backend, v.method, v.quantity, v.verdict) for v in _run(
            ["mutants:FactorTwo", "numpy"], isolate=True)[0])  # fmt: skip

    forked = verdicts()
    monkeypatch.setenv(WORKER_START_ENV, "spawn")
    assert verdicts() == forked and {v[-1] for v in forked} == {"agree", "disagree"}
    monkeypatch.setenv(WORKER_START_ENV, "fork")
    with pytest.raises(UsageError, match=r"GRADXVAL_WORKER_START='fork'.*forkserver, spawn"):
        _run(["numpy"], isolate=True)


def test_the_cli_tunes_its_own_process_where_the_user_set_nothing(monkeypatch):
    import os

    from gradxval.run.tuning import PROCESS_ENV, process_env, tune_own_process

    for k in PROCESS_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "30")
    assert process_env() == {k: v for k, v in PROCESS_ENV.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    tune_own_process()
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "30"  # the user's
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    assert process_env() == {}


def test_after_a_crash_each_reply_and_each_failure_is_its_own_cases():
    """A worker that dies with cases in flight is restarted and gets the unanswered cases
    again, in order, before newer ones: each reply is judged as its own case (they were
    judged as other cases' before), and a later crash is charged to the case that caused it,
    not to an innocent one queued behind newer cases (which also made two crashes five cases
    apart look consecutive and quarantined the backend)."""
    shapes = ["m2n3", "m7n3", "m4n5", "m5n2", "m3n6", "m6n4", "m7n2", "m3n3", "m2n4"]
    ids = [f"normal-float64-{s}-s{i + 1}" for i, s in enumerate(shapes)]
    out: list = []
    stats = run_cases([Case.from_id(c) for c in ids], ["mutants:CrashesOnM7"], out.append,
                      isolate=True)  # fmt: skip
    crashed = {v.case_id for v in out if v.verdict == "error"}
    assert crashed == {"normal-float64-m7n3-s2", "normal-float64-m7n2-s7"}, {
        (v.case_id, v.message[:60]) for v in out if v.verdict != "agree"}  # fmt: skip
    assert all(v.verdict == "agree" for v in out if v.case_id not in crashed)
    assert not stats.quarantined


def test_a_library_caller_spawns_its_workers_unless_it_asks(monkeypatch):
    """A library caller's process-wide forkserver (its preload list, its environment) is its
    own: gradxval forks from one only in its CLI's process or when asked."""
    from gradxval.run import tuning

    monkeypatch.delenv(tuning.WORKER_START_ENV, raising=False)
    monkeypatch.setattr(tuning, "_OWN_PROCESS", False)
    assert tuning.worker_context().get_start_method() == "spawn"
    monkeypatch.setattr(tuning, "_OWN_PROCESS", True)
    assert tuning.worker_context().get_start_method() == "forkserver"
    monkeypatch.setattr(tuning, "_OWN_PROCESS", False)
    monkeypatch.setenv(tuning.WORKER_START_ENV, "forkserver")
    assert tuning.worker_context().get_start_method() == "forkserver"
