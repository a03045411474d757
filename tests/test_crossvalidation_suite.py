"""The project's own cross-validation run, through its pytest plugin (ini: gradxval_cases)."""


def test_gradxval(gradxval_check):
    gradxval_check.verify()


def test_gradxval_property(gradxval_property):
    gradxval_property()
