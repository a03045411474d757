"""The calibration suite.

Functions practitioners recognise, declared once, checked on every backend.

Each body uses only what every backend's ``xp`` and ``nn`` provide (the engine's namespace
defines the subset): array-API functions, Python operators, basic indexing, ``.T``, ``.shape``.
Constants stay well inside float16's range (65504), so that every dtype can evaluate them.
"""

from __future__ import annotations

import numpy as np
from gradxval.model.functions import Input, function, labels
from gradxval.model.problems import PROBLEMS, seed_function

__all__ = ["SUITE", "BY_NAME"]


# ---------------------------------------------------------------- losses


@function(W="m n", b="m", x="n k", label=labels("k", classes="m"))
def softmax_xent(W, b, x, label, *, xp, nn):
    """Softmax cross-entropy of a linear classifier, mean over k examples."""
    logits = W @ x + b[:, None]  # (m, k)
    return nn.cross_entropy(logits.T, label)


@function(W="m n", b="m", x="n k", label=labels("k", classes="m"))
def softmax_xent_smoothed(W, b, x, label, *, xp, nn):
    """Softmax cross-entropy with label smoothing 0.1."""
    logits = W @ x + b[:, None]
    return nn.cross_entropy(logits.T, label, label_smoothing=0.1)


@function(x="m n")
def logsumexp_scaled(x, *, xp, nn):
    """Row-wise logsumexp of large, offset logits (the max-shift matters), summed."""
    return xp.sum(nn.logsumexp(x * 30.0 + 100.0, axis=-1))


@function(x="m n", w=Input("m n", diff=False))
def log_softmax_weighted(x, w, *, xp, nn):
    """Weighted sum of a row-wise log-softmax."""
    return xp.sum(w * nn.log_softmax(x, axis=-1))


@function(W="m n", x="n k", y=Input("m k", domain="unit", diff=False))
def bce_logits(W, x, y, *, xp, nn):
    """Binary cross-entropy with logits z = W x and soft targets y in (0, 1)."""
    z = W @ x
    return xp.mean(nn.softplus(z) - y * z)


@function(A="m n", x="n", y=Input("m", diff=False))
def least_squares(A, x, y, *, xp, nn):
    """Linear least squares, 0.5 ||A x - y||^2."""
    r = A @ x - y
    return 0.5 * xp.sum(r * r)


@function(A="m n", x="n", y=Input("m", diff=False))
def huber(A, x, y, *, xp, nn):
    """Huber loss (delta 1) of the residual A x - y: a kink in the second derivative."""
    r = A @ x - y
    a = xp.abs(r)
    return xp.sum(xp.where(a <= 1.0, 0.5 * r * r, a - 0.5))


@function(x="k n", w="n", b="n", P=Input("k n", diff=False))
def layer_norm_affine(x, w, b, P, *, xp, nn):
    """LayerNorm with weight and bias, projected on a fixed random P."""
    return xp.sum(P * nn.layer_norm(x, w, b))


@function(x="k 1", w="1", b="1", P=Input("k 1", diff=False))
def layer_norm_width1(x, w, b, P, *, xp, nn):
    """LayerNorm over a last axis of width 1: the output is the bias, x's gradient is zero."""
    return xp.sum(P * nn.layer_norm(x, w, b))


@function(x="k n", w="n", P=Input("k n", diff=False))
def rms_norm(x, w, P, *, xp, nn):
    """RMSNorm with weight, projected on a fixed random P."""
    return xp.sum(P * nn.rms_norm(x, w))


@function(x="b n", gamma="n", beta="n", P=Input("b n", diff=False))
def batch_norm_train(x, gamma, beta, P, *, xp, nn):
    """BatchNorm in training mode: batch mean and (biased) variance over axis 0, eps 1e-5."""
    mu = xp.mean(x, axis=0, keepdims=True)
    d = x - mu
    var = xp.mean(d * d, axis=0, keepdims=True)
    out = d / xp.sqrt(var + 1e-5) * gamma + beta
    return xp.sum(P * out)


# ---------------------------------------------------------------- activations


