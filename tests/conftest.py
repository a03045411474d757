from __future__ import annotations

import os

import pytest
from gradxval.tuning import THREAD_ENV

# Idle BLAS and OpenMP threads sleep, as in the CLI's own processes (gradxval/tuning.py): set
# here, before numpy loads in the xdist workers, which inherit it.  Thread counts, and so
# results, are unchanged; only the CPU that spinning threads take from the other worker goes.
for _k, _v in THREAD_ENV.items():
    os.environ.setdefault(_k, _v)


@pytest.fixture(scope="session")
def registry():
    from gradxval.known import load_registry

    return load_registry()


pytest_plugins = ["pytester"]
