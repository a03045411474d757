"""The plug-in path of today's problem interface: ``from gradxval.problems import Problem``.

Problems live in gradxval.model.problems; this module keeps plug-ins written against the
earlier flat layout importing unchanged.
"""

from gradxval.model.problems import *  # noqa: F403
from gradxval.model.problems import __all__  # noqa: F401
