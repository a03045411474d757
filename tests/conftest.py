from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def registry():
    from gradxval.known import load_registry

    return load_registry()


pytest_plugins = ["pytester"]
