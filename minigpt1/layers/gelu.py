"""GELU, the tanh approximation GPT-1 used (O train.py `gelu`, HF `gelu_new`).

    y = 0.5 x (1 + tanh(u)),     u = sqrt(2/pi) (x + 0.044715 x^3)

Backward, with t = tanh(u):
    dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
"""

import math
from typing import NamedTuple

from ..backend import fused_kernels, xp_of

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_COEF = 0.044715


class GeluCache(NamedTuple):
    x: object  # (...) the input
    tanh_u: object  # (...) tanh(u), shared by forward and backward


def gelu_forward(x):
    if (fused := fused_kernels(x)) is not None:  # a GPU: the lines below as one kernel
        y, tanh_u = fused.gelu_forward(x)
        return y, GeluCache(x, tanh_u)
    xp = xp_of(x)
    # x*x*x, not x**3: the power ufunc is about 150 times slower in float32
    u = x * x * x
    u *= GELU_COEF
    u += x
    u *= SQRT_2_OVER_PI
    tanh_u = xp.tanh(u, out=u)  # reuse u's memory
    y = tanh_u + 1.0
    y *= x
    y *= 0.5
    return y, GeluCache(x, tanh_u)


def gelu_backward(dy, cache):
    x, t = cache
    if (fused := fused_kernels(dy)) is not None:  # a GPU: the lines below as one kernel
        return fused.gelu_backward(dy, x, t)
    # forward: y = 0.5 x (1 + t),  t = tanh(sqrt(2/pi) (x + 0.044715 x^3))
    du_dx = x * x
    du_dx *= 3.0 * GELU_COEF
    du_dx += 1.0
    du_dx *= SQRT_2_OVER_PI
    dt_du = 1.0 - t * t
    # dy/dx = 0.5 (1 + t) + 0.5 x (dt/du) (du/dx)
    local = dt_du * du_dx
    local *= x
    local += t
    local += 1.0
    local *= 0.5
    local *= dy
    return local
