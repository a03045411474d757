"""gradxval standalone reproducer: mygrad autodiff grad_x on saturated-float32-m123n1-s21230.

Uses only numpy and the framework. Prints the value, the reference and the error;
exits 1 while the disagreement persists, 0 once it is fixed."""

import base64, sys, zlib
import numpy as np


def arr(data, dtype, shape):
    raw = zlib.decompress(base64.b64decode(data))
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()

CASE_ID, BACKEND, METHOD, QUANTITY = 'saturated-float32-m123n1-s21230', 'mygrad', 'autodiff', 'grad_x'
DTYPE, EXPECTED_DTYPE = 'float32', 'float32'
VERSION_NOTE = 'found with mygrad 2.5.0'
U, ETA, TOL = 5.960464477539063e-08, 1.401298464324817e-45, 22.090536506409418
BF16 = False
A_IN = arr('eNoB7AET/kgIWD8J5qS+s/fGvf150r4FLNO+4LI4v4ApwD6dBb0/dcYHv9bOGj6BZQk/wzdGP1+23b/Vsw9AMo31P4Erdz9T3a4/K5iDv6ZS876CDe095WqLvwhW9b2qRzs9adcAv5aTlD8ESjq/oXZLvl6+xD/VqJc/NNI9vlPKML9mGc4/7k8FQJUy479/Vju+8MevPzcOd76L2nu+4e+FPloXor5zLYI/mO6SPXXIVT+nRE6/FSJSv+jfgj/J51c/xGbqPbv5s79nF7K+Vg7nvzyxLz5Qv2M/K62Vvt4w07+uA5++vhnBP0eX3r5j7as+4VEzv9JKYr4Dxgi/jDBTPwYZPUA2O78/1EMbv8b0gD5hQ4G/VhAzP0q0Ez+Uqnm/rgR8PpG4H79hpKS+nVgdP21Exz1giaw/pMPUv0SYFb/QgLg+lGyQPzF+X78xMQs/5KPxPaSs675H2V2+r+KmP/qfGT5m62k/53spvw3TfT8KhGs+ra2rvnpfaL9nUdE/9ft4v+J9/j5WdS2/oegkvs/TuD6XBSK+lGG4v6y9+bz27FS/d7hbvwS9Pj6rSlw/flqLP81bUT8agWG/2MafPvu4+r73rc0+GuLEv2FO4T+fRTK98pSHPjxQA8BPN4C9AXCtPzlW1r6OEWS+3bTBPQWF+Ic=', '<f4', (123, 1))
X_IN = arr('eNp77cHqBAAE1AF7', '<f4', (1,))
# reference and the error model's scale, computed by gradxval in extra precision
REF = arr('eNrL3rV+qoBTli0AEZADYw==', '<f8', (1,))
SCALE = arr('eNrL3rV+qoBTli0AEZADYw==', '<f8', (1,))
UNDER = arr('eNpzzi7O2b072wEAEA4Drw==', '<f8', (1,))

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


import mygrad as mg
from mygrad.nnet.activations import sigmoid
xp = mg
COMPLEX = ()


def cast(a, dtype):
    return a.astype(dtype)


def to_backend(a):
    return mg.tensor(a)


def autodiff(A, x):
    with np.errstate(all="ignore"):
        loss = loss_of(A, sigmoid(x))
        loss.backward()
    gx = x.grad if x.grad is not None else np.zeros(x.shape, x.dtype)
    gA = A.grad if A.grad is not None else np.zeros(A.shape, A.dtype)
    return loss, np.asarray(gx).astype(x.dtype), np.asarray(gA).astype(A.dtype)


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
    result = dict(zip(QUANTITIES, autodiff(A, x)))
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
