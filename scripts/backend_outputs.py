"""Snapshot every backend's outputs, and compare two snapshots bit for bit (a refactor check).

    python scripts/backend_outputs.py snap OUT.pkl      # in the tree before the change
    python scripts/backend_outputs.py snap NEW.pkl      # after it
    python scripts/backend_outputs.py compare OUT.pkl NEW.pkl

snap evaluates, in process, every installed backend x run method x case of the four seed
problems (96 cases, first and second order) and every check method on six suite functions
(8 cases each); compare sorts the differences: results that changed bits (with the largest
difference), results that now raise, results newly computed, changed messages.  Run it from
a directory that holds no other ``gradxval`` package.
"""

from __future__ import annotations

import collections
import pickle
import sys
import warnings

import numpy as np

BACKENDS = ("numpy", "autograd", "jax", "torch", "mygrad")
RUN_METHODS = ("autodiff", "closed_form", "forward", "vmap", "eager")
SUITE = ("softmax_xent", "layer_norm_affine", "gelu_erf", "causal_attention", "kl_softmax", "mlp2")


def _grab(out, key, fn, *args):
    try:
        r = fn(*args)
    except Exception as exc:  # recorded: a method that raises is part of the snapshot
        out[key] = f"{type(exc).__name__}: {exc}"
        return
    if isinstance(r, dict):
        out[key] = {q: None if v is None else np.array(v, copy=True) for q, v in r.items()}
    else:
        out[key] = {"hvp_x": np.array(r, copy=True)}


def snap(path: str) -> None:
    from gradxval import suite
    from gradxval.backends import load
    from gradxval.model.cases import sample_cases
    from gradxval.model.problems import load_problem
    from gradxval.model.sampling import draw, sample

    warnings.simplefilter("ignore")
    backends = {}
    for n in BACKENDS:
        try:
            backends[n] = load(n)
        except Exception as exc:  # not installed here
            print(f"skipping {n}: {exc}")
    out: dict = {}
    for c in sample_cases(96, 5, problems=("logistic", "tanh", "softplus", "logsigmoid")):
        inp, p = c.inputs(), load_problem(c.problem)
        A = c.present(inp.A)
        for n, b in backends.items():
            for m in RUN_METHODS:
                if m in b.methods:
                    _grab(out, (c.id, n, m), b.evaluate_problem, p, m, A, inp.x, c.dtype)
            for m in b.hvp_methods:
                key = (c.id, n, "hvp:" + m)
                _grab(out, key, b.evaluate_hvp, p, m, A, inp.x, inp.v, c.dtype)
    for name in SUITE:
        f = getattr(suite, name)
        for fc in sample(f, 8, 3):
            arrays, directions = draw(f, fc)
            for n, b in backends.items():
                for m in getattr(b, "function_methods", ()):
                    extra = directions if m in ("forward", "hvp") else None
                    _grab(out, (fc.id, n, m), b.run_function, m, f, arrays, fc.dtype, extra)
    with open(path, "wb") as fh:
        pickle.dump(out, fh)
    print(f"{len(out)} results, {sum(isinstance(v, str) for v in out.values())} raised")


def _bits(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def compare(old_path: str, new_path: str, show: int = 10) -> None:
    with open(old_path, "rb") as fh:
        old = pickle.load(fh)
    with open(new_path, "rb") as fh:
        new = pickle.load(fh)
    cats = collections.defaultdict(list)
    for k, x in old.items():
        y = new.get(k, "missing")
        if isinstance(x, str) or isinstance(y, str):
            if isinstance(x, str) and isinstance(y, str):
                if x != y:
                    cats["message changed"].append((k, x, y))
            elif isinstance(x, str):
                cats["newly computed"].append(k)
            else:
                cats["now raises"].append((k, y))
            continue
        changed = []
        for q in sorted(set(x) | set(y)):
            a, b = x.get(q), y.get(q)
            if _bits(a, b):
                continue
            if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
                changed.append((q, "dtype, shape or None"))
            else:
                with np.errstate(all="ignore"):
                    d = np.abs(a.astype(complex) - b.astype(complex))
                changed.append((q, float(np.nanmax(d)) if d.size else 0.0))
        if changed:
            cats["bits changed"].append((k, changed))
    print(f"{len(old)} results compared")
    for cat, items in cats.items():
        print(f"{cat}: {len(items)}")
        for item in items[:show]:
            print("   ", str(item)[:300])


if __name__ == "__main__":
    if sys.argv[1:2] == ["snap"] and len(sys.argv) == 3:
        snap(sys.argv[2])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
