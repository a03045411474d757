"""gradxval standalone reproducer: autograd autodiff grad_x on extreme-complex128-m13n11-s750574.

Uses only numpy and the framework. Prints the value, the reference and the error;
exits 1 while the disagreement persists, 0 once it is fixed."""

import base64, sys, zlib
import numpy as np


def arr(data, dtype, shape):
    raw = zlib.decompress(base64.b64decode(data))
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()

CASE_ID, BACKEND, METHOD, QUANTITY = 'extreme-complex128-m13n11-s750574', 'autograd', 'autodiff', 'grad_x'
DTYPE, EXPECTED_DTYPE = 'complex128', 'float64'
VERSION_NOTE = 'found with autograd 1.9.1'
U, ETA, TOL = 1.1102230246251565e-16, 5e-324, 16.92217606581939
BF16 = False
A_IN = arr('eNoNlYk7FAgfgBU2H51uyrG0VEuUZAk/hj456ks2X6Y2JldIWxJZKkdylNDgUShXupC7SH4Yd4hxGwwzg5lxjTGFSrZ/4X2e9323vPyt3lfjCwTV3krbLTwJT6h30lyF+DDBkzAO1JnF2OxN4LjKgw/v3oS8Fx/ERYKXVb79OHSqdLCNGlawsFyk9EwUBdw8Hffa9k2gUiaf0VfJAWupzAdvPJmQ1XtxfUd6H74OdbpmYMxCFFlNrz1NxwODxbZM0hswVBUN5Sx3oZUegVm2RgV/DbnGWPY80re+UE9eZ4GOTFKGTtwY8C8e8iPX07BMu8ezZZ0GQjlCnXodxWBwItos5xMLj8od99l7h4OpU54DrZRGNHE/5l45uYDH8iIIDzy4GMrNcegcG4PgsrtqAQk0LG3sikP5aZA02pHr11CK3i7xs75HxsHsVAedzK/EZz5xdtJCM1ASF0+LiW6F9fPqcse02fCyWjx9k97G2mL/Gyn3GsdBy3xS4Z/HU6jWkCDrQmJDWfYh91DKAGjQ2loOHU5Hy3hBbl4+F0glXyldr7vQ4abFccHGfpS1Lkz6bfciSpIvO0s5vkUPzesb5nZygBiX6K1vU4y0TKqJ5tIwvHrvENGS/Rm+y+jquuozQCJvn++RrDGQDTfh+tNeoePGA72vL7HQbT3mUfUrHoTrXTrKU5zAdZVfdxoRytAI0puHmHOg2y3pw6j9jOdjtER6WRPwh7hBpfzIAoyQYtIP5s1he/IJ+fa+CSA+qVS0tG2HUQ+VcmfvUUhNFnBmFJhIzz2zHLAyjN1RwVrVF/rANqRKX2+xH2S2hcX2+I5Ah6PFUJfNAGqFGY4VXyyCw+qUbxIjg5h941NdalQHRibV2G4/OYIG1/WoJD4DV29V7CI+FYBgrUZcWHocRl/MegVOJYH5ZqEubeE57G8p0NaPZmKGnMaUTEof5kWL+z+OrkR1vbxNu1kV2BT4Mkk+iInOK8lNMes1eMEiw8DDQIBG/YZHGt0YaPrqcDr59mso3alW+cVsEszpbZoNhEIMueajEq3/BM1+b6Zlb6eji2mEtH8DGyTjQ8t6WnmgTXZTfX+ZjTEc47qn0IJ+5k4uj5240L6xMfZ/boMoiLHTvhIXj0t7IsQCshpQOX6orkKPjsoFCzbqbvPgoOA0W6UvADnp+P9/yGHAsneFU2sWDV1idyWRc8dh7Vz24d6Ez/jXXNHRO0tdULgSdcFQiQKBSznLymfvgtefHi25xDqs+fHHH1uthyAjM9BmWKscjH3L43X/aoN6aR+371pTmEreIlA4uQIbSv6S/ZFfC5s+frn6Z2g5XicpzBcsC5th71O/p8QuUDeXOPrRYhat9uaKsr0LURB75vtw3jw0ftyrIhPFAyORs4Y00wpkzIuuu9TPYeR5ywWuvQEcrdox3J/PxT1SutJXhoTMfLQ9DfuzfvJcVpI6P0CHTg+ZmeZIGva8biI/smuGK2ZZKQ8ef4Wv0mGramUCDCz97+ohmIGZQ5ZaB3xn4WDsxc3b9GmQfrR534SYUK31Ayv40N0EKYmRHPb0CKwFddh6zTNh9GByQIwmHZYXiBJno74Byd/YSzNpBr1WP5ku8T7i9dX1qgKNQTgSlicbGDoEg4TCEOvTs6jR/OLJD/FJVFreF3Z78Ruk6v0jW/lyGsxLNuQ/I/KxtEhZNkyaD4566sYGujWo6qTg7ZfdCmFdO5wOWuVC4q1Gl5YyBhzvyLpX/x8OMtSXLm+JXYHSjgRn8yNUpFaLLVYON0Np71pl79V+kPK/NxDdOIt1CcFpZ+2ooGrpasKjcIFp/5bAV57AOHpBleriFL6jtor+njaLDvmWFTxjFuxx4AXturWI/s5vwq5e5uOJHqeV1bElLIiM1RVTH4K7zvczUpXfgu2Yjwjr+TR2m3VuP5lSjRc0JUrqzzEgQOHGXZPbbLx7v6koOpYK2/xl/r7EeYcXmor0/IMFcHrnw27TQjYGBt+xS2Yu4PK4zhOxuhkw61COpEWOY5B1rmrImWKwLFhXSs5uQtXyTzUxrq2gdZmwKCPcg0kNZCMHagcqHGS1kRS+4hWnb8Si1kYI2K8YQH3+GSkybbz6HyugsT03zlOOjRlnWvlvd3ejPcfSsVKIjsx14/s9kvnQuSUxb+fIFP4i3qbkHsBGoasPtzEzmpG0stmzpa0Zdj4VPmVzoRjT9oHmQi0d/OINmrQjm+DM2LTHu0UGXLHfV2VmTIGa3TQKJ50FNQE3r3nq0PFZorWI9rMVSN1PDLDr+YzZLQFBrJk6DNfZmO66eQEqC/q3tisNwGTKuWWdIibUl+1/z2X2wK7Dh2xoO0ZxouTOgVpCHxKkPauIqnWgGs40tSjhgcmQdf7kQS5mPlcuiOuuAkliEUWeNY1Tohx1q/x5JDpIbGPoTYDODVU5pcUqWP3bSspybQLETqc+HcguwcnatyGSprnYfqxVR2ELH3zyL9o73RzHTUulN53TFrDV73Hqr+VdaJS/fMvLiIMLpG33HS8Ng+ajPTmDa0K12ecKjVwLP0Kg4z3D3BCh2mQbNZZiMBl7yTkmKbrjoF+SJvqifAj44QPRYz89UTqXqKZr1wF1wR5kDFoAyukpMcbZn8V6HCl1uZ2KgUqN+uSlXjxJsm2J49fBpUv2tm+vLCF38bD8w4cNYNOQubWA2gSknIhd6SE8sJe9K1NBmINfEhv6wnXaINnGbSkt9g0ue39JYD2awKW1N7293Ek8aSTfLrIyiAnHKdPuXgOgSHDmfj3Vjq8f2b4TLaahpKvvwHYBB3ztiDmKijPYX7jZcXNOP67xNwpIBSs/PzpfP6rzAsMq0rtV3JlomSCzy6JlBuwzPvDX3LnwQPpOQtb+MWwSvregr8LHCM2uUWJwL8oeK3KxE52CuI+K7roRDeiTqTIaIkdHhagE0/W0PkzOnxD+s5qFFE6Ja7LOLLDT2k5/oK+Cmlr1uKYSB8Itfr9O8OzEfwFcEMV1', '<c16', (13, 11))
X_IN = arr('eNq7ktemxDxPzIEBDD78v9q+3fmof9+BB31ThC8bGzl8eNVfwG3QfwAqX+9fkLXnr1CKQ4CvKFMi+x/7ts9Pp6fdbzvwZ3XyLbl1Tg4i+/4Ve55QcAAARzEmPQ==', '<f8', (11,))
# reference and the error model's scale, computed by gradxval in extra precision
REF = arr('eNorlbXknly+3J4BDUxTlJSYINphhy4e655cZHN4p6H9/MzCK4e/2+sd4AeLqyzccq4w776N1P0VV3nLi+wBzVYV6g==', '<f8', (11,))
SCALE = arr('eNo7cjtCkUX8iT0DGrhcw8N1uny7Hbq497uYNLZ3jw0FQ9Sdk6K0HeROJDCBxJcc+nxc/AqzbefJq7tmGc23BwAuchcK', '<f8', (11,))
UNDER = arr('eNoBWACn/7g45T5NsGZAEZQdg1aQXkBdgWe8XiRcQGgsCyoLXVxAZlenLSY4YkCdvY/4LU5eQEX7kXceLGBAkaAQJoBkW0D3xQ0dHG9iQF6tYtypnmJAVsyU73frYEDnfSP7', '<f8', (11,))

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


import autograd
import autograd.numpy as xp
import ml_dtypes
from autograd.scipy.special import expit
COMPLEX = (np.complex64, np.complex128)


def cast(a, dtype):
    return a.astype(dtype)


def to_backend(a):
    return a.view(ml_dtypes.bfloat16) if BF16 and a.dtype == np.uint16 else a


def autodiff(A, x):
    f = lambda A, x: loss_of(A, expit(x))
    loss, gA = autograd.value_and_grad(f, 0)(A, x)
    return loss, autograd.grad(f, 1)(A, x), np.conj(gA)  # torch's complex convention


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
