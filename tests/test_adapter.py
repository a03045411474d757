"""A backend is an adapter: a framework's namespace, conversions and autodiff transforms, and
every run and check method comes from the base class (docs/plugins.md)."""

from types import SimpleNamespace

import array_api_compat.numpy as xp
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from gradxval.backends import load
from gradxval.backends.base import Backend
from gradxval.errors import Unsupported
from gradxval.model.cases import sample_cases
from gradxval.model.problems import load_problem
from gradxval.model.sampling import draw, sample
from gradxval.suite import gelu_tanh, softmax_xent


class TinyAutograd(Backend):
    """The whole adapter for autograd, as a plug-in author writes it: no loss, no gradient."""

    name = "tiny_autograd"
    methods = ("autodiff", "closed_form", "forward")
    function_methods = ("autodiff", "hvp", "formula")
    hvp_routes = ("rev_over_rev",)
    hvp_route = "rev_over_rev"
    supported = ("float32", "float64", "complex64", "complex128")
    conj_grads = True
    xp = load("autograd").xp  # array-api-compat's numpy with autograd's real, imag, conj

    def version(self):
        return autograd.__version__ if hasattr(autograd, "__version__") else "1"

    def nn_namespace(self):
        return load("autograd").nn_namespace()

    def value_and_grad(self, f, argnums):
        return autograd.value_and_grad(f, argnums)

    def jvp(self, f, primals, tangents):
        return autograd.make_jvp(f, tuple(range(len(primals))))(*primals)(tangents)


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _same_bits(got, want):
    assert set(got) == set(want)
    for q in got:
        assert (got[q] is None) == (want[q] is None), q
        if got[q] is not None:
            # -0.0 and 0.0: the same number, whatever the route summed
            assert got[q].dtype == want[q].dtype and got[q].shape == want[q].shape, q
            assert np.array_equal(got[q], want[q], equal_nan=True), q


@pytest.mark.parametrize("problem", ["logistic", "tanh"])
def test_a_small_adapter_gets_every_run_method(problem):
    tiny, builtin = TinyAutograd(), load("autograd")
    cases = [c for c in sample_cases(24, 3, problems=(problem,)) if c.dtype in tiny.supported][:8]
    assert cases
    p = load_problem(problem)
    for c in cases:
        inp = c.inputs()
        A = c.present(inp.A)
        for method in ("autodiff", "closed_form"):
            want = builtin.evaluate_problem(p, method, A, inp.x, c.dtype)
            _same_bits(tiny.evaluate_problem(p, method, A, inp.x, c.dtype), want)
        want = builtin.evaluate_hvp(p, "rev_over_rev", A, inp.x, inp.v, c.dtype)
        got = tiny.evaluate_hvp(p, "rev_over_rev", A, inp.x, inp.v, c.dtype)
        assert np.array_equal(got, want, equal_nan=True)


def test_forward_mode_without_jacfwd_is_one_jvp_per_entry():
    """No jacfwd: the gradient by forward mode is pushed one tangent at a time, and matches the
    reverse-mode gradient; past forward_loop_max entries it is unsupported, saying why."""

    class SigmoidByTanh(TinyAutograd):
        # autograd defines no forward rule for expit: sigma(x) = (1 + tanh(x/2)) / 2 has them
        def nn_namespace(self):
            return SimpleNamespace(sigmoid=lambda x: 0.5 * (1.0 + anp.tanh(0.5 * x)))

    tiny = SigmoidByTanh()
    p = load_problem("tanh")
    rng = np.random.default_rng(0)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    fwd = tiny.evaluate_problem(load_problem("logistic"), "forward", A, x, "float64")
    rev = tiny.evaluate_problem(load_problem("logistic"), "autodiff", A, x, "float64")
    for q in ("loss", "grad_x", "grad_A"):
        np.testing.assert_allclose(fwd[q], rev[q], rtol=1e-13)
    big = np.zeros(tiny.forward_loop_max + 1)
    with pytest.raises(Unsupported, match="one tangent at a time"):
        tiny.evaluate("forward", np.zeros((1, big.size)), big, "float64")
    with pytest.raises(Unsupported, match="runs the logistic problem only"):
        tiny.evaluate_problem(p, "forward", A, x, "float64")


@pytest.mark.parametrize("function", [softmax_xent, gelu_tanh])
def test_a_small_adapter_gets_every_check_method(function):
    tiny, builtin = TinyAutograd(), load("autograd")
    for case in sample(function, 6, 2, dtypes=("float32", "float64")):
        arrays, directions = draw(function, case)
        for method in ("autodiff", "hvp"):
            extra = directions if method == "hvp" else None
            want = builtin.run_function(method, function, arrays, case.dtype, extra)
            got = tiny.run_function(method, function, arrays, case.dtype, extra)
            assert set(got) == set(want)
            for q in got:
                assert _same(got[q], want[q]), (case.id, method, q)


def test_an_adapter_without_autodiff_says_so():
    class NoAutodiff(Backend):
        name = "no_autodiff"
        methods = ("autodiff", "closed_form")
        xp = xp

        def version(self):
            return "0"

    b = NoAutodiff()
    A, x = np.ones((2, 3)), np.ones(3)
    out = b.evaluate("closed_form", A, x, "float64")
    assert out["grad_x"].shape == (3,)
    with pytest.raises(Unsupported, match="no_autodiff has no reverse-mode autodiff"):
        b.evaluate("autodiff", A, x, "float64")
    assert b.hvp_methods == ("closed_form",)