@function(W="m n", b="m", x="n k")
def gelu_erf(W, b, x, *, xp, nn):
    """Exact (erf) GELU of an affine layer, summed."""
    return xp.sum(nn.gelu(W @ x + b[:, None], approximate="none"))


@function(W="m n", b="m", x="n k")
def gelu_tanh(W, b, x, *, xp, nn):
    """Tanh-approximated GELU of an affine layer, summed."""
    return xp.sum(nn.gelu(W @ x + b[:, None], approximate="tanh"))


@function(x="m n")
def silu_sum(x, *, xp, nn):
    """SiLU (swish), summed."""
    return xp.sum(nn.silu(x))


@function(x="m n")
def softplus_sum(x, *, xp, nn):
    """Softplus, summed."""
    return xp.sum(nn.softplus(x))


@function(x="m n", P=Input("m n", diff=False))
def sigmoid_weighted(x, P, *, xp, nn):
    """Sigmoid projected on a fixed random P."""
    return xp.sum(P * nn.sigmoid(x))


# ---------------------------------------------------------------- small networks


def _causal(s, xp):
    """The lower-triangular 0/1 mask shaped like the square ``s``, in its dtype."""
    t = s.shape[0]
    return xp.asarray(np.tril(np.ones((t, t))), dtype=s.dtype)


@function(W1="h n", b1="h", W2="o h", x="n k", y=Input("o k", diff=False))
def mlp2(W1, b1, W2, x, y, *, xp, nn):
    """Two-layer tanh MLP with a squared-error loss."""
    r = W2 @ xp.tanh(W1 @ x + b1[:, None]) - y
    return xp.sum(r * r)


@function(q="t d", k="t d", v="t d", P=Input("t d", diff=False))
def causal_attention(q, k, v, P, *, xp, nn):
    """Causal scaled dot-product attention (one head), projected on a fixed random P."""
    scores = (q @ k.T) * (q.shape[-1] ** -0.5)  # (t, t)
    keep = _causal(scores, xp)  # 1 where query i may see key j <= i, else 0
    attn = nn.softmax(scores * keep + (keep - 1.0) * 1e4, axis=-1)
    return xp.sum(P * (attn @ v))


@function(
    Wi="m n",
    Wf="m n",
    Wo="m n",
    Wg="m n",
    bi="m",
    bf="m",
    bo="m",
    bg="m",
    x="n",
    c="m",
    P=Input("m", diff=False),
    Q=Input("m", diff=False),
)
def lstm_step(Wi, Wf, Wo, Wg, bi, bf, bo, bg, x, c, P, Q, *, xp, nn):
    """One LSTM cell step (input, forget, output gates and candidate), both outputs projected."""
    i = nn.sigmoid(Wi @ x + bi)
    f = nn.sigmoid(Wf @ x + bf)
    o = nn.sigmoid(Wo @ x + bo)
    g = xp.tanh(Wg @ x + bg)
    c2 = f * c + i * g
    h2 = o * xp.tanh(c2)
    return xp.sum(P * h2) + xp.sum(Q * c2)


# ---------------------------------------------------------------- geometry and probability


@function(a="n", b="n")
def cosine_similarity(a, b, *, xp, nn):
    """Cosine similarity of two vectors."""
    return xp.sum(a * b) / (xp.sqrt(xp.sum(a * a)) * xp.sqrt(xp.sum(b * b)) + 1e-8)


@function(x="m n")
def l2_norm(x, *, xp, nn):
    """Euclidean (Frobenius) norm."""
    return nn.norm(x)


@function(a="n", b="n")
def kl_softmax(a, b, *, xp, nn):
    """KL(softmax(a) || softmax(b))."""
    p = nn.softmax(a)
    return xp.sum(p * (nn.log_softmax(a) - nn.log_softmax(b)))


@function(x="n")
def entropy_softmax(x, *, xp, nn):
    """Shannon entropy of softmax(x), through xlogy."""
    p = nn.softmax(x)
    return -xp.sum(nn.xlogy(p, p))


