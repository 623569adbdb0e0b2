"""Layer normalisation over the last axis (GPT-1: eps 1e-5 inside the square root, biased variance).

    mu = mean(x),  var = mean((x - mu)^2),  rstd = 1 / sqrt(var + eps)
    xhat = (x - mu) * rstd
    y = xhat * g + b                              x: (..., C)   g, b: (C,)

Backward, with dxhat = dy * g (every mean is over the last axis):
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    dg = sum(dy * xhat)      db = sum(dy)         (sums over every leading position)
"""

from typing import NamedTuple

from ..backend import fused_kernels, xp_of
from ..fast.rows import row_mean


class LayerNormCache(NamedTuple):
    xhat: object  # (..., C) the normalised input
    rstd: object  # (..., 1) 1 / sqrt(var + eps)
    weight: object  # (C,) the gain g


def layernorm_forward(x, weight, bias, eps=1e-5):
    if (fused := fused_kernels(x)) is not None:  # a GPU: the lines below as one kernel
        y, xhat, rstd = fused.layernorm_forward(x, weight, bias, eps)
        return y, LayerNormCache(xhat, rstd, weight)
    xp = xp_of(x)
    mu = row_mean(x)  # (..., 1)
    xc = x - mu  # (..., C)
    var = row_mean(xc * xc)  # (..., 1)
    rstd = 1.0 / xp.sqrt(var + eps)  # (..., 1)
    xhat = xc
    xhat *= rstd  # (..., C), in place: xc is not needed again
    y = xhat * weight
    y += bias
    return y, LayerNormCache(xhat, rstd, weight)


def layernorm_backward(dy, cache):
    xhat, rstd, weight = cache
    if (fused := fused_kernels(dy)) is not None:  # a GPU: one kernel for dx, two sums
        return fused.layernorm_backward(dy, xhat, rstd, weight)
    C = xhat.shape[-1]
    # forward: y = xhat * g + b
    dy2 = dy.reshape(-1, C)  # (N, C)
    dweight = (dy2 * xhat.reshape(-1, C)).sum(axis=0)  # (C,)
    dbias = dy2.sum(axis=0)  # (C,)
    dxhat = dy * weight  # (..., C)
    # forward: xhat = (x - mu) * rstd, with mu and rstd functions of x
    mean_dxhat = row_mean(dxhat)  # (..., 1)
    mean_dxhat_xhat = row_mean(dxhat * xhat)  # (..., 1)
    dx = dxhat
    dx -= mean_dxhat
    dx -= xhat * mean_dxhat_xhat
    dx *= rstd
    return dx, dweight, dbias
