"""The package's error types: one base, subclasses where callers must tell them apart."""

from __future__ import annotations

__all__ = ["GradxvalError", "UsageError", "Unsupported", "BackendUnavailable"]


class GradxvalError(Exception):
    """Base class of every error gradxval raises on purpose."""


class UsageError(GradxvalError, ValueError):
    """A bad option value: the message names it and the allowed ones."""


class Unsupported(GradxvalError):
    """A backend cannot compute this dtype or method; recorded apart from a disagreement."""


class BackendUnavailable(GradxvalError):
    """A backend's framework is missing or fails to import."""


def expected(name: str, value: object, allowed) -> UsageError:
    """Build the standard 'name=value, expected one of ...' error."""
    return UsageError(f"{name}={value!r}, expected one of {', '.join(map(str, allowed))}")
