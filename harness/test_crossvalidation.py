"""gradxval's cross-validation as a test module: ``pytest --pyargs gradxval``.

Options: --gradxval-backends, --gradxval-dtypes, --gradxval-regimes, --gradxval-cases,
--gradxval-seed, --gradxval-strict, --gradxval-report (or the matching ini keys).
"""


def test_gradxval(gradxval_check):
    gradxval_check.verify()


def test_gradxval_property(gradxval_property):
    """Hypothesis over shape, dtype, regime and seed; a failure shrinks to the minimal case."""
    gradxval_property()
