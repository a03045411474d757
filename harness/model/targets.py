"""What `gradxval check` is pointed at: FILE.py:NAME, module:NAME, suite or suite:NAME.

An error in the user's file is a usage error naming the file, the line and what is wrong.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path

from gradxval.errors import GradxvalError, UsageError
from gradxval.model.functions import Function

__all__ = ["load_target"]


def load_target(target: str) -> list[Function]:
    """Functions named by ``FILE.py:NAME``, ``module:NAME``, ``suite`` or ``suite:NAME``."""
    if target == "suite" or target.startswith("suite:"):
        from gradxval.suite import BY_NAME, SUITE

        if target == "suite":
            return list(SUITE)
        names = target.split(":", 1)[1].split(",")
        missing = [n for n in names if n not in BY_NAME]
        if missing:
            raise UsageError(f"suite:{missing[0]}: no such function; the suite has "
                             f"{', '.join(BY_NAME)}")  # fmt: skip
        return [BY_NAME[n] for n in names]
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"{target!r}: expected FILE.py:NAME, module:NAME, suite or suite:NAME")
    try:
        if path.endswith(".py"):
            file = Path(path)
            if not file.is_file():
                raise UsageError(f"{path}: no such file")
            spec = importlib.util.spec_from_file_location(f"_gradxval_user_{file.stem}", file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(path)
    except GradxvalError:
        raise
    except Exception as exc:
        if isinstance(exc, SyntaxError):  # its message names the file and line already
            raise UsageError(f"{path}: SyntaxError: {exc}") from None
        # the line in the user's file, not in the import machinery
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if Path(f.filename).name == Path(path).name]  # fmt: skip
        line = f" (line {frames[-1].lineno})" if frames else ""
        raise UsageError(f"{path}: {type(exc).__name__}: {exc}{line}") from None
    if not hasattr(module, name):
        found = [k for k, v in vars(module).items() if isinstance(v, Function)]
        raise UsageError(f"{path} has no {name!r}; its declared functions: "
                         f"{', '.join(found) or 'none'}")  # fmt: skip
    obj = getattr(module, name)
    objs = obj if isinstance(obj, (list, tuple)) else [obj]
    for o in objs:
        if not isinstance(o, Function):
            raise UsageError(
                f"{path}:{name} is a {type(o).__name__}, not a declared function: decorate it "
                f'with @gradxval.function(input="shape", ...)'
            )
    return list(objs)
