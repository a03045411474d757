"""pytest plugin: gradxval's cross-validation as test items (registered through pytest11)."""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    group = parser.getgroup("gradxval", "gradxval cross-validation")
    group.addoption("--gradxval-backends", default=None, help="backends, comma list or 'all'")
