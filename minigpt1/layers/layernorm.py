"""Layer normalisation over the last axis (GPT-1: eps 1e-5 inside the square root, biased variance).

    mu = mean(x),  var = mean((x - mu)^2),  rstd = 1 / sqrt(var + eps)
    xhat = (x - mu) * rstd
    y = xhat * g + b                              x: (..., C)   g, b: (C,)

Backward, with dxhat = dy * g (every mean is over the last axis). Each xhat_j depends on
every x_i of its row, through mu and through rstd (d rstd / dx_i = -rstd^2 xhat_i / C):
    dxhat_j / dx_i = rstd (delta_ij - 1/C - xhat_i xhat_j / C)
so, summing dxhat_j times that over j:
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    dg = sum(dy * xhat)      db = sum(dy)         (sums over every leading position)
"""

from typing import NamedTuple

from ..backend import fast_path, xp_of


class LayerNormCache(NamedTuple):
    xhat: object  # (..., C) the normalised input
    rstd: object  # (..., 1) 1 / sqrt(var + eps)
    weight: object  # (C,) the gain g


@fast_path
def layernorm_forward(x, weight, bias, eps=1e-5):
    xp = xp_of(x)
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mu  # (..., C) centred
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (..., 1), biased: divided by C
    rstd = 1.0 / xp.sqrt(var + eps)  # (..., 1)
    xhat = xc * rstd  # (..., C)
    y = xhat * weight + bias  # (..., C)
    return y, LayerNormCache(xhat, rstd, weight)


@fast_path
def layernorm_backward(dy, cache):
    xhat, rstd, weight = cache
    C = xhat.shape[-1]
    # forward: y = xhat * g + b; g and b are shared by every position, so their gradients add up
    dweight = (dy * xhat).reshape(-1, C).sum(axis=0)  # (C,)
    dbias = dy.reshape(-1, C).sum(axis=0)  # (C,)
    dxhat = dy * weight  # (..., C)
    # forward: xhat = (x - mu) * rstd, with mu and rstd functions of x
    mean_dxhat = dxhat.mean(axis=-1, keepdims=True)  # (..., 1)
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)  # (..., 1)
    dx = rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)  # (..., C)
    return dx, dweight, dbias
