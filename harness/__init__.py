"""gradxval: cross-validate autodiff and closed-form gradients across array frameworks.

Importing gradxval imports no framework; backends load lazily through gradxval.backends.

    import gradxval

    @gradxval.function(A="m n", x="n")
    def f(A, x, *, xp, nn):
        return xp.sum((A @ nn.sigmoid(x)) ** 2)

    result = gradxval.check(f)     # every backend, every dtype, against binary128
    assert result.ok
"""

from __future__ import annotations

from gradxval.errors import BackendUnavailable, GradxvalError, Unsupported, UsageError
from gradxval.model.functions import Function, Input, function, labels

__version__ = "0.1.0"

__all__ = [
    "GradxvalError",
    "UsageError",
    "Unsupported",
    "BackendUnavailable",
    "__version__",
    "function",
    "Function",
    "Input",
    "labels",
    "check",
]


def check(target, **options):
    """Check declared functions on every backend; see gradxval.checking.check."""
    from gradxval.checking import check as run

    return run(target, **options)
