"""gradxval's per-case check against the checks users would otherwise reach for.

    python benchmarks/peers.py [--sizes 10,100,1000,3000] [--reps 7] [--whole-process]

Same function, f(A, x) = ||A sigmoid(x)||^2 in float64, gradient with respect to (A, x), on
the same inputs (the gradxval case normal-float64-m{n}n{n}-s{seed}, m = n).  In-process: each
tool is warmed up on its own inputs first, then the tools run round-robin, one call each per
round, and the table gives medians and gradxval's ratio to each peer.  Whole-process: a fresh
interpreter per call (imports and compilation included; PYTHONDONTWRITEBYTECODE as this
environment sets it), gradxval as `gradxval replay ID` (its worker processes, the reference and
every verdict), each peer as a `python -c` script that imports its framework and runs one check.
With --tuned, every tool runs in a process started and tuned as gradxval starts its workers
(idle BLAS threads asleep, huge pages, freed memory kept: gradxval/tuning.py); without, in a
plain process, as a user's script would call gradxval's API.

What each row checks:
  gradxval            loss, grad_x and grad_A of 7 results (numpy closed form; autograd, jax and
                      torch autodiff and closed form) elementwise against a double-double
                      reference, condition-scaled, plus input-mutation and determinism checks
  gradcheck fast      torch autodiff only: one random projection u^T J v against a central
                      finite difference (torch.autograd.gradcheck(fast_mode=True))
  jax check_grads     jax autodiff only: the VJP in one random direction against a central
                      finite difference (jax.test_util.check_grads(order=1, modes=['rev']))
  autograd check_grads  autograd only: the same, one random direction (order=1, modes=['rev'])
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

BACKENDS = ["numpy", "autograd", "jax", "torch"]


def _case(n: int, seed: int):
    from gradxval.model.cases import Case

    return Case("normal", "float64", n, n, None, seed)


def _tools():
    """name -> (prepare(inputs) -> call) for the in-process comparison."""
    import autograd.numpy as anp
    import jax
    import jax.numpy as jnp
    import torch
    from autograd.test_util import check_grads as ag_check
    from gradxval.run.runner import run_cases
    from jax.test_util import check_grads as jax_check

    def gradxval_prep(case):
        sink = []
        return lambda: run_cases([case], BACKENDS, sink.append, isolate=False)

    def torch_prep(case):
        inp = case.inputs()
        A = torch.tensor(inp.A, requires_grad=True)
        x = torch.tensor(inp.x, requires_grad=True)

        def f(A, x):
            return (A @ torch.sigmoid(x)).pow(2).sum()

        return lambda: torch.autograd.gradcheck(f, (A, x), fast_mode=True)

    def jax_prep(case):
        inp = case.inputs()

        def f(A, x):
            return jnp.sum((A @ jax.nn.sigmoid(x)) ** 2)

        def call():
            with jax.enable_x64(True):
                A, x = jnp.asarray(inp.A), jnp.asarray(inp.x)
                assert A.dtype == jnp.float64
                jax_check(f, (A, x), order=1, modes=["rev"])

        return call

    def autograd_prep(case):
        inp = case.inputs()

        def f(A, x):
            return anp.sum(anp.dot(A, 1 / (1 + anp.exp(-x))) ** 2)

        return lambda: ag_check(lambda A, x: f(A, x), modes=["rev"], order=1)(inp.A, inp.x)

    return {
        "gradxval": gradxval_prep,
        "gradcheck fast": torch_prep,
        "jax check_grads": jax_prep,
        "autograd check_grads": autograd_prep,
    }


def in_process(sizes: list[int], reps: int) -> list[dict]:
    tools = _tools()
    rows = []
    for n in sizes:
        case = _case(n, 7)
        calls = {name: prep(case) for name, prep in tools.items()}
        for call in calls.values():  # warm-up: imports, compiles, first-touch
            call()
        times = {name: [] for name in calls}
        r = reps if n < 3000 else max(3, reps // 2)
        for _ in range(r):
            for name, call in calls.items():
                t = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t)
        rows.append({"n": n, **{k: statistics.median(v) * 1e3 for k, v in times.items()}})
    return rows


_PEER_SCRIPTS = {
    "gradcheck fast": (
        "import torch\n"
        "from gradxval.model.cases import Case\n"
        "i = Case('normal', 'float64', {n}, {n}, None, 7).inputs()\n"
        "A = torch.tensor(i.A, requires_grad=True); x = torch.tensor(i.x, requires_grad=True)\n"
        "f = lambda A, x: (A @ torch.sigmoid(x)).pow(2).sum()\n"
        "assert torch.autograd.gradcheck(f, (A, x), fast_mode=True)\n"
    ),
    "jax check_grads": (
        "import jax, jax.numpy as jnp\n"
        "from jax.test_util import check_grads\n"
        "from gradxval.model.cases import Case\n"
        "i = Case('normal', 'float64', {n}, {n}, None, 7).inputs()\n"
        "f = lambda A, x: jnp.sum((A @ jax.nn.sigmoid(x)) ** 2)\n"
        "with jax.enable_x64(True):\n"
        "    check_grads(f, (jnp.asarray(i.A), jnp.asarray(i.x)), order=1, modes=['rev'])\n"
    ),
    "autograd check_grads": (
        "import autograd.numpy as anp\n"
        "from autograd.test_util import check_grads\n"
        "from gradxval.model.cases import Case\n"
        "i = Case('normal', 'float64', {n}, {n}, None, 7).inputs()\n"
        "f = lambda A, x: anp.sum(anp.dot(A, 1 / (1 + anp.exp(-x))) ** 2)\n"
        "check_grads(f, modes=['rev'], order=1)(i.A, i.x)\n"
    ),
}


def _wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{cmd} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return wall


def whole_process(sizes: list[int], reps: int) -> list[dict]:
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    rows = []
    for n in sizes:
        cmds = {
            "gradxval": [
                sys.executable,
                "-m",
                "gradxval",
                "replay",
                f"normal-float64-m{n}n{n}-s7",
                "--backends",
                ",".join(BACKENDS),
            ],
            **{k: [sys.executable, "-c", v.format(n=n)] for k, v in _PEER_SCRIPTS.items()},
        }
        times = {k: [] for k in cmds}
        for _ in range(reps):
            for name, cmd in cmds.items():
                times[name].append(_wall(cmd))
        rows.append({"n": n, **{k: statistics.median(v) * 1e3 for k, v in times.items()}})
    return rows


def _table(rows: list[dict], unit: str) -> str:
    peers = [k for k in rows[0] if k not in ("n", "gradxval")]
    head = "| n | gradxval | " + " | ".join(f"{p} | ratio" for p in peers) + " |"
    out = [head, "|---" * (2 + 2 * len(peers)) + "|"]
    for r in rows:
        cells = [str(r["n"]), f"{r['gradxval']:.1f}"]
        for p in peers:
            cells += [f"{r[p]:.1f}", f"{r['gradxval'] / r[p]:.1f}x"]
        out.append("| " + " | ".join(cells) + " |")
    return f"({unit}, median)\n\n" + "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000,3000")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--whole-process", action="store_true", help="also whole processes")
    ap.add_argument("--whole-sizes", default="1000")
    ap.add_argument("--whole-reps", type=int, default=3)
    ap.add_argument(
        "--tuned",
        action="store_true",
        help="run every tool in a process started and tuned as gradxval's workers are",
    )
    args = ap.parse_args()
    if args.tuned:
        from gradxval.run.tuning import process_env, tune_own_process

        if process_env():  # glibc reads its tunables when a process starts
            env = {**os.environ, **process_env()}
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
        tune_own_process()
    np.seterr(all="ignore")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print("## In-process, warm\n")
    print(_table(in_process(sizes, args.reps), "ms per check"))
    if args.whole_process:
        print("\n## Whole process, one case\n")
        whole = [int(s) for s in args.whole_sizes.split(",") if s]
        print(_table(whole_process(whole, args.whole_reps), "ms per process"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
