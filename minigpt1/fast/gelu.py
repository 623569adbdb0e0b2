"""GELU on the CPU with in-place NumPy operations: layers/gelu.py's math, fewer arrays.

Each NumPy expression such as `0.5 * x * (1.0 + t)` allocates a new array per operator;
written as in-place updates of one or two buffers, the same formulas touch less fresh
memory and run about twice as fast on the (B, T, 4C) activations of the MLP.
"""

from ..backend import register_fast_path, xp_of
from ..layers.gelu import GELU_COEF, SQRT_2_OVER_PI, GeluCache


def gelu_forward_in_place(x):
    xp = xp_of(x)
    # u = sqrt(2/pi) (x + 0.044715 x^3), built in one buffer
    u = x * x * x
    u *= GELU_COEF
    u += x
    u *= SQRT_2_OVER_PI
    tanh_u = xp.tanh(u, out=u)  # reuse u's memory
    # y = 0.5 x (1 + tanh(u))
    y = tanh_u + 1.0
    y *= x
    y *= 0.5
    return y, GeluCache(x, tanh_u)


def gelu_backward_in_place(dy, cache):
    xp = xp_of(dy)
    x, t = cache
    # du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    du_dx = x * x
    du_dx *= 3.0 * GELU_COEF
    du_dx += 1.0
    du_dx *= SQRT_2_OVER_PI
    # dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx
    local = t * t
    xp.subtract(1.0, local, out=local)  # 1 - t^2
    local *= du_dx
    local *= x
    local += t
    local += 1.0
    local *= 0.5
    local *= dy
    return local


register_fast_path("gelu_forward", "cpu", gelu_forward_in_place)
register_fast_path("gelu_backward", "cpu", gelu_backward_in_place)
