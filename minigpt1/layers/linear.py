"""Linear layer in HuggingFace Conv1D layout: the weight is stored [in, out].

    y = x @ W + b          x: (..., C_in)   W: (C_in, C_out)   b: (C_out,)

Backward, with dy = dL/dy:
    dx = dy @ W^T          dW = x^T @ dy (summed over every leading position)      db = sum(dy)
"""

from typing import NamedTuple


class LinearCache(NamedTuple):
    x: object  # (..., C_in) the input, needed for dW
    weight: object  # (C_in, C_out), needed for dx


def linear_forward(x, weight, bias):
    y = x @ weight  # (..., C_out)
    y += bias
    return y, LinearCache(x, weight)


def linear_backward(dy, cache):
    x, weight = cache
    # forward: y = x @ W + b
    dx = dy @ weight.T  # (..., C_in); a transposed view, BLAS reads it without a copy
    x2 = x.reshape(-1, x.shape[-1])  # (N, C_in)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, C_out)
    dweight = x2.T @ dy2  # (C_in, C_out)
    dbias = dy2.sum(axis=0)  # (C_out,)
    return dx, dweight, dbias
