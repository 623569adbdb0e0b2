"""Causal multi-head self-attention (the core, between the c_attn and c_proj linear layers).

    q, k, v = split(qkv)                                 each (B, T, C) -> (B, nh, T, hs)
    scores  = (q / sqrt(hs)) @ k^T                       (B, nh, T, T)
    scores  = scores + mask                              causal mask: 0, or -inf ahead
    probs   = softmax(scores)                            over the keys (last axis)
    probs_d = dropout(probs)                             GPT-1's attention dropout
    y       = merge_heads(probs_d @ v)                   (B, T, C)

All heads are computed at once by batched matmuls over (B, nh): no Python loop over heads.
The queries are scaled before the product (T*hs numbers, not T*T scores), and the mask is
added in place. Masked scores are -inf, so their probabilities are exactly 0 and their
gradients exactly 0: the mask cannot leak a NaN into the backward pass (every row keeps at
least its diagonal).

For generation, `past` = (k, v) of the tokens already seen (B, nh, P, hs) lets new queries
attend to them without recomputing them; the mask then lets query i (absolute position P+i)
see keys 0..P+i. The cache's k and v include the past, ready for the next step. That path
is for inference only: backward refuses it.

Backward (dy is dL/dy, all products batched over (B, nh); q below is the scaled query):
    dprobs_d = dy_h @ v^T          dv = probs_d^T @ dy_h
    dprobs   = dropout_backward(dprobs_d)
    dscores  = probs * (dprobs - D)                      softmax backward
    dq = dscores @ k / sqrt(hs)    dk = dscores^T @ q
The softmax backward needs D = sum over keys of dprobs * probs, one number per query. That
sum equals dy_h . y_h (the FlashAttention identity: sum_k (dy.v_k) mask_k probs_k = dy . y),
a dot product over hs values instead of a pass over T keys.
"""

import math
from typing import NamedTuple

from ..backend import fused_kernels, xp_of
from ..fast.rows import row_sum
from .dropout import DropoutCache, dropout_backward, dropout_forward


class AttentionCache(NamedTuple):
    q: object  # (B, nh, T, hs) the queries, already scaled by 1/sqrt(hs)
    k: object  # (B, nh, T, hs)
    v: object  # (B, nh, T, hs)
    probs: object  # (B, nh, T, T) softmax of the masked scores
    probs_dropped: object  # (B, nh, T, T) after attention dropout (probs itself when off)
    dropout: DropoutCache
    y: object  # (B, T, C) the output: dy . y gives the softmax backward's row sums


def split_heads(x, n_head):
    """(B, T, C) -> (B, nh, T, hs): a view, no copy."""
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, nh, T, hs) -> (B, T, C): the inverse of split_heads (copies into a contiguous array)."""
    B, nh, T, hs = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)


def causal_mask(Tq, Tk, xp):
    """(Tq, Tk) bool, True where query i (the last Tq of Tk positions) may see key s."""
    return xp.tril(xp.ones((Tq, Tk), dtype=bool), k=Tk - Tq)


def causal_bias(Tq, Tk, xp, dtype):
    """(Tq, Tk) to add to the scores: 0 where the causal mask allows, -inf where it forbids."""
    return xp.where(causal_mask(Tq, Tk, xp), 0.0, -xp.inf).astype(dtype)


def causal_softmax(scores):
    """Masked softmax over the keys of scores (..., Tq, Tk), in place; returns the probabilities.

    Query i (the last Tq of Tk positions) sees keys 0..Tk-Tq+i. Stable: subtract the row max
    (finite, since the diagonal is never masked).
    """
    if (fused := fused_kernels(scores)) is not None:  # a GPU: the lines below as one kernel
        return fused.causal_softmax(scores)
    xp = xp_of(scores)
    scores += causal_bias(scores.shape[-2], scores.shape[-1], xp, scores.dtype)  # exp(-inf) = 0
    scores -= scores.max(axis=-1, keepdims=True)
    probs = xp.exp(scores, out=scores)
    probs *= 1.0 / row_sum(probs)  # one division per row, not per score
    return probs


def attend(q, k, v, attn_pdrop, rng):
    """Scaled queries q (B, nh, Tq, hs) over keys/values (B, nh, Tk, hs) -> y_h (B, nh, Tq, hs).

    Also returns what the backward pass needs: probs, probs_dropped and the dropout cache.
    """
    probs = causal_softmax(q @ k.transpose(0, 1, 3, 2))  # (B, nh, Tq, Tk)
    probs_dropped, dropout_cache = dropout_forward(probs, attn_pdrop, rng)
    return probs_dropped @ v, probs, probs_dropped, dropout_cache


def attend_backward(dy_h, y_h, q, k, v, probs, probs_dropped, dropout_cache):
    """The backward pass of `attend`: dy_h, y_h (B, nh, Tq, hs) -> dq, dk, dv.

    dq (B, nh, Tq, hs) is for the scaled queries; dk, dv (B, nh, Tk, hs).
    """
    # forward: y_h = probs_dropped @ v
    dprobs_dropped = dy_h @ v.transpose(0, 1, 3, 2)  # (B, nh, Tq, Tk)
    dv = probs_dropped.transpose(0, 1, 3, 2) @ dy_h  # (B, nh, Tk, hs)
    # forward: probs_dropped = dropout(probs)
    dprobs = dropout_backward(dprobs_dropped, dropout_cache)
    # forward: probs = softmax(scores); masked entries have probs == 0, so they get dscores == 0
    D = row_sum(dy_h * y_h)  # (B, nh, Tq, 1)
    dscores = dprobs
    dscores -= D
    dscores *= probs  # (B, nh, Tq, Tk)
    # forward: scores = q @ k^T
    return dscores @ k, dscores.transpose(0, 1, 3, 2) @ q, dv


def attention_forward(qkv, n_head, attn_pdrop=0.0, rng=None, past=None):
    xp = xp_of(qkv)
    C = qkv.shape[-1] // 3
    q, k, v = (split_heads(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))
    if past is not None:  # prepend the keys and values of the tokens already seen
        k = xp.concatenate([past[0], k], axis=2)  # (B, nh, P + T, hs)
        v = xp.concatenate([past[1], v], axis=2)
    q = q * (1.0 / math.sqrt(C // n_head))  # (B, nh, T, hs), a contiguous copy
    y_h, probs, probs_dropped, dropout_cache = attend(q, k, v, attn_pdrop, rng)
    y = merge_heads(y_h)  # (B, T, C)
    return y, AttentionCache(q, k, v, probs, probs_dropped, dropout_cache, y)


def attention_backward(dy, cache):
    xp = xp_of(dy)
    q, k, v, probs, probs_dropped, dropout_cache, y = cache
    if k.shape[2] != q.shape[2]:
        raise ValueError("no backward pass through a key/value cache (past): it is for inference")
    n_head, hs = q.shape[1], q.shape[3]
    dy_h, y_h = split_heads(dy, n_head), split_heads(y, n_head)  # (B, nh, T, hs)
    dq, dk, dv = attend_backward(dy_h, y_h, q, k, v, probs, probs_dropped, dropout_cache)
    dq *= 1.0 / math.sqrt(hs)  # forward: q = q_unscaled / sqrt(hs)
    return xp.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)
