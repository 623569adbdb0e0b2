"""GELU on the CPU with in-place NumPy operations: layers/gelu.py's math, fewer arrays.

Each NumPy expression such as `0.5 * x * (1.0 + t)` allocates a new array per operator;
written as in-place updates of the output buffers, the same formulas touch less fresh memory
and run about twice as fast on the (B, T, 4C) activations of the MLP.

In a training shard of one sequence (products.py) the rows are cut in 4 fixed parts
(batch_threads.fixed_parts), dealt out to the cores when the shard runs alone. Every
element's result is the same whichever part holds it.
"""

import numpy

from ..backend import register_fast_path
from ..layers.gelu import GELU_COEF, SQRT_2_OVER_PI, GeluCache
from .batch_threads import fixed_parts, map_dealt, parts_threads

MIN_SPLIT = 1 << 18  # elements worth waking another core for


def gelu_forward_into(x, y, tanh_u):
    """y = GELU(x) and tanh_u = tanh(u), written into the given arrays of x's shape. y may be
    tanh_u's array where tanh(u) is not needed afterwards: tanh(u) is read before y is written."""
    # u = sqrt(2/pi) (x + 0.044715 x^3) = (sqrt(2/pi) 0.044715 x^2 + sqrt(2/pi)) x, built in
    # tanh_u's memory: one pass fewer than the first form
    numpy.multiply(x, x, out=tanh_u)
    tanh_u *= SQRT_2_OVER_PI * GELU_COEF
    tanh_u += SQRT_2_OVER_PI
    tanh_u *= x
    numpy.tanh(tanh_u, out=tanh_u)
    # y = 0.5 x (1 + tanh(u))
    numpy.add(tanh_u, 1.0, out=y)
    y *= x
    y *= 0.5


def gelu_backward_into(dy, x, t, dx):
    """dx = dy * GELU'(x), with t = tanh(u) from the forward pass, written into dx; the
    derivative du/dx is built in dx's memory first."""
    # du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2) = sqrt(2/pi) 3 * 0.044715 x^2 + sqrt(2/pi)
    du_dx = numpy.multiply(x, x, out=dx)
    du_dx *= SQRT_2_OVER_PI * 3.0 * GELU_COEF
    du_dx += SQRT_2_OVER_PI
    # dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx
    local = t * t
    numpy.subtract(1.0, local, out=local)  # 1 - t^2
    local *= du_dx
    local *= x
    local += t
    local += 1.0
    local *= 0.5
    numpy.multiply(local, dy, out=dx)


def in_row_parts(fn, *arrays):
    """fn(*arrays) on every row; in a shard of one sequence, the rows in fixed parts."""
    threads = parts_threads()
    if threads is None or threads == 1 or arrays[0].size < MIN_SPLIT:
        fn(*arrays)  # the parts' numbers are the whole's: on one thread they would only cost
        return
    rows = [a.reshape(-1, a.shape[-1]) for a in arrays]  # (rows, C); views of the C-order outputs
    map_dealt(lambda part: fn(*(r[part] for r in rows)), fixed_parts(len(rows[0])), threads)


def gelu_forward_in_place(x):
    y, tanh_u = numpy.empty_like(x, order="C"), numpy.empty_like(x, order="C")
    in_row_parts(gelu_forward_into, x, y, tanh_u)
    return y, GeluCache(x, tanh_u)


def gelu_backward_in_place(dy, cache):
    dx = numpy.empty_like(dy, order="C")
    in_row_parts(gelu_backward_into, dy, cache.x, cache.tanh_u, dx)
    return dx


register_fast_path("gelu_forward", "cpu", gelu_forward_in_place)
register_fast_path("gelu_backward", "cpu", gelu_backward_in_place)
