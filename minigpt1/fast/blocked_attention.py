"""Causal attention computed one block of queries at a time: the same function, less work.

Under the causal mask, query i never looks at keys after i, so the upper triangle of the
(T, T) score matrix is computed only to be thrown away. Cut the queries into blocks of
QUERY_BLOCK rows; block [a, b) needs only the keys [0, b):

    for each block [a, b):
        y_h[a:b] = softmax_causal(q[a:b] @ k[:b]^T) @ v[:b]          (B, nh, b - a, hs)

With T = 512 and blocks of 128 the four blocks touch 1 + 2 + 3 + 4 = 10 of the 16 tiles of
the full matrix: 5/8 of the products and of the softmax's passes over memory. The loop runs
over blocks of queries, never over heads, and each block is `attend` of attention.py; the
backward pass walks the same blocks, and dk, dv add up the contributions of every block
whose queries saw them. This is the idea behind FlashAttention's tiling, without its fusion.

attention.py stays the readable reference (one (T, T) matrix, whose probabilities the
attention maps show); tests check that both give the same outputs and gradients.
"""

import math
from typing import NamedTuple

from ..backend import xp_of
from ..layers.attention import attend, attend_backward, merge_heads, split_heads

QUERY_BLOCK = 128  # rows per block: big enough for efficient matmuls, small enough to skip


class BlockedAttentionCache(NamedTuple):
    q: object  # (B, nh, T, hs) the queries, already scaled by 1/sqrt(hs)
    k: object  # (B, nh, T, hs)
    v: object  # (B, nh, T, hs)
    blocks: list  # per block of queries: (probs, probs_dropped, dropout cache), probs (.., b-a, b)
    y: object  # (B, T, C) the output
    block: int  # queries per block

    @property
    def probs(self):
        """The full (B, nh, T, T) probabilities, zeros above the diagonal (for attention maps)."""
        B, nh, T, _ = self.q.shape
        full = xp_of(self.q).zeros((B, nh, T, T), dtype=self.q.dtype)
        for a, (probs, _, _) in zip(range(0, T, self.block), self.blocks, strict=True):
            full[:, :, a : a + probs.shape[2], : probs.shape[3]] = probs
        return full


def blocked_attention_forward(qkv, n_head, attn_pdrop=0.0, rng=None, block=QUERY_BLOCK):
    """qkv (B, T, 3C) -> y (B, T, C), as attention_forward without a past."""
    xp = xp_of(qkv)
    C = qkv.shape[-1] // 3
    q, k, v = (split_heads(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))
    q = q * (1.0 / math.sqrt(C // n_head))  # (B, nh, T, hs), a contiguous copy
    T = q.shape[2]
    y_h = xp.empty_like(q)  # (B, nh, T, hs)
    blocks = []
    for a in range(0, T, block):
        b = min(a + block, T)  # queries [a, b) see keys [0, b)
        y_block, *saved = attend(q[:, :, a:b], k[:, :, :b], v[:, :, :b], attn_pdrop, rng)
        y_h[:, :, a:b] = y_block
        blocks.append(saved)
    y = merge_heads(y_h)  # (B, T, C)
    return y, BlockedAttentionCache(q, k, v, blocks, y, block)


def blocked_attention_backward(dy, cache):
    """dy (B, T, C) -> dqkv (B, T, 3C)."""
    xp = xp_of(dy)
    q, k, v, blocks, y, block = cache
    n_head, T, hs = q.shape[1], q.shape[2], q.shape[3]
    dy_h, y_h = split_heads(dy, n_head), split_heads(y, n_head)  # (B, nh, T, hs)
    dq = xp.empty_like(q)
    dk, dv = xp.zeros_like(q), xp.zeros_like(q)  # every block adds into the keys it saw
    for a, saved in zip(range(0, T, block), blocks, strict=True):
        b = min(a + block, T)
        dq_block, dk_block, dv_block = attend_backward(
            dy_h[:, :, a:b], y_h[:, :, a:b], q[:, :, a:b], k[:, :, :b], v[:, :, :b], *saved
        )
        dq[:, :, a:b] = dq_block
        dk[:, :, :b] += dk_block
        dv[:, :, :b] += dv_block
    dq *= 1.0 / math.sqrt(hs)  # forward: q = q_unscaled / sqrt(hs)
    return xp.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)
