"""gradxval: cross-validate autodiff and closed-form gradients across array frameworks.

Importing gradxval imports no framework; backends load lazily through gradxval.backends.
"""

from __future__ import annotations

from .errors import BackendUnavailable, GradxvalError, Unsupported, UsageError

__version__ = "0.1.0"

__all__ = ["GradxvalError", "UsageError", "Unsupported", "BackendUnavailable", "__version__"]
