"""Sums and means over the last axis, as matrix-vector products.

NumPy reduces a short row (the 32 to 768 numbers of a head, a token or a row of scores) with a
loop set up row by row; BLAS computes x @ ones in one vectorised sweep, 2 to 6 times faster
on the rows of a transformer. The result keeps a trailing axis of 1, to broadcast against x:
    row_sum(x)  == x.sum(axis=-1, keepdims=True)
    row_mean(x) == x.mean(axis=-1, keepdims=True)          (up to float rounding)
"""

import functools

from ..backend import xp_of


def _times_vector(x, value):
    """x (..., K) @ a vector of K copies of value -> (..., 1); one matrix-vector product
    (xp.dot: the same BLAS call as @, set up in a third less time for a few rows)."""
    K, xp = x.shape[-1], xp_of(x)
    vector = _constant_vector(xp, K, x.dtype, value)  # (K,)
    return xp.dot(x.reshape(-1, K), vector).reshape(*x.shape[:-1], 1)


@functools.lru_cache(maxsize=64)
def _constant_vector(xp, K, dtype, value):
    """K copies of value, made once per size: a step asks for the same few many times (a
    token's time in generation is a few hundred such calls)."""
    vector = xp.full(K, value, dtype=dtype)
    if hasattr(vector.flags, "writeable"):  # NumPy; a CuPy array has no such flag
        vector.flags.writeable = False
    return vector


def row_sum(x):
    """x (..., K) -> its sums over the last axis (..., 1)."""
    return _times_vector(x, 1.0)


def row_mean(x):
    """x (..., K) -> its means over the last axis (..., 1)."""
    return _times_vector(x, 1.0 / x.shape[-1])
