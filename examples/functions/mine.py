"""Three functions a user checks with `gradxval check examples/functions/mine.py:NAME`."""

import gradxval


@gradxval.function(W="m n", b="m", x="n k", label=gradxval.labels("k", classes="m"))
def softmax_xent(W, b, x, label, *, xp, nn):
    return nn.cross_entropy((W @ x + b[:, None]).T, label)


@gradxval.function(A="m n", x="n")
def tanh_ridge(A, x, *, xp, nn):
    return xp.sum((A @ xp.tanh(x)) ** 2) + 0.5 * xp.sum(x * x)


@gradxval.function(W="m n", b="m", x="n")
def gelu_layer(W, b, x, *, xp, nn):
    return xp.sum(nn.gelu(W @ x + b))


def _tanh_ridge_formula(A, x, *, xp, nn):
    # a planted error: the ridge term's gradient is x, not 2x
    t = xp.tanh(x)
    return {"grad_x": 2 * (1 - t * t) * (A.T @ (A @ t)) + 2 * x}


tanh_ridge_wrong = gradxval.function(
    tanh_ridge.fn, A="m n", x="n", name="tanh_ridge_wrong", formula=_tanh_ridge_formula
)
