"""gradxval standalone reproducer: jax autodiff grad_A on extreme-complex64-m13n11-s442710.

Uses only numpy and the framework. Prints the value, the reference and the error;
exits 1 while the disagreement persists, 0 once it is fixed."""

import base64, sys, zlib
import numpy as np


def arr(data, dtype, shape):
    raw = zlib.decompress(base64.b64decode(data))
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()

CASE_ID, BACKEND, METHOD, QUANTITY = 'extreme-complex64-m13n11-s442710', 'jax', 'autodiff', 'grad_A'
DTYPE, EXPECTED_DTYPE = 'complex64', 'complex64'
VERSION_NOTE = 'found with jax 0.10.2'
U, ETA, TOL = 5.960464477539063e-08, 1.401298464324817e-45, 15.92217606581939
BF16 = False
A_IN = arr('eNoN0otXzQccAHB2ez/WQ3G73VIyaqiVsnLv7/tNqyOnc+V45U5zjVJRjJgdSlclREfJiihRadNjWe1Mq9/3S7YWk5rH0OjJ1q05m7u7xI1tn7/h4/wyBPcZRN5oUgsmzifw+/pQnLlpKeWNVtKKkeP8kdMe8taPU80rR2j3b+Dztw7jXMkNeN01BQyLtWDXHCCUddWierhbIVVkgGuZO29RmNO2aY6chirKNpEognR+WB4l5bezfdmpIYZHV+vgV2ULVp18JrhNyaKxrmm8vDaapT+aosMa3cJ+zReYq3KkoJfBPHG7AxKqbbCzLkDMSFnExlUW6HnhDD3cdU4slDmx/eQjbKhoI7k+jN0mDtG7I4kY8pYjq3sDsNXwBIYrzlJpiRqfl8VDW8Ns9nxzFVMTboZUPE7FmP73BL99GbzW2loZGzpBfrnLUeHbjIcDU1G/KA7qXJR4b4GPeOKfWHjygYI7q2ygMX+k1eumjAbSj1NBiquQ6/YlRQ6lctMngdB53gorfbLJb8gH5eMyNHfZjz8oukm12Z+dRpI5OUzO475L+IFUwue8c/hexn36bNINOF0+GX+OSMPFPROQpwnnCN1mXvPvoPhnswauNyWgzYVscl71B7mfdOC6fAPIm+3I4v1hUOfkwUWhkNdpe0F7rBi/bX6oODn0WrQ03gKLjU7kJXuuHFjyKQV2Nwo2GWq2mPiFLmrbQT6QizMlVdQSmUXF5l8pZiYEc8qsK2AM0wnbfNIgPb0Xr8s6aLetLzu8yEIyRvIOjbPobmLFD+734FimP8aobTh5xyXlpbxVrLW0F/SZW0kXW8TNDgVQV/GUQuLaQb/0KdRs6BLG1q3goIgSRZm0iOsPWHK4QQTT2gao33NIyGyKowpBYHf5HXhz+oD4UpfUWhm1k9s0d+FVay2N3YumR6Irbn0yD+M9D6OZQyG19E2HGWa2+LnUG03OeMCiqLX8NGAvNHxXRCVzVJxy1gP9PzRDt5pyWBvcCZuzqjBML8HVRyL4wf9nx3ussOBqL6BrAEyfP8ya6rnYYjEHR9cfI1CpMOnxb9AYfw1aVUPipuJimqqX4vD8HJ4llqI2vwj93vHEqvWVlDV1i7ghyBOrX1wnxdE+CIzy4vEMEQZzyymeSmHpQS/YOzmZE21j2DHdHpLCUkCX0yVcKZrHZr22/OyCJRprkiBxcBBc2jaxJm0dyfdEon1aHTz6uFD4Jq6RZenOfPWIN4t2wwurg4PockemMGpaAmF2Uup3WcCpRgva3sPC5d0BnL5sA4NaivITiRh91xmlodk8xyea1UPW3LRRxHj7EkCrU1S6/Cc8OnKajbMPcc21WL7jMUDnr2ynmL52wUtyg/K3BAvhHn8JhjV72ZioZOtuGTqM3RZt68+JeS7e7DIjn9/0f916d38crtw1Cbr/dhQurZSg+ZQcuHzfW9Cd2om3a/tYp43EZaZuaFz4u1JnCOJbmg5akifQ1tWW8B+J8iJK', '<c8', (13, 11))
X_IN = arr('eNq7k9DvcHLRikOrg48enqYffZCBoeF/T4bwQVlF9yO73TY4Afn1UYcfHrxndMcBAPabFbU=', '<f4', (11,))
# reference and the error model's scale, computed by gradxval in extra precision
REF = arr('eNplkns8lPkex4WGJuy4pcmQXUytkklkipnnodNxWSIOR1gx7mLcTZiQS1aTxImsRkLaLpgxxjQuj+fxchmr9qCbS5s0zaI1HKEGI53/5/n99359/3m/3r9PQlOmlGIlBh7IfYNtZ2nAxXzHd8aFzmQDp/azA0lDdqei67xelboTQnjWF49z/jA0/+S5V+1RIzXeBu+9o4BIVVJ4RZq1uXgNLQAnte2PO1mKumMX01vWw8SAkrtVk7JRGKDIlhjeyVK6H4Uvlnxw8hp3eHOU42p2XgwUpThwvhqEAekp0rG/eDJY18d1xODpLPzBmEmS3Q8WjqvEjZtneQjdHG0yi9k09mWnL3bZs2fZjMi3tv+17+55cWVrV+OBxz2KPsEn7l72uWkK22qzSkZf6sCKd9zq959qZDK4W6A9YKU5BytyVO27b0v28VCiY0bZllEQ5Nw2VOv9SQZP5jBUf1Cbg3d1RSmz9FXBcfu6p4Gq2zBhSUPTcDOGHKaNqOTGhAnv1iSk3mclEEx2JtKHyqPYT1JXdGiLIqqP0r4M2vtelO8l4p71sVsk4JDGGWr9s4MoXx9J5weRpypYYR+gGRm4DSty7XfV60mDFyn7R3t9buUnQ4aH7vglu6mCoeopxHifbfh4bmoJOZsHu8R438F6YMCagjbR6QUD4Y5dWg8IE3FkpKEMK95txObXNJrn5icRau1e3TRWT++RlC3jM8qGUf8dqfb62a/Xp3vG534qaIqzBhTvyzeO+ky08eDrxDTt9hIMqMjF1zluWyNEKA5Y8szOy6L8HZS/ttTCg53XXZ4OFWFA1wfDfGqeHIAHkw6rRslhxmQ3mTocSlaPXwyoF4YKzRdKs/KqIwiH+vPcTAoj2L469U0SGkJVb6nIafJGUH2fGRLzfugkAsobM3caGoiovh2dvuoqz+XAv6aqWRkCOazI/qbgI5YskWLn2XUOmU2E+NOcx/xhOUAaPR1rzZHD7ZqbP1vu3wI2Pmvs5dmrgKZB/DNdVjTydKXE4t8z0eT+X+7LEf1IQtXh3XpMWzrhQLMSdB5BqBylSsHkx0FU3yuxb6d+tz8AjNFXsC0iK1Tf0cH/wMLELeDE2qgLI0UFRLEI1+fnn0S5kh1t/aSDQYn2escHY7YAs1OMW4F0FTDpoGob/ds8kKsPWZXrymC1nFHhLxZe5O1xyVHJxM9CG6wRhlvnQ4Dmn1fG7Kexw5pXqtZFzVQi1Wjs66UuVN8jb3hrWr/pAYsjhd2tOFNUX/rXcu0F54/ANV6aJ9NPBiuyFp7ubvo6mDJ7LOVhOCMOwgS00Z0dPwJymexMoJcMbv/xzRzipQQ+7+usJ91WBlOTdlZR9kWQmyMyhyFcNNnzvW+N690Ywj8dgh1oJ+IJenyd2c2EPmp8IQuqs0D3jVhVFzM+WwBt2ONDjJ4jqL6QRNcal6sEHjEbiTYbUwYV2c7Ast3TJJWCGHCKhavpFKXqeHFnlhL4Y1am/7FnyuDlAl2BGfI3bOkQQZupkAL0S9ziJ+5nhZpp+1qzmd7kr3qfT+sq+7I/2jxaWE/2I1RtzBixpjk990r7r+qptaJ82Qt/jg3g98CppqB4qsYA5bt9breNQHMBZmpJ1/rmpYAid8iUHr7ICYEs8x9sX6sLpYR2NYbfxizAvQHNYYffSwHOhGbQuSVlcGIFZGX/xIXTnAL63ZnR5Bv7Qo4l6uoL54AbHd+64gmS3slFTBWe7bFzU59fMkh1/ATNC2JSUHvI6P4GzjhbAW0kPbJIOoW6+3Nf/oNqrgIKa5MqejK5sCLPE0X1HgEMSnXc25nneDPIyDbc2M5EBVxNDXkcm86FExJx6yoeXICkS2xYbpbCNl8E4ih9fTKr3O6a1jVvoVYkpjK2Gk9Ijx0YmC70Y6+UiSevXEihhpDFmrH6rSgfqWEHx+1/U1RVN6Zfd6sBar9Sf8YFFyYXaPw1Zwu/YxFW5FXCgFOboRnldtW9q+HcUIhVtY5fY3CBKZKZGnNDCjMODlSl07HI7yqz3tOh2ohXx6u/JAZJQnsog3opK124o2nn28XeVDZJ63a5k0cWu6Vy64X9pZGe/ovf7w1sf4nyLZKLQt1e28IP4Yk9iNAB5funsYRi2IVFjquulp6+qY0osjLzYV2yRy7k+92bu3ZJhZCRoYbJHj4WKdYZFfxWqo2Q8l0aeCQcUsHMyMZcUAcPhBeUiJZThZ1NZrrGFQlkXs0dj+X4DLbXB1amqWUKYZN5MGDY9UVP1SvaVQuDP1D79T8pcshFTsL1gu625MM2qP2m5b7buHceh5xKv1D0slUdVOTGU6uC/vV8SNhH9NLen01xzoEs/QNxSBD2yxn/x+rg/wGAnpAJ', '<c16', (13, 11))
SCALE = arr('eNpLKvgfOXODksOSHUen5ul0WPBpCc9liu6VuR85wUjZ5ZkdAxSULGW9ff2hnz2Mv0uzxOT0MyUHGO0d6JigyDfd1qWttuTKQyWHhBcVft/myDr0TLwlvUit2WKNoAX/VMd2mQnNx+xOL34IN9f+Y/EJ03IPuLmp1x/tu/JJ1gFGF30zjr3oPMl2Uii/3/dXsg5Pnh9w+rpLwaHTRcJw9uJWi7TpaqWS7l0ygbcOH2t89xhu7vNNm+d/WeINN/fJ/aNNFa8VHGC0ctqE9KDFU2znycr/Y3uu4OA1I/LNzzxlh5ZVj0+uUuq0uG+1tpW9rU/meIHPxI9qz+Hm/rXZ9dqELwBubtWZ/eeDlys7wOjJuTddf/6Ybls15WC91iJlBxNF101CvpIObpM8ZuyLabC4tWKS38p7zTK67gsel6vcg5v7SP8Su8lzF7i5j/T4jAumSTrA6CslXZtfmvbbBsh4fNzeL+ngZXaLacJZSQeWz0nnr61vsLBZztg20blFZkJSZ0L3XoS5em73N0cHusLN/bOcRyJJQsoBRuuV2t3OvNJv61Yhuq1dUMrh8rbN/gcfKTuotC+cmLWj0+LUuX9yD637ZYRcq2sebECEQybHLrc7uYhwOFul9CZLRsUBRiemT6s53T7DVjpf646SuIrDqdutq+2alB3is35fnWbdabFMQtbSe0mfzIKscuNntghzOYsEbBXkEObmLY7Ou7BL2QFGs8cEqe8TmGEru8aFYdFWZYfQgm0V8VqqDvts1pzUSOi2mHT7/HSr+RNk1nxl9NE3fwk3t+1p2Nn2mkC4uUz5M4X2p6s6wOh0pouC76Vn2ZZpZ/6XT1J1OFHQW6p3kd9Bp8eNo2VyicXCCbd3rvtTIdPKIbH90edLcHPLdm8/FeVpBTdXf9q5qh1iAg4wOlIy5+jF+c22k7nDr9YJCThkBS4P0EvmcPCTOLvuR1e+RaRHR/IvtWKZ/psKEpd4z8LN/eazfvp3VRO4udeXNsx6upLDAUZ7bLMRSxGtsxXwTCvPXszhcPvD5Kqt/xQc3m9MDrT53WqR8yKqsHljl0ycxIQrFvZP4OZWfHyY+FzEB26uYkqx/l99RQcYrabuvP7ptym2/2YErqnUVnQ4dWGuix+vskOKedTTsCUdFjaHPWTnv+mVEfO2zZ+6CVE+TKiY/Y+t2h9u7sFG7Y89LsoOMDrjZWtvbcN021fHP0ystVd2AABenqYq', '<f8', (13, 11))
UNDER = arr('eNrbpVlicvqZmsMuKtObsgvjs34qUZ1+cv9oU8VrFarTVWf2nw9erk51ulC8XdLitALV6X/BbDyGPIpUp89WKb3JktGgOp23ODrvwi51qtNM+TOF9qdrUp3Wn3auaoeYBNXpN0EOZz+FiFCdVkwp1v+rr0p1+mCj9sceF3Wq0wBUU+Q8', '<f8', (13, 11))

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
