"""gradxval standalone reproducer: jax closed_form grad_x on extreme-complex64-m13n11-s442710.

Uses only numpy and the framework. Prints the value, the reference and the error;
exits 1 while the disagreement persists, 0 once it is fixed."""

import base64, sys, zlib
import numpy as np


def arr(data, dtype, shape):
    raw = zlib.decompress(base64.b64decode(data))
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()

CASE_ID, BACKEND, METHOD, QUANTITY = 'extreme-complex64-m13n11-s442710', 'jax', 'closed_form', 'grad_x'
DTYPE, EXPECTED_DTYPE = 'complex64', 'float32'
VERSION_NOTE = 'found with jax 0.10.2'
U, ETA, TOL = 5.960464477539063e-08, 1.401298464324817e-45, 16.92217606581939
BF16 = False
A_IN = arr('eNoN0otXzQccAHB2ez/WQ3G73VIyaqiVsnLv7/tNqyOnc+V45U5zjVJRjJgdSlclREfJiihRadNjWe1Mq9/3S7YWk5rH0OjJ1q05m7u7xI1tn7/h4/wyBPcZRN5oUgsmzifw+/pQnLlpKeWNVtKKkeP8kdMe8taPU80rR2j3b+Dztw7jXMkNeN01BQyLtWDXHCCUddWierhbIVVkgGuZO29RmNO2aY6chirKNpEognR+WB4l5bezfdmpIYZHV+vgV2ULVp18JrhNyaKxrmm8vDaapT+aosMa3cJ+zReYq3KkoJfBPHG7AxKqbbCzLkDMSFnExlUW6HnhDD3cdU4slDmx/eQjbKhoI7k+jN0mDtG7I4kY8pYjq3sDsNXwBIYrzlJpiRqfl8VDW8Ns9nxzFVMTboZUPE7FmP73BL99GbzW2loZGzpBfrnLUeHbjIcDU1G/KA7qXJR4b4GPeOKfWHjygYI7q2ygMX+k1eumjAbSj1NBiquQ6/YlRQ6lctMngdB53gorfbLJb8gH5eMyNHfZjz8oukm12Z+dRpI5OUzO475L+IFUwue8c/hexn36bNINOF0+GX+OSMPFPROQpwnnCN1mXvPvoPhnswauNyWgzYVscl71B7mfdOC6fAPIm+3I4v1hUOfkwUWhkNdpe0F7rBi/bX6oODn0WrQ03gKLjU7kJXuuHFjyKQV2Nwo2GWq2mPiFLmrbQT6QizMlVdQSmUXF5l8pZiYEc8qsK2AM0wnbfNIgPb0Xr8s6aLetLzu8yEIyRvIOjbPobmLFD+734FimP8aobTh5xyXlpbxVrLW0F/SZW0kXW8TNDgVQV/GUQuLaQb/0KdRs6BLG1q3goIgSRZm0iOsPWHK4QQTT2gao33NIyGyKowpBYHf5HXhz+oD4UpfUWhm1k9s0d+FVay2N3YumR6Irbn0yD+M9D6OZQyG19E2HGWa2+LnUG03OeMCiqLX8NGAvNHxXRCVzVJxy1gP9PzRDt5pyWBvcCZuzqjBML8HVRyL4wf9nx3ussOBqL6BrAEyfP8ya6rnYYjEHR9cfI1CpMOnxb9AYfw1aVUPipuJimqqX4vD8HJ4llqI2vwj93vHEqvWVlDV1i7ghyBOrX1wnxdE+CIzy4vEMEQZzyymeSmHpQS/YOzmZE21j2DHdHpLCUkCX0yVcKZrHZr22/OyCJRprkiBxcBBc2jaxJm0dyfdEon1aHTz6uFD4Jq6RZenOfPWIN4t2wwurg4PockemMGpaAmF2Uup3WcCpRgva3sPC5d0BnL5sA4NaivITiRh91xmlodk8xyea1UPW3LRRxHj7EkCrU1S6/Cc8OnKajbMPcc21WL7jMUDnr2ynmL52wUtyg/K3BAvhHn8JhjV72ZioZOtuGTqM3RZt68+JeS7e7DIjn9/0f916d38crtw1Cbr/dhQurZSg+ZQcuHzfW9Cd2om3a/tYp43EZaZuaFz4u1JnCOJbmg5akifQ1tWW8B+J8iJK', '<c8', (13, 11))
X_IN = arr('eNq7k9DvcHLRikOrg48enqYffZCBoeF/T4bwQVlF9yO73TY4Afn1UYcfHrxndMcBAPabFbU=', '<f4', (11,))
# reference and the error model's scale, computed by gradxval in extra precision
REF = arr('eNpTPLgsb47nEfvb6U9Udf9W77CILb7WcqJZ5sWrun/SD5/YMUBAwye2DKML0132Q/kMF9P4QvQeO1jA+Ho/ZWdccMu3dZ3Dm9pg3mEPAFeWH8k=', '<f8', (11,))
SCALE = arr('eNoTrnlktar+lT1zqErC7v+bLBT/tZfy1e+S2dXg8alcRcCeAQpm33D+6sFcAed7xFcFi+XGWsD4EQ9P6Z5l2msb1tU2xbd2jT0AS50cOw==', '<f8', (11,))
UNDER = arr('eNoBWACn/5Mpkix88VJAAlXdFv81TkAePuclgE9RQEQlckQJ6EtATjOiVrYISUBo6ilMreVNQDAu9/h0y0lA1y3KSQOmUEBlhvOt7HFRQKVfhSHHSEhAu8uRPQmmS0A5uCU8', '<f8', (11,))

