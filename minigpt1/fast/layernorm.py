"""LayerNorm on the CPU: layers/layernorm.py's math with BLAS row means and in-place updates.

The means over a row of C channels are matrix-vector products (row_sums.py), and the centred
input becomes xhat in its own memory instead of in a new array. Generation, which keeps no
cache, normalises its rows in their own memory (layernorm_in_place, for fast/decode.py).
"""

from ..backend import register_fast_path, xp_of
from ..layers.layernorm import LayerNormCache
from .row_sums import row_mean


def layernorm_forward_rows(x, weight, bias, eps=1e-5):
    xp = xp_of(x)
    mu = row_mean(x)  # (..., 1)
    xhat = x - mu  # (..., C) centred; scaled to xhat in place below
    var = row_mean(xhat * xhat)  # (..., 1)
    rstd = 1.0 / xp.sqrt(var + eps)  # (..., 1)
    xhat *= rstd
    y = xhat * weight
    y += bias
    return y, LayerNormCache(xhat, rstd, weight)


def layernorm_in_place(x, weight, bias, eps=1e-5):
    """x (..., C) overwritten with LayerNorm(x), for inference: no cache, no new (..., C) array.
    With no rstd to keep for a backward pass, it divides by sqrt(var + eps): one call fewer."""
    x -= row_mean(x)  # centred
    x /= xp_of(x).sqrt(row_mean(x * x) + eps)  # (..., C) / (..., 1)
    x *= weight
    x += bias
    return x


def layernorm_backward_rows(dy, cache):
    xhat, rstd, weight = cache
    C = xhat.shape[-1]
    dy2 = dy.reshape(-1, C)  # (N, C)
    dweight = (dy2 * xhat.reshape(-1, C)).sum(axis=0)  # (C,)
    dbias = dy2.sum(axis=0)  # (C,)
    dx = dy * weight  # (..., C): dxhat, turned into dx in place
    mean_dxhat_xhat = row_mean(dx * xhat)  # (..., 1)
    dx -= row_mean(dx)
    dx -= xhat * mean_dxhat_xhat
    dx *= rstd
    return dx, dweight, dbias


register_fast_path("layernorm_forward", "cpu", layernorm_forward_rows)
register_fast_path("layernorm_backward", "cpu", layernorm_backward_rows)
