"""The backend interface: numpy arrays in, numpy arrays out."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gradxval.dtypes import DTYPES, info
from gradxval.errors import Unsupported

__all__ = ["Backend", "Result"]

# quantity -> numpy array: loss (0-d, real dtype), grad_x (shape of x), grad_A (shape of A)
Result = dict


class Backend:
    """One framework's way to compute the loss and its gradients.

    Subclasses set ``name``, ``methods`` and ``supported``, and implement ``version`` and
    ``_evaluate``.  ``evaluate`` receives the case's rounded inputs (numpy, possibly
    non-contiguous; bfloat16 via ml_dtypes) and must return numpy arrays of the case's dtypes.
    It must not modify its inputs.  A dtype or method it cannot do raises ``Unsupported``.
    """

    name: ClassVar[str] = ""
    methods: ClassVar[tuple[str, ...]] = ("autodiff", "closed_form")
    supported: ClassVar[tuple[str, ...]] = DTYPES
    unsupported_reasons: ClassVar[dict[str, str]] = {}
    # second order (hvp_x): the autodiff routes this backend has, each one a method; besides
    # them every backend has closed_form, and a plug-in that implements ``hvp`` gets "hvp"
    hvp_routes: ClassVar[tuple[str, ...]] = ()
    # True for backends that compile per (shape, dtype): the isolated runner then spreads their
    # cases over several worker processes, each (shape, dtype) always to the same one
    compiles: ClassVar[bool] = False

    def version(self) -> str:
        raise NotImplementedError

    @property
    def hvp_methods(self) -> tuple[str, ...]:
        """The methods that compute hvp_x: closed_form, the routes, and "hvp" for the hook."""
        hook = ("hvp",) if type(self).hvp is not Backend.hvp else ()
        return ("closed_form", *self.hvp_routes, *hook)

    def library(self, name: str):
        """The framework's own function for the activation ``name`` (torch.sigmoid for
        "logistic"), or None where it has none: autodiff differentiates what users call."""
        return None

    def hvp(self, fn, A: np.ndarray, x: np.ndarray, v: np.ndarray, dtype: str) -> np.ndarray:
        """Plug-in hook: the Hessian of ``fn(A, x, xp)`` with respect to x applied to v, by
        this framework's autodiff (any route).  Returns a numpy array of x's shape and dtype."""
        raise Unsupported(f"{self.name} has no second-order autodiff")

    def _hvp(self, method: str, fn, A, x, v, dtype: str) -> np.ndarray:
        """A built-in second-order route (hvp_routes) of ``fn``."""
        raise Unsupported(f"{self.name} has no second-order route {method!r}")

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
        if method == "closed_form":
            xp, to_backend, to_numpy, scope = self.formula_namespace()
            with scope(dtype):
                out = problem.hvp_closed_form(to_backend(A), to_backend(x), to_backend(v), xp)
                if out is None:
                    raise Unsupported(f"problem {problem.name} defines no second order")
                return to_numpy(out)
        fn = problem.autodiff_loss(self.library)
        if method == "hvp":
            return self.hvp(fn, A, x, v, dtype)
        return self._hvp(method, fn, A, x, v, dtype)

    # ---- declared functions (gradxval check): each method names one way to differentiate
    # "autodiff" (reverse mode), "forward" (a JVP), "jit", "hvp" (Hessian-vector product),
    # "value" (the loss only) and "formula" (the user's gradient formula in this namespace)
    function_methods: ClassVar[tuple[str, ...]] = ()
    # dtype -> why declared functions cannot run in it here (on top of unsupported_reasons)
    function_unsupported: ClassVar[dict[str, str]] = {}

    def nn_namespace(self):
        """This framework's library operations under gradxval's names (model.nn.OPS)."""
        raise Unsupported(f"{self.name} offers no nn namespace for declared functions")

    def _differentiate(self, method, f, args: dict, wrt, extra: dict | None):
        """Run ``f(**args)`` by ``method``: returns {"loss", "grad_<name>"...} for autodiff and
        jit, {"jvp"} for forward (tangents in ``extra``), {"hvp_<name>"...} for hvp."""
        raise Unsupported(f"{self.name} has no method {method!r} for declared functions")

    def _body(self, function, xp, nn):
        """``function``'s body with this backend's xp and nn bound: one object per function,
        so that a backend may cache what it compiles for it."""
        cache = self.__dict__.setdefault("_bodies", {})
        if function.fn not in cache:

            def f(**kw):
                return function.fn(**kw, xp=xp, nn=nn)

            cache[function.fn] = f
        return cache[function.fn]

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
        with scope(dtype):
            args = {k: to_backend(np.ascontiguousarray(v)) for k, v in arrays.items()}
            f = self._body(function, xp, nn)
            if method == "value":
                out = {"loss": f(**args)}
            elif method == "formula":
                if function.formula is None:
                    raise Unsupported(f"function {function.name} has no gradient formula")
                out = dict(function.formula(**args, xp=xp, nn=nn))
            else:
                ex = None if extra is None else {k: to_backend(v) for k, v in extra.items()}
                out = self._differentiate(method, f, args, function.wrt, ex)
            return {q: np.asarray(to_numpy(v)) for q, v in out.items()}

    def _require(self, dtype: str) -> None:
        """Raise Unsupported, with the backend's reason, for a dtype it does not support."""
        if dtype not in self.supported:
            reason = self.unsupported_reasons.get(dtype, "not supported by this backend")
            raise Unsupported(f"{self.name} does not support {dtype}: {reason}")

    def flags(self) -> dict[str, str]:
        """Precision switches in effect, for the report header."""
        return {}

    def dtypes(self) -> tuple[str, ...]:
        return self.supported

    def formula_namespace(self):
        """(xp, to_backend, to_numpy, scope) for evaluating a user's formula in this framework.

        ``scope(dtype)`` is a context manager for precision switches.  Backends without an
        array-API namespace raise Unsupported.
        """
        raise Unsupported(f"{self.name} offers no array namespace for formulas")

    def evaluate(self, method: str, A: np.ndarray, x: np.ndarray, dtype: str) -> Result:
        """Return {'loss', 'grad_x', 'grad_A'} computed by ``method`` in ``dtype``."""
        info(dtype)
        if method not in self.methods:
            raise Unsupported(
                f"{self.name} has no method {method!r}; it has {', '.join(self.methods)}"
            )
        self._require(dtype)
        return self._evaluate(method, A, x, dtype)

    def _evaluate(self, method: str, A: np.ndarray, x: np.ndarray, dtype: str) -> Result:
        raise NotImplementedError

    def autodiff(self, fn, A: np.ndarray, x: np.ndarray, dtype: str) -> Result:
        """Value and gradients of ``fn(A, x, xp)`` by this framework's autodiff (any problem)."""
        raise Unsupported(f"{self.name} has no autodiff for other problems")

    def evaluate_problem(self, problem, method: str, A, x, dtype: str) -> Result:
        """Like ``evaluate``, for any Problem: the seed problem keeps the backend's own code;
        others run ``problem.closed_form`` in the backend's namespace and ``problem.loss``
        through ``autodiff``."""
        from gradxval.model.problems import DEFAULT_PROBLEM

        if problem.name == DEFAULT_PROBLEM:
            return self.evaluate(method, A, x, dtype)
        info(dtype)
        if dtype not in problem.dtypes:
            raise Unsupported(f"problem {problem.name} is defined for {', '.join(problem.dtypes)}")
        self._require(dtype)
        if method == "autodiff" and "autodiff" in self.methods:
            return self.autodiff(problem.autodiff_loss(self.library), A, x, dtype)
        if method == "closed_form":
            xp, to_backend, to_numpy, scope = self.formula_namespace()
            with scope(dtype):
                out = problem.closed_form(to_backend(A), to_backend(x), xp)
                return dict(zip(("loss", "grad_x", "grad_A"), map(to_numpy, out), strict=True))
        raise Unsupported(f"{self.name}/{method} runs the {DEFAULT_PROBLEM} problem only")