def sigmoid_pair(x):
    """sigma(x), sigma(-x) without overflow."""
    e = xp.exp(-xp.abs(x))
    d = 1 + e
    return xp.where(x >= 0, 1 / d, e / d), xp.where(x >= 0, e / d, 1 / d)


def closed_form(A, x):
    s, sn = sigmoid_pair(x)
    cplx = A.dtype in COMPLEX
    sc = cast(s, A.dtype) if cplx else s
    z = cast(A @ sc, A.dtype)
    loss = xp.sum(xp.real(z * xp.conj(z))) if cplx else xp.sum(z * z)
    back = xp.real(cast(xp.conj(A).T @ z, A.dtype)) if cplx else cast(A.T @ z, A.dtype)
    gx = 2 * (s * sn) * back
    gA = 2 * (z[:, None] * sc[None, :]) if x.ndim == 1 else 2 * cast(z @ sc.T, A.dtype)
    return loss, gx, gA


def loss_of(A, s):
    if A.dtype in COMPLEX:
        z = A @ cast(s, A.dtype)
        return xp.sum(xp.real(z * xp.conj(z)))
    z = A @ s
    return xp.sum(z * z)


import jax
import jax.numpy as xp
if DTYPE in ("float64", "complex128"):
    jax.config.update("jax_enable_x64", True)
COMPLEX = (xp.complex64, xp.complex128)


def cast(a, dtype):
    return a.astype(dtype)


def to_backend(a):
    import ml_dtypes  # jax's own bfloat16

    return xp.asarray(a.view(ml_dtypes.bfloat16) if BF16 and a.dtype == np.uint16 else a)


@jax.jit
def autodiff(A, x):
    loss, (gA, gx) = jax.value_and_grad(lambda A, x: loss_of(A, jax.nn.sigmoid(x)), (0, 1))(A, x)
    return loss, gx, xp.conj(gA)  # torch's complex convention


closed_form = jax.jit(closed_form)


QUANTITIES = ("loss", "grad_x", "grad_A")


def to_numpy(t):
    """(values as a numpy array, the dtype name the backend returned)."""
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        name = str(t.dtype).replace("torch.", "")
        return (t.float() if name == "bfloat16" else t).numpy(), name
    t = np.asarray(t)
    return t, t.dtype.name


A, x = to_backend(A_IN), to_backend(X_IN)
with np.errstate(all="ignore"):
    result = dict(zip(QUANTITIES, closed_form(A, x)))
    actual, got_dtype = to_numpy(result[QUANTITY])
    a = actual.astype(np.complex128 if np.iscomplexobj(actual) else np.float64)
    err = np.abs(a - REF) / (U * SCALE + ETA * UNDER)
    same_nan = np.isnan(a) == np.isnan(REF)
    finite = np.isfinite(a) & np.isfinite(REF)
    err = np.where(finite, err, np.where(same_nan & ((a == REF) | np.isnan(REF)), 0.0, np.inf))
worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim and err.size else ()
e = float(err.max()) if err.size else 0.0
print(f"{BACKEND}/{METHOD} {QUANTITY} on {CASE_ID}, {VERSION_NOTE}")
if err.size:
    where = tuple(int(i) for i in worst)
    print(f"  at index {where}: actual {a[worst].item()!r}, reference {REF[worst].item()!r}")
print(f"  error {e:.4g} u, tolerance {TOL:.4g} u (u = {U:.3g})")
if got_dtype != EXPECTED_DTYPE:
    print(f"  dtype {got_dtype}, expected {EXPECTED_DTYPE}")
    sys.exit(1)
sys.exit(1 if e > TOL else 0)
