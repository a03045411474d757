from __future__ import annotations

import os

import pytest
from gradxval.run.tuning import WORKER_START_ENV, process_env

# The test processes run as the CLI's workers do (gradxval/tuning.py): idle BLAS and OpenMP
# threads sleep, large allocations get huge pages.  Set here, before the xdist workers start
# (they inherit it, and load numpy after).  Thread counts, and so results, are unchanged.
os.environ.update(process_env())
# and start their workers as the CLI does, from a forkserver (tuning.worker_context); the
# library default, spawn, has its own tests (test_runner.py)
os.environ.setdefault(WORKER_START_ENV, "forkserver")


@pytest.fixture(scope="session")
def registry():
    from gradxval.judge.known import load_registry

    return load_registry()


pytest_plugins = ["pytester"]


def pytest_collection_modifyitems(config, items):
    """Modules marked ``waits`` (timeouts of a hung backend, signals, killed workers: mostly
    sleeping) run first.  xdist's worksteal hands each worker a contiguous half of this order,
    so their waiting overlaps the other worker's computing instead of ending the run alone.
    The sort is stable: every module's tests stay together and in order."""
    items.sort(key=lambda item: item.get_closest_marker("waits") is None)
