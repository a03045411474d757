"""The calibration suite as pytest items: ``pytest --pyargs gradxval.suite.calibration``.

Each function becomes one test item per case (the gradxval plugin collects declared functions
named like tests); ``--gradxval-cases``, ``--gradxval-backends``, ``--gradxval-dtypes`` and
``--gradxval-seed`` apply.
"""

from gradxval.suite import SUITE

for _f in SUITE:
    globals()[f"test_{_f.name}"] = _f
del _f
