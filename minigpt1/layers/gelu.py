"""GELU, the tanh approximation GPT-1 used (O train.py `gelu`, HF `gelu_new`).

    y = 0.5 x (1 + tanh(u)),     u = sqrt(2/pi) (x + 0.044715 x^3)

Backward, with t = tanh(u) and the chain rule through u:
    dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,     du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
"""

import math
from typing import NamedTuple

from ..backend import fast_path, xp_of

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_COEF = 0.044715


class GeluCache(NamedTuple):
    x: object  # (...) the input
    tanh_u: object  # (...) tanh(u), shared by forward and backward


@fast_path
def gelu_forward(x):
    xp = xp_of(x)
    # x * x * x, not x**3: the power ufunc is about 150 times slower in float32
    u = SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x)  # (...)
    tanh_u = xp.tanh(u)  # (...)
    y = 0.5 * x * (1.0 + tanh_u)  # (...)
    return y, GeluCache(x, tanh_u)


@fast_path
def gelu_backward(dy, cache):
    x, t = cache
    # forward: u = sqrt(2/pi) (x + 0.044715 x^3)
    du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x * x)  # (...)
    # forward: y = 0.5 x (1 + t),  t = tanh(u), whose derivative is 1 - t^2
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx)  # (...)
