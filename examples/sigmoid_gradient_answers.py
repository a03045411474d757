"""Three textbook answers for the gradient of f(x) = ||A sigma(x)||^2 with respect to x.

    gradxval check-formula examples/sigmoid_gradient_answers.py:answer_a   (and _b, _c)

Each is written as a function of (A, x, xp), xp being the array namespace (numpy, torch, jax).
"""


def _sigma(x, xp):
    return 1 / (1 + xp.exp(-x))


def answer_a(A, x, xp):
    """(a) 2 sigma^T A^T A sigma', read literally: a scalar, not a gradient."""
    s = _sigma(x, xp)
    sp = _sigma(x, xp) * _sigma(-x, xp)
    return 2 * (s @ A.T @ A @ sp)


def answer_b(A, x, xp):
    """(b) 2 sigma(x)^T A^T A dsigma/dx, with dsigma/dx = Diag(sigma'(x))."""
    s = _sigma(x, xp)
    sp = _sigma(x, xp) * _sigma(-x, xp)
    dsigma = xp.eye(x.shape[0], dtype=x.dtype) * sp  # Diag(sigma')
    return 2 * (s @ A.T @ A @ dsigma)


def answer_c(A, x, xp):
    """(c) 2 (S - S^2) A^T A s, with S = Diag(sigma(x)) and s = sigma(x)."""
    s = _sigma(x, xp)
    S = xp.eye(x.shape[0], dtype=x.dtype) * s
    return 2 * (S - S @ S) @ (A.T @ (A @ s))


def twice_too_large(A, x, xp):
    """A planted wrong formula: the factor 2 applied twice."""
    s = _sigma(x, xp)
    return 4 * (_sigma(x, xp) * _sigma(-x, xp)) * (A.T @ (A @ s))
