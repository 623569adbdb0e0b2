"""Causal multi-head self-attention (the core, between the c_attn and c_proj linear layers).

    q, k, v = split(qkv)                                 each (B, T, C) -> (B, nh, T, hs)
    scores  = q @ k^T / sqrt(hs)                         (B, nh, T, T)
    scores  = where(key <= query, scores, -inf)          causal mask: no peeking ahead
    probs   = softmax(scores)                            over the keys (last axis)
    probs_d = dropout(probs)                             GPT-1's attention dropout
    y       = merge_heads(probs_d @ v)                   (B, T, C)

All heads are computed at once by batched matmuls over (B, nh): no Python loop over heads.
Masked scores are -inf, so their probabilities are exactly 0 and their gradients exactly 0:
the mask cannot leak a NaN into the backward pass (every row keeps at least its diagonal).

For generation, `past` = (k, v) of the tokens already seen (B, nh, P, hs) lets new queries
attend to them without recomputing them; the mask then lets query i (absolute position P+i)
see keys 0..P+i. The cache's k and v include the past, ready for the next step. That path
is for inference only: backward refuses it.

Backward (dy is dL/dy, all products batched over (B, nh)):
    dprobs_d = dy_h @ v^T          dv = probs_d^T @ dy_h
    dprobs   = dropout_backward(dprobs_d)
    dscores  = probs * (dprobs - sum(dprobs * probs, over keys))      softmax backward
    dq = dscores @ k / sqrt(hs)    dk = dscores^T @ q / sqrt(hs)
"""

import math
from typing import NamedTuple

from ..backend import xp_of
from .dropout import DropoutCache, dropout_backward, dropout_forward


class AttentionCache(NamedTuple):
    q: object  # (B, nh, T, hs)
    k: object  # (B, nh, T, hs)
    v: object  # (B, nh, T, hs)
    probs: object  # (B, nh, T, T) softmax of the masked scores
    probs_dropped: object  # (B, nh, T, T) after attention dropout (probs itself when off)
    dropout: DropoutCache


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


def attention_forward(qkv, n_head, attn_pdrop=0.0, rng=None, past=None):
    xp = xp_of(qkv)
    C = qkv.shape[-1] // 3
    q, k, v = (split_heads(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))
    if past is not None:  # prepend the keys and values of the tokens already seen
        k = xp.concatenate([past[0], k], axis=2)  # (B, nh, P + T, hs)
        v = xp.concatenate([past[1], v], axis=2)
    scale = 1.0 / math.sqrt(C // n_head)
    scores = q @ k.transpose(0, 1, 3, 2)  # (B, nh, T, P + T)
    scores *= scale
    mask = causal_mask(q.shape[2], k.shape[2], xp)
    scores = xp.where(mask, scores, -xp.inf)  # -inf: exp() gives exactly 0
    # softmax over keys, stable: subtract the row max (finite, the diagonal is never masked)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = xp.exp(scores, out=scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    probs_dropped, dropout_cache = dropout_forward(probs, attn_pdrop, rng)
    y = merge_heads(probs_dropped @ v)  # (B, T, C)
    return y, AttentionCache(q, k, v, probs, probs_dropped, dropout_cache)


def attention_backward(dy, cache):
    xp = xp_of(dy)
    q, k, v, probs, probs_dropped, dropout_cache = cache
    if k.shape[2] != q.shape[2]:
        raise ValueError("no backward pass through a key/value cache (past): it is for inference")
    n_head, hs = q.shape[1], q.shape[3]
    dy_h = split_heads(dy, n_head)  # (B, nh, T, hs)
    # forward: y_h = probs_dropped @ v
    dprobs_dropped = dy_h @ v.transpose(0, 1, 3, 2)  # (B, nh, T, T)
    dv = probs_dropped.transpose(0, 1, 3, 2) @ dy_h  # (B, nh, T, hs)
    # forward: probs_dropped = dropout(probs)
    dprobs = dropout_backward(dprobs_dropped, dropout_cache)
    # forward: probs = softmax(scores); masked entries have probs == 0, so they get dscores == 0
    dscores = dprobs - (dprobs * probs).sum(axis=-1, keepdims=True)
    dscores *= probs  # (B, nh, T, T)
    # forward: scores = q @ k^T * scale
    dscores *= 1.0 / math.sqrt(hs)
    dq = dscores @ k  # (B, nh, T, hs)
    dk = dscores.transpose(0, 1, 3, 2) @ q  # (B, nh, T, hs)
    return xp.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)
