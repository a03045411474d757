"""gradxval standalone reproducer: mygrad autodiff grad_x on saturated-float16-m37n5k3-s36700.

Uses only numpy and the framework. Prints the value, the reference and the error;
exits 1 while the disagreement persists, 0 once it is fixed."""

import base64, sys, zlib
import numpy as np


def arr(data, dtype, shape):
    raw = zlib.decompress(base64.b64decode(data))
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()

CASE_ID, BACKEND, METHOD, QUANTITY = 'saturated-float16-m37n5k3-s36700', 'mygrad', 'autodiff', 'grad_x'
DTYPE, EXPECTED_DTYPE = 'float16', 'float16'
VERSION_NOTE = 'found with mygrad 2.5.0'
U, ETA, TOL = 0.00048828125, 5.960464477539063e-08, 10.001559048062788
BF16 = False
A_IN = arr('eNoBcgGN/gy4IjxRsy++CrrJuH7AFbiZNa67CbG6Iuu0XDzDt9O5mj6DsTo2QzxcKxo86Txlt/K8HrIvPaG7FTGYtvCzC7Vftcs4NDR/uYe3kqSfNOo9Ea9hunRAMz8MOee52TRDuII/tjhrPGM8DbGDO+AwwbciOvS6hrN3QKksKTn6NaM8aTXFuduxC7xHPpU1qDTGvZkojT5luuS157APvNy9dbg1O2O4i7wlvVw8z0D3rDrB+rQDNy28Qr00pqE2G7K7sTiwbKnTu0W8sbwrvRC6fTIVtgI8FzpdMdW8CjqmvmO5dDuvOiyupL9UsBk74Z4dtElAbrkavJu4g7kCOIK2QjqmMz8p/71hQA6hMjs6sEuszbpSsLS3FDt7Ox+yMK46Pqw7wLnFnqyvH70JPchAji2dN2k5VbKLNyM2Rjpdv10+RjzRvUY55L01wD66cjnpNSq5HLh1vva5QbSoNBo0fTDNvVa3mDreNbO+bDRitsc0qbiol687', '<f2', (37, 5))
X_IN = arr('eNoBHgDh//XIY0mi0MFOYlBgUGfM/Eoqzk7Jg8jCSq7JDEyZzwGbEGM=', '<f2', (5, 3))
# reference and the error model's scale, computed by gradxval in extra precision
REF = arr('eNoBeACH/2RcLYHbYSO/Tm3fQgHkVz+HSgpPU3HYvA+Xkexx+uA968/rScS1KT3S2Xui8FMlPebnS3wGlV0+cdgas56b/T4SIlV4PjXjPcLl9qXHlSW/HE0Dg1cAUr8EkT+dvgkZP62RCTZigyI/KiwwthIX2D42rruPX7JzPaFKNsk=', '<f8', (5, 3))
SCALE = arr('eNoBeACH/+CbN0qhfmE/m247Gs3jcT8+9Zk1YhIAPX0vYF2y+uA9dR8BJLHCPT2NOROs/KszPb04C1BBTaU+y/PsNOgaIT9dvv3DJz4WPkoUnwww1FE/ix14/zTSlT9CEagYjH8lP3vF7+N92j4/XTsIrsc68D5BphRlMt+YPT+FM/Y=', '<f8', (5, 3))
UNDER = arr('eNoBeACH/x1ivce+FUZAC0O0/wwwakDPOEPTaoJWQLk1+ZPv8FBALHQlyipwZkAfXucWAvZbQEDI+3piND1Arjo4aKEjY0DquRWGzcZQQGWxhMU7i0ZAGgB5L/k5ZkCZcNdpaqFeQGpRA+ZssERAV8SfnNjcZEA/H3s8OZRWQF2iNCk=', '<f8', (5, 3))

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
