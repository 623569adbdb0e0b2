"""Inverted dropout: zero each element with probability p, scale the survivors by 1/(1-p).

    y = x * mask,   mask = (u >= p) / (1 - p),   u ~ Uniform[0, 1) drawn from the caller's generator

The generator is an argument, never a global: the same seed gives the same masks, which is what
makes a gradient check with dropout on (and an exactly resumable run) possible.
Backward: dx = dy * mask. With p = 0 (or in evaluation) the layer is the identity.

`noise_shape` draws a smaller mask that broadcasts over x: (B, 1, C) for x (B, K, C) drops the
same channels of all K answer candidates of an example, as GPT-1's classifier dropout did.
"""

from typing import NamedTuple

from ..backend import xp_of


class DropoutCache(NamedTuple):
    mask: object  # (...) 0 or 1/(1-p), x's shape or noise_shape; None when the identity


def dropout_forward(x, p, rng, noise_shape=None):
    if p == 0.0:
        return x, DropoutCache(None)
    if not 0.0 < p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if rng is None:
        raise ValueError("dropout with p > 0 needs a random generator (rng=...); p=0 disables it")
    xp = xp_of(x)
    # the generator may live on another device than x (a NumPy generator for a CuPy model)
    shape = x.shape if noise_shape is None else noise_shape
    keep = xp.asarray(rng.random(shape, dtype=x.dtype)) >= p  # (...) bool
    mask = keep.astype(x.dtype)
    mask *= 1.0 / (1.0 - p)
    return x * mask, DropoutCache(mask)


def dropout_backward(dy, cache):
    # forward: y = x * mask
    if cache.mask is None:
        return dy
    return dy * cache.mask
