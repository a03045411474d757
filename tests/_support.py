"""Helpers shared by the test modules (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

from gradxval.backends import describe

BUILTIN = ("numpy", "autograd", "jax", "torch")


def available_backends() -> list[str]:
    return [b for b in BUILTIN if describe(b).available]
