from __future__ import annotations

import os

import pytest
from gradxval.run.tuning import process_env

# The test processes run as the CLI's workers do (gradxval/tuning.py): idle BLAS and OpenMP
# threads sleep, large allocations get huge pages.  Set here, before the xdist workers start
# (they inherit it, and load numpy after).  Thread counts, and so results, are unchanged.
os.environ.update(process_env())


@pytest.fixture(scope="session")
def registry():
    from gradxval.judge.known import load_registry

    return load_registry()


pytest_plugins = ["pytester"]
