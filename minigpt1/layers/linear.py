"""Linear layer in HuggingFace Conv1D layout: the weight is stored [in, out].

    y = x @ W + b          x: (..., C_in)   W: (C_in, C_out)   b: (C_out,)

Backward, with dy = dL/dy:
    dx = dy @ W^T          dW = x^T @ dy (summed over every leading position)      db = sum(dy)
"""

from typing import NamedTuple

from ..backend import fast_path


class LinearCache(NamedTuple):
    x: object  # (..., C_in) the input, needed for dW
    weight: object  # (C_in, C_out), needed for dx


@fast_path
def matrix_product(a, b):
    """a (M, K) @ b (K, N): every matrix product of the linear layers and the tied LM head goes
    through here, so that a training step can cut them into blocks over the CPU's cores
    (fast/products.py)."""
    return a @ b


def linear_forward(x, weight, bias):
    # one (N, C_in) @ (C_in, C_out) product: a stack of B smaller ones runs slower in BLAS
    y = matrix_product(x.reshape(-1, x.shape[-1]), weight)  # (N, C_out)
    y += bias
    return y.reshape(*x.shape[:-1], weight.shape[1]), LinearCache(x, weight)


def linear_backward(dy, cache):
    x, weight = cache
    # forward: y = x @ W + b
    x2 = x.reshape(-1, x.shape[-1])  # (N, C_in)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, C_out)
    dx = matrix_product(dy2, weight.T)  # (N, C_in); a transposed view, read without a copy
    dweight = matrix_product(x2.T, dy2)  # (C_in, C_out)
    dbias = dy2.sum(axis=0)  # (C_out,)
    return dx.reshape(x.shape), dweight, dbias
