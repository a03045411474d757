"""A problem with no high-precision definition: f(A, x) = sum_c logsumexp(A x_c), real A.

    PYTHONPATH=examples gradxval run --problems logsumexp_problem:LogSumExp --dtypes float32,float64

It subclasses Problem directly and gives no reference of its own, so gradxval judges every
backend (closed forms included) against this loss evaluated in 60-digit mpmath, its gradients by
differences of it, and marks every verdict "mpmath at 60 digits".  The hazard it shows:
exp(A x) overflows unless the maximum is subtracted first.
"""

from gradxval.model.problems import Problem


def _lse(z, xp):
    zmax = xp.max(z, axis=0)
    return zmax + xp.log(xp.sum(xp.exp(z - zmax), axis=0))


class LogSumExp(Problem):
    name = "logsumexp"
    regimes = ("normal", "saturated", "strided")
    dtypes = ("float32", "float64")

    def loss(self, A, x, xp):
        # max is piecewise constant: no gradient flows through it, as it should not
        return xp.sum(_lse(A @ x, xp))

    def tolerance_u(self, quantity, m, n, k):
        """The family's tolerance plus exp's amplification: exp(z - zmax) turns the absolute
        error of z - zmax (a few u |z|, and |z| reaches about 6 sqrt(n) for standard normal
        inputs) into a relative error of the softmax, 8 * 6 sqrt(n) u in all."""
        return super().tolerance_u(quantity, m, n, k) + 48 * n**0.5

    def closed_form(self, A, x, xp):
        z = A @ x
        zmax = xp.max(z, axis=0)
        e = xp.exp(z - zmax)
        p = e / xp.sum(e, axis=0)  # softmax over the rows of A
        loss = xp.sum(zmax + xp.log(xp.sum(e, axis=0)))
        grad_x = A.T @ p
        grad_A = p[:, None] * x[None, :] if x.ndim == 1 else p @ x.T
        return loss, grad_x, grad_A
