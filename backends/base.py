"""The backend interface: a small adapter per framework, every method written once here.

A backend (an *adapter*) says how its framework is reached: ``xp`` (its array namespace),
``to_backend``/``to_numpy`` (arrays in and out), ``scope(dtype)`` (precision switches),
``nn_namespace()`` (its library operations under gradxval's names), and its autodiff as
functional transforms of a scalar ``f(*primals)``:

    value_and_grad(f, argnums) -> g(*primals) -> (value, grads)   reverse mode, composable
    jvp(f, primals, tangents)  -> (value, tangent)                forward mode
    jit(fn), vmap(fn, in_axes, out_axes), jacfwd(f, argnum)       optional (None: absent)

Every method of ``gradxval run`` (the ||A phi(x)||^2 problems: autodiff, eager, forward, vmap,
closed_form and the Hessian routes) and of ``gradxval check`` (declared functions: autodiff,
jit, forward, hvp, value, formula) is built here from those, on the problem's or function's
one body.  numpy arrays in, numpy arrays out; a dtype or method a backend lacks raises
``Unsupported``.

Plug-ins written against the older interface (``_evaluate``, ``autodiff(fn, A, x, dtype)``,
``_hvp``, ``formula_namespace``, ``_differentiate``) keep working: where a subclass defines one
of those, it is used instead of the adapter's route (docs/plugins.md).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import numpy as np
from gradxval.dtypes import DTYPES, info
from gradxval.errors import Unsupported

__all__ = ["Backend", "Result"]

# quantity -> numpy array: loss (0-d, real dtype), grad_x (shape of x), grad_A (shape of A)
Result = dict
_RUN_QUANTITIES = ("loss", "grad_x", "grad_A")


def _overrides(obj, name: str) -> bool:
    """Whether ``obj``'s class defines ``name`` itself (an older plug-in's hook)."""
    return getattr(type(obj), name, None) is not getattr(Backend, name, None)


def _batch(a, b) -> np.ndarray:
    """a and b stacked on a new leading axis, laid out as ``a`` is: a non-contiguous input
    (the strided regime) gives a non-contiguous batch."""
    from gradxval.model.sampling import strided_view

    a = np.asarray(a)
    batch = np.stack([a, np.asarray(b)])
    return batch if a.flags.c_contiguous else strided_view(batch)


class Backend:
    """One framework, adapted: see the module docstring for what a subclass provides."""

    name: ClassVar[str] = ""
    # the run's methods: autodiff (reverse mode, compiled where the backend compiles), eager
    # (reverse mode not compiled), forward (gradients by forward mode), vmap (per-column
    # gradients vmapped over x's batch axis), closed_form (the problem's formula in ``xp``)
    methods: ClassVar[tuple[str, ...]] = ("autodiff", "closed_form")
    # declared functions' methods: autodiff, jit, forward (a JVP), hvp, value, formula, vmap
    # (loss and gradients of a batch of two cases, vmapped)
    function_methods: ClassVar[tuple[str, ...]] = ()
    supported: ClassVar[tuple[str, ...]] = DTYPES
    unsupported_reasons: ClassVar[dict[str, str]] = {}
    # dtype -> why declared functions cannot run in it here (on top of unsupported_reasons)
    function_unsupported: ClassVar[dict[str, str]] = {}
    # second order (hvp_x): fwd_over_rev (jvp of the gradient), rev_over_rev (the gradient of
    # <gradient, v>); every backend also has closed_form, and a plug-in with ``hvp`` gets "hvp"
    hvp_routes: ClassVar[tuple[str, ...]] = ()
    # the run's methods besides autodiff and closed_form that are judged on every problem, not
    # only the logistic (each one triaged: its results on the others explained)
    problem_methods: ClassVar[tuple[str, ...]] = ()
    hvp_route: ClassVar[str] = "fwd_over_rev"  # the route of a declared function's "hvp"
    # True for backends that compile per (shape, dtype): the isolated runner then spreads their
    # cases over several worker processes, each (shape, dtype) always to the same one
    compiles: ClassVar[bool] = False
    # gradients of complex inputs come back conjugated (jax.grad, autograd): turned into
    # torch's convention, dL/dRe + i dL/dIm (model/problems.py)
    conj_grads: ClassVar[bool] = False
    # forward mode pushes one tangent per entry: grad_A by it only for A this small, and by a
    # loop of JVPs (no jacfwd) only for inputs this small
    forward_max: ClassVar[int] = 4096
    forward_loop_max: ClassVar[int] = 256
    forward_real_only: ClassVar[bool] = False  # jacfwd rejects complex inputs (torch.func)

    # ---- the adapter: what a subclass says about its framework
    xp = None
    jit = None
    vmap = None
    jacfwd = None

    def version(self) -> str:
        raise NotImplementedError

    def flags(self) -> dict[str, str]:
        """Precision switches in effect, for the report header."""
        return {}

    def to_backend(self, a: np.ndarray):
        return a

    def to_numpy(self, t) -> np.ndarray:
        return np.asarray(t)

    def scope(self, dtype: str):
        return np.errstate(all="ignore")

    def nn_namespace(self):
        """This framework's library operations under gradxval's names (model.nn.OPS)."""
        raise Unsupported(f"{self.name} offers no nn namespace")

    def value_and_grad(self, f, argnums):
        raise Unsupported(f"{self.name} has no reverse-mode autodiff")

    def jvp(self, f, primals, tangents):
        raise Unsupported(f"{self.name} has no forward-mode autodiff")

    def vjp(self, f, primals, cotangent):
        """The gradients of the scalar ``f(*primals)`` seeded with the output cotangent
        ``cotangent`` (a scalar of the output's dtype): the framework's VJP as users call it."""
        raise Unsupported(f"{self.name} has no VJP with a given cotangent")

    def reverse(self, f, primals):
        """(value, gradients) of ``f(*primals)`` by reverse mode as users call it: the "autodiff"
        method.  A framework whose usual path is not the functional one overrides it (torch)."""
        return self.value_and_grad(f, tuple(range(len(primals))))(*primals)

    def hvp(self, fn, A: np.ndarray, x: np.ndarray, v: np.ndarray, dtype: str) -> np.ndarray:
        """Plug-in hook: the Hessian of ``fn(A, x, xp)`` with respect to x applied to v, by
        this framework's autodiff (any route).  Returns a numpy array of x's shape and dtype."""
        raise Unsupported(f"{self.name} has no second-order autodiff")

    # ---- what the harness calls
    def dtypes(self) -> tuple[str, ...]:
        return self.supported

    @property
    def hvp_methods(self) -> tuple[str, ...]:
        """The methods that compute hvp_x: closed_form, the routes, and "hvp" for the hook."""
        hook = ("hvp",) if _overrides(self, "hvp") else ()
        return ("closed_form", *self.hvp_routes, *hook)

    def formula_namespace(self):
        """(xp, to_backend, to_numpy, scope): evaluating a formula in this framework."""
        if self.xp is None:
            raise Unsupported(f"{self.name} offers no array namespace for formulas")
        return self.xp, self.to_backend, self.to_numpy, self.scope

    def _require(self, dtype: str) -> None:
        """Raise Unsupported, with the backend's reason, for a dtype it does not support."""
        if dtype not in self.supported:
            reason = self.unsupported_reasons.get(dtype, "not supported by this backend")
            raise Unsupported(f"{self.name} does not support {dtype}: {reason}")

    def _cached(self, key, make):
        """One object per key (a compiled program, a bound body): jit-compiling frameworks
        cache their programs by the function object, so it must be the same one each time."""
        cache = self.__dict__.setdefault("_fns", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def _key(self, problem):
        """A cache key for ``problem`` (and the body it holds now): its identity, not its
        name (two problems may share one), the object kept alive so the id is not reused."""
        kept = self.__dict__.setdefault("_problems", {})
        fn = getattr(getattr(problem, "function", None), "fn", None)
        kept[id(problem)], kept[id(fn)] = problem, fn
        return id(problem), id(fn)

    def _compiled(self, key, fn, compile_it: bool = True):
        return self._cached(key, lambda: self.jit(fn)) if compile_it and self.jit else fn

    @staticmethod
    def _out(to_numpy, t, conj: bool = False):
        a = None if t is None else np.asarray(to_numpy(t))
        return np.conj(a) if conj and a is not None and a.dtype.kind == "c" else a

    # ---- the ||A phi(x)||^2 problems (gradxval run)
    def evaluate(self, method: str, A: np.ndarray, x: np.ndarray, dtype: str) -> Result:
        """Return {'loss', 'grad_x', 'grad_A'} of the seed problem by ``method`` in ``dtype``."""
        info(dtype)
        if method not in self.methods:
            raise Unsupported(
                f"{self.name} has no method {method!r}; it has {', '.join(self.methods)}"
            )
        self._require(dtype)
        return self._evaluate(method, A, x, dtype)

    def _evaluate(self, method: str, A: np.ndarray, x: np.ndarray, dtype: str) -> Result:
        from gradxval.model.problems import DEFAULT_PROBLEM, load_problem

        return self._run_problem(load_problem(DEFAULT_PROBLEM), method, A, x, dtype)

    def evaluate_problem(self, problem, method: str, A, x, dtype: str) -> Result:
        """Like ``evaluate``, for any Problem; the seed problem goes through ``evaluate`` (so a
        plug-in's own ``_evaluate`` serves it)."""
        from gradxval.model.problems import DEFAULT_PROBLEM

        if problem.name == DEFAULT_PROBLEM:
            return self.evaluate(method, A, x, dtype)
        info(dtype)
        if dtype not in problem.dtypes:
            raise Unsupported(f"problem {problem.name} is defined for {', '.join(problem.dtypes)}")
        self._require(dtype)
        if method == "autodiff" and "autodiff" in self.methods and _overrides(self, "autodiff"):
            return self.autodiff(problem.autodiff_loss(self._nn_or_none(problem)), A, x, dtype)
        if method not in ("autodiff", "closed_form", *self.problem_methods):
            # forward, vmap and eager run on other problems too, but a backend's results there
            # are judged only once triaged (problem_methods): a plug-in's forward mode may
            # meet a problem's saturation in ways its registry does not know yet
            raise Unsupported(f"{self.name}/{method} runs the {DEFAULT_PROBLEM} problem only")
        return self._run_problem(problem, method, A, x, dtype)

    def autodiff(self, fn, A, x, dtype):  # the older plug-in hook (see evaluate_problem)
        raise Unsupported(f"{self.name} has no autodiff for other problems")

    def library(self, name: str):
        """Older plug-in hook: the framework's own phi for the activation ``name``, or None.
        New backends give ``nn_namespace()`` instead."""
        return None

    def _nn_or_none(self, problem=None):
        if problem is not None and _overrides(self, "library"):  # an older plug-in's phi
            phi = self.library(problem.name)
            op = getattr(getattr(problem, "activation", None), "nn_op", None)
            return SimpleNamespace(**{op: phi}) if phi is not None and op else None
        try:
            return self.nn_namespace()
        except Unsupported:
            return None

    def _loss(self, problem):
        """The problem's loss as autodiff sees it, f(A, x), written with this framework's own
        phi (nn): one object per problem, for the compile caches."""

        def make():
            fn = problem.autodiff_loss(self._nn_or_none(problem))
            return lambda A, x: fn(A, x, self.xp)

        return self._cached(("loss", self._key(problem)), make)

    def _run_problem(self, problem, method: str, A, x, dtype: str) -> Result:
        # formula_namespace: the adapter's parts, or an older plug-in's own
        xp, to_backend, to_numpy, scope = self.formula_namespace()
        with scope(dtype):
            # A as the case presents it (the strided regime's A is not contiguous)
            tA, tx = to_backend(A), to_backend(x)
            if method == "closed_form":  # the built-in problems' compiled too (jax)
                closed = lambda A, x: problem.closed_form(A, x, xp)  # noqa: E731
                compile_it = getattr(problem, "compile_closed_form", False)
                key = ("closed_form", self._key(problem))
                out = self._compiled(key, closed, compile_it)(tA, tx)
                return {
                    q: self._out(to_numpy, t) for q, t in zip(_RUN_QUANTITIES, out, strict=True)
                }
            f = self._loss(problem)
            if method in ("autodiff", "eager"):
                run = self._compiled(
                    (method, f), lambda A, x: self.reverse(f, (A, x)), method == "autodiff"
                )
                loss, (gA, gx) = run(tA, tx)
            elif method == "forward":
                loss, gA, gx = self._forward(f, tA, tx, A)
            elif method == "vmap":
                loss, gA, gx = self._vmapped(f, tA, tx)
            else:
                raise Unsupported(f"{self.name} has no method {method!r}")
        return {
            "loss": self._out(to_numpy, loss),
            "grad_x": self._out(to_numpy, gx),
            "grad_A": self._out(to_numpy, gA, self.conj_grads),
        }

    def _forward(self, f, tA, tx, A):
        """Gradients by forward mode; grad_A only for real A of at most forward_max entries."""
        if self.forward_real_only and A.dtype.kind == "c":
            raise Unsupported(f"{self.name}'s jacfwd takes real inputs only")
        with_A = A.dtype.kind != "c" and A.size <= self.forward_max
        if self.jacfwd is None:  # one JVP per entry
            if tx.size > self.forward_loop_max:
                raise Unsupported(
                    f"forward mode one tangent at a time: x has {tx.size} entries > "
                    f"{self.forward_loop_max}"
                )
            with_A = with_A and A.size <= self.forward_loop_max
            gx = self._jacfwd_loop(f, (tA, tx), 1)
            gA = self._jacfwd_loop(f, (tA, tx), 0) if with_A else None
            return f(tA, tx), gA, gx

        def run(A, x):
            gA = self.jacfwd(f, 0)(A, x) if with_A else None
            return f(A, x), gA, self.jacfwd(f, 1)(A, x)

        return self._compiled(("forward", f, with_A), run)(tA, tx)

    def _jacfwd_loop(self, f, primals, argnum):
        v = np.asarray(primals[argnum])

        def of_one(p):
            return f(*primals[:argnum], p, *primals[argnum + 1 :])

        out = np.zeros(v.shape, np.result_type(v, np.float32) if v.dtype.kind == "f" else v.dtype)
        for i in np.ndindex(v.shape):
            e = np.zeros_like(v)
            e[i] = 1
            out[i] = self.to_numpy(self.jvp(of_one, (primals[argnum],), (self.to_backend(e),))[1])
        return out.astype(v.dtype)

    def _vmapped(self, f, tA, tx):
        """The batch loss is a sum of per-column losses: the per-column gradient vmapped."""
        if self.vmap is None:
            raise Unsupported(f"{self.name} has no vmap")
        if tx.ndim != 2:
            raise Unsupported("vmap needs a batch axis: x of shape (n, k)")

        def run(A, x):
            per = self.vmap(self.value_and_grad(f, (0, 1)), (None, 1), (0, (0, 1)))
            values, (gA, gx) = per(A, x)
            return self.xp.sum(values), self.xp.sum(gA, axis=0), gx

        return self._compiled(("vmap", f), run)(tA, tx)

    def evaluate_hvp(self, problem, method: str, A, x, v, dtype: str) -> np.ndarray:
        """hvp_x of ``problem`` by ``method``: closed_form, a route from hvp_routes, or the
        plug-in hook "hvp".  A method it lacks raises Unsupported, with the reason."""
        info(dtype)
        if method not in self.hvp_methods:
            raise Unsupported(
                f"{self.name} has no second-order method {method!r}; it has "
                f"{', '.join(self.hvp_methods)}"
            )
        if dtype not in problem.dtypes:
            raise Unsupported(f"problem {problem.name} is defined for {', '.join(problem.dtypes)}")
        self._require(dtype)
        if method == "hvp":
            return self.hvp(problem.autodiff_loss(self._nn_or_none(problem)), A, x, v, dtype)
        if method != "closed_form" and _overrides(self, "_hvp"):
            return self._hvp(
                method, problem.autodiff_loss(self._nn_or_none(problem)), A, x, v, dtype
            )
        xp, to_backend, to_numpy, scope = self.formula_namespace()
        with scope(dtype):
            tA, tx, tv = (to_backend(a) for a in (A, x, v))
            if method == "closed_form":
                out = problem.hvp_closed_form(tA, tx, tv, xp)
                if out is None:
                    raise Unsupported(f"problem {problem.name} defines no second order")
                return self._out(to_numpy, out)
            f = self._loss(problem)

            def run(A, x, v):
                (hv,) = self._hvp_of(method, lambda x: f(A, x), (x,), (v,))
                return hv

            return self._out(to_numpy, self._compiled((method, f), run)(tA, tx, tv))

    def _hvp(self, method: str, fn, A, x, v, dtype: str) -> np.ndarray:  # older plug-in hook
        raise Unsupported(f"{self.name} has no second-order route {method!r}")

    def _hvp_of(self, route: str, f, primals, directions) -> tuple:
        """The Hessian of ``f`` applied to ``directions``, one block per primal, by ``route``."""
        argnums = tuple(range(len(primals)))

        def grads(*p):
            return self.value_and_grad(f, argnums)(*p)[1]

        if route == "fwd_over_rev":
            return tuple(self.jvp(grads, primals, directions)[1])

        def along(*p):  # <gradient, directions>, the real inner product for complex inputs
            xp, total = self.xp, 0
            for gi, d in zip(grads(*p), directions, strict=True):
                if "complex" in str(d.dtype):  # conj_grads: Re(g d); else Re(g conj(d))
                    total = total + xp.sum(xp.real(gi * (d if self.conj_grads else xp.conj(d))))
                else:
                    total = total + xp.sum(gi * d)
            return total

        return tuple(self.value_and_grad(along, argnums)(*primals)[1])

    # ---- declared functions (gradxval check)
    def _body(self, function, xp, nn):
        """``function``'s body with this backend's xp and nn bound: one object per function,
        so that a backend may cache what it compiles for it."""

        def make():
            def f(**kw):
                return function.fn(**kw, xp=xp, nn=nn)

            return f

        return self._cached(("body", function.fn), make)

    def run_function(self, method: str, function, arrays: dict, dtype: str, extra=None) -> Result:
        """Evaluate a declared function by ``method`` on numpy ``arrays`` in ``dtype``.

        ``extra`` holds the JVP tangents (forward) or the HVP directions (hvp), by input name.
        Returns numpy arrays; a dtype or method this backend lacks raises Unsupported.
        """
        info(dtype)
        if method not in self.function_methods:
            raise Unsupported(
                f"{self.name} has no method {method!r} for declared functions; it has "
                f"{', '.join(self.function_methods) or 'none'}"
            )
        self._require(dtype)
        if dtype in self.function_unsupported:
            raise Unsupported(
                f"{self.name} does not support {dtype}: {self.function_unsupported[dtype]}"
            )
        xp, to_backend, to_numpy, scope = self.formula_namespace()
        nn = self.nn_namespace()
        if method == "vmap":  # a batch of two cases: this one and ``extra`` (every input)
            arrays = {k: _batch(v, extra[k]) for k, v in arrays.items()}
            extra = None
        with scope(dtype):
            # as laid out: the strided regime hands non-contiguous views over
            args = {k: to_backend(v) for k, v in arrays.items()}
            f = self._body(function, xp, nn)
            if method == "value":
                out = {"loss": f(**args)}
            elif method == "formula":
                if function.formula is None:
                    raise Unsupported(f"function {function.name} has no gradient formula")
                out = dict(function.formula(**args, xp=xp, nn=nn))
            else:
                ex = (
                    None
                    if extra is None
                    else {k: v if k == "cotangent" else to_backend(v) for k, v in extra.items()}
                )
                out = self._differentiate(method, f, args, function.wrt, ex)
            # complex inputs' gradients and HVPs in torch's convention (conj_grads)
            conj = self.conj_grads and method != "formula"
            return {
                q: self._out(to_numpy, v, conj and q[:4] in ("grad", "hvp_", "vjp_"))
                for q, v in out.items()
            }

    def _differentiate(self, method, f, args, wrt, extra):
        """``f(**args)`` by ``method``: {"loss", "grad_<name>"...} for autodiff and jit, {"jvp"}
        for forward (tangents in ``extra``), {"hvp_<name>"...} for hvp."""

        def of_wrt(*vals):
            return f(**{**args, **dict(zip(wrt, vals, strict=True))})

        primals = tuple(args[k] for k in wrt)
        if method in ("autodiff", "jit"):
            if method == "jit":
                if self.jit is None:
                    raise Unsupported(f"{self.name} has no jit")

                # the other inputs are arguments, not constants closed over: cases share it
                def run(primals, others):
                    def g(*vals):
                        return f(**others, **dict(zip(wrt, vals, strict=True)))

                    return self.value_and_grad(g, tuple(range(len(wrt))))(*primals)

                others = {k: v for k, v in args.items() if k not in wrt}
                loss, grads = self._compiled(("jit", f, wrt), run)(primals, others)
            else:
                loss, grads = self.reverse(of_wrt, primals)
            return {"loss": loss, **{f"grad_{k}": g for k, g in zip(wrt, grads, strict=True)}}
        if method == "vmap":
            if self.vmap is None:
                raise Unsupported(f"{self.name} has no vmap")
            names = tuple(args)
            idx = tuple(names.index(k) for k in wrt)

            def one(*vals):  # one batch member: every input, the loss and its gradients
                return self.value_and_grad(
                    lambda *w: f(**{**dict(zip(names, vals, strict=True)),
                                    **dict(zip(wrt, w, strict=True))}),
                    tuple(range(len(wrt))),
                )(*(vals[i] for i in idx))  # fmt: skip

            loss, grads = self.vmap(one, (0,) * len(names), (0, (0,) * len(wrt)))(
                *(args[k] for k in names)
            )
            return {"loss": loss, **{f"grad_{k}": g for k, g in zip(wrt, grads, strict=True)}}
        if method == "vjp":
            grads = self.vjp(of_wrt, primals, extra["cotangent"])
            return {f"vjp_{k}": g for k, g in zip(wrt, grads, strict=True)}
        tangents = tuple(extra[k] for k in wrt)
        if method == "forward":
            return {"jvp": self.jvp(of_wrt, primals, tangents)[1]}
        if method == "hvp":
            hv = self._hvp_of(self.hvp_route, of_wrt, primals, tangents)
            return {f"hvp_{k}": h for k, h in zip(wrt, hv, strict=True)}
        raise Unsupported(f"{self.name} has no method {method!r} for declared functions")