@function(X="n d", M="c d", alpha="c")
def gmm_loglik(X, M, alpha, *, xp, nn):
    """Log-likelihood of an isotropic unit-variance Gaussian mixture (up to a constant)."""
    sq = xp.sum((X[:, None, :] - M[None, :, :]) ** 2, axis=-1)  # (n, c)
    return xp.sum(nn.logsumexp(nn.log_softmax(alpha) - 0.5 * sq, axis=-1))


@function(X="n d", C="c d")
def kmeans(X, C, *, xp, nn):
    """k-means objective: each point's squared distance to its nearest center, summed."""
    sq = xp.sum((X[:, None, :] - C[None, :, :]) ** 2, axis=-1)  # (n, c)
    return xp.sum(xp.min(sq, axis=1))


# ---------------------------------------------------------------- GradBench's evaluations


def _laplace_det(A, xp):
    """det A by Laplace expansion along the first row, as GradBench's det evaluation defines it
    (n! terms: it checks a deep composition of products and sums, not a fast determinant)."""
    n = A.shape[0]
    if n == 1:
        return A[0, 0]
    total = None
    for j in range(n):
        minor = xp.concat([A[1:, :j], A[1:, j + 1 :]], axis=1)
        term = A[0, j] * _laplace_det(minor, xp)
        total = term if total is None else (total + term if j % 2 == 0 else total - term)
    return total


@function(A="n n", sizes={"n": (1, 5)})
def det_laplace(A, *, xp, nn):
    """Determinant by Laplace expansion (GradBench det), n up to 5."""
    return _laplace_det(A, xp)


@function(W="n n", b="n", y="n", sizes={"n": (1, 8)})
def ode_rk4(W, b, y, *, xp, nn):
    """Four classical Runge-Kutta steps of y' = tanh(W y) + b, h = 0.1, then ||y||^2 (the
    shape of GradBench's ode evaluation: a differentiated explicit integrator)."""
    h = 0.1

    def f(v):
        return xp.tanh(W @ v) + b

    for _ in range(4):
        k1 = f(y)
        k2 = f(y + (h / 2) * k1)
        k3 = f(y + (h / 2) * k2)
        k4 = f(y + h * k3)
        y = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return xp.sum(y * y)


# ---------------------------------------------------------------- the ||A s(x)||^2 family


# the seed family of gradxval run, declared once (model/problems.py), with its closed form
sq_norm_a_sigmoid = PROBLEMS["logistic"].function
sq_norm_a_tanh = PROBLEMS["tanh"].function
sq_norm_a_softplus = PROBLEMS["softplus"].function
sq_norm_a_log_sigmoid = PROBLEMS["logsigmoid"].function
# the same bodies with A complex: |A phi(x)|^2 in complex64 and complex128
sq_norm_complex_a_sigmoid = seed_function(PROBLEMS["logistic"].activation, complex_A=True)
sq_norm_complex_a_tanh = seed_function(PROBLEMS["tanh"].activation, complex_A=True)


@function(A="m n", x="n")
def sq_norm_a_tanh_ridge(A, x, *, xp, nn):
    """||A tanh(x)||^2 + 0.5 ||x||^2."""
    y = A @ xp.tanh(x)
    return xp.sum(y * y) + 0.5 * xp.sum(x * x)


SUITE = (
    softmax_xent,
    softmax_xent_smoothed,
    logsumexp_scaled,
    log_softmax_weighted,
    bce_logits,
    least_squares,
    huber,
    layer_norm_affine,
    layer_norm_width1,
    rms_norm,
    batch_norm_train,
    gelu_erf,
    gelu_tanh,
    silu_sum,
    softplus_sum,
    sigmoid_weighted,
    mlp2,
    causal_attention,
    lstm_step,
    cosine_similarity,
    l2_norm,
    kl_softmax,
    entropy_softmax,
    gmm_loglik,
    kmeans,
    det_laplace,
    ode_rk4,
    sq_norm_a_sigmoid,
    sq_norm_a_tanh,
    sq_norm_a_softplus,
    sq_norm_a_log_sigmoid,
    sq_norm_a_tanh_ridge,
    sq_norm_complex_a_sigmoid,
    sq_norm_complex_a_tanh,
)

BY_NAME = {f.name: f for f in SUITE}