def test_the_seed_family_is_declared_once():
    """gradxval run's problems are declared functions: their body is what every backend's
    autodiff differentiates (a changed body changes every backend), their formula is the
    closed form, and gradxval check's sq_norm_a_* are the same objects."""
    from dataclasses import replace

    from gradxval.model.problems import PROBLEMS, ActivationProblem
    from gradxval.suite import BY_NAME

    for name, p in PROBLEMS.items():
        assert BY_NAME[p.function.name] is p.function, name
        assert p.function.wrt == ("A", "x")

    planted = ActivationProblem(PROBLEMS["tanh"].activation)  # the same name: "tanh"
    body = planted.function.fn
    planted.function = replace(
        planted.function, fn=lambda A, x, *, xp, nn: 2 * body(A, x, xp=xp, nn=nn)
    )
    rng = np.random.default_rng(1)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    for name in ("autograd", "jax", "torch"):
        b = load(name)
        want = b.evaluate_problem(PROBLEMS["tanh"], "autodiff", A, x, "float64")
        got = b.evaluate_problem(planted, "autodiff", A, x, "float64")  # no stale cache
        for q in ("loss", "grad_x", "grad_A"):
            np.testing.assert_allclose(got[q], 2 * want[q], rtol=1e-14, err_msg=f"{name} {q}")


def test_a_scalar_input_stays_a_scalar():
    """A 0-d input goes in and its gradient comes out 0-d (np.ascontiguousarray would make
    it 1-d: a false shape disagreement)."""
    from gradxval.model.functions import Input, function

    @function(s=Input(()), x="n")
    def scaled(s, x, *, xp, nn):
        return xp.sum(xp.tanh(s * x))

    arrays = {"s": np.asarray(0.5), "x": np.linspace(-1, 1, 5)}
    directions = {"s": np.asarray(1.0), "x": np.ones(5)}
    for name in ("autograd", "jax", "torch"):
        b = load(name)
        out = b.run_function("autodiff", scaled, arrays, "float64")
        assert out["grad_s"].shape == (), (name, out["grad_s"].shape)
        if "forward" in b.function_methods:
            assert (
                b.run_function("forward", scaled, arrays, "float64", directions)["jvp"].shape == ()
            )
        hv = b.run_function("hvp", scaled, arrays, "float64", directions)
        assert hv["hvp_s"].shape == (), name


def test_an_older_plugin_keeps_its_library_and_autodiff_hooks():
    """A plug-in written before the adapter: _evaluate for the seed problem, autodiff(fn, A,
    x, dtype) for the others, and library(name) for the framework's own phi."""
    from gradxval.model.problems import PROBLEMS

    calls = []

    class OldStyle(Backend):
        name = "old_style"
        supported = ("float64",)

        def version(self):
            return "0"

        def library(self, name):
            calls.append(name)
            return (lambda x: 2.0 * anp.tanh(x)) if name == "tanh" else None

        def autodiff(self, fn, A, x, dtype):
            loss, (gA, gx) = autograd.value_and_grad(lambda A, x: fn(A, x, anp), (0, 1))(A, x)
            return {"loss": np.asarray(loss), "grad_x": gx, "grad_A": gA}

    rng = np.random.default_rng(2)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    got = OldStyle().evaluate_problem(PROBLEMS["tanh"], "autodiff", A, x, "float64")
    want = load("autograd").evaluate_problem(PROBLEMS["tanh"], "autodiff", A, x, "float64")
    assert calls == ["tanh"]
    np.testing.assert_allclose(got["loss"], 4 * want["loss"], rtol=1e-14)  # phi doubled
    np.testing.assert_allclose(got["grad_x"], 4 * want["grad_x"], rtol=1e-14)


def test_autograds_array_namespace_keeps_numpys_types():
    """autograd's xp takes autograd.numpy's wrapped functions (traced on empty arrays too) but
    numpy's own types, so isinstance and issubdtype in a body mean what they mean in numpy."""
    from gradxval.backends import load

    xp = load("autograd").xp
    labels = np.array([1, 2], dtype=np.int64)
    assert xp.issubdtype(labels.dtype, xp.integer)
    assert isinstance(np.int64(3), xp.int64)
    import autograd.numpy as anp

    assert xp.where is anp.where and xp.sum is anp.sum


def test_problem_methods_open_a_triaged_method_to_every_problem():
    """The built-ins list their run methods in problem_methods (their results on tanh,
    softplus and logsigmoid explained): forward and jax's eager run there and equal reverse
    mode; a backend that lists none (a plug-in not yet triaged) runs the logistic only."""
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    from gradxval.backends import load

    rng = np.random.default_rng(3)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    torch = load("torch")
    for name in ("tanh", "softplus", "logsigmoid"):
        p = load_problem(name)
        fwd = torch.evaluate_problem(p, "forward", A, x, "float64")
        rev = torch.evaluate_problem(p, "autodiff", A, x, "float64")
        for q in ("loss", "grad_x", "grad_A"):
            np.testing.assert_allclose(fwd[q], rev[q], rtol=1e-12, err_msg=f"{name} {q}")
    jax = load("jax")
    eager = jax.evaluate_problem(load_problem("tanh"), "eager", A, x, "float64")
    rev = jax.evaluate_problem(load_problem("tanh"), "autodiff", A, x, "float64")
    np.testing.assert_allclose(eager["grad_x"], rev["grad_x"], rtol=1e-12)

    class Untriaged(type(torch)):
        name = "untriaged"
        problem_methods = ()

    with pytest.raises(Unsupported, match="runs the logistic problem only"):
        Untriaged().evaluate_problem(load_problem("tanh"), "forward", A, x, "float64")
