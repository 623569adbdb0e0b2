"""Causal multi-head self-attention (the core, between the c_attn and c_proj linear layers).

    q, k, v = split(qkv)                                 each (B, T, C) -> (B, nh, T, hs)
    scores  = q @ k^T / sqrt(hs)                         (B, nh, T, T)
    probs   = softmax(where(mask, scores, -inf))         over the keys (last axis)
    probs_d = dropout(probs)                             GPT-1's attention dropout
    y       = merge_heads(probs_d @ v)                   (B, T, C)

All heads are computed at once by batched matmuls over (B, nh): no Python loop over heads.
Masked scores are -inf, so their probabilities are exactly 0 and so are their gradients: the
mask cannot leak a NaN into the backward pass (every row keeps at least its diagonal).

For generation, `past` = (k, v) of the tokens already seen (B, nh, P, hs) lets new queries
attend to them without recomputing them; the mask then lets query i (absolute position P+i)
see keys 0..P+i. The cache's k and v include the past, ready for the next step. That path
is for inference only: backward refuses it.

Backward (dy is dL/dy; every product is batched over (B, nh)):
    dprobs_d = dy_h @ v^T          dv = probs_d^T @ dy_h
    dprobs   = dropout_backward(dprobs_d)
    dscores  = probs * (dprobs - sum(dprobs * probs))    softmax backward, the sum over keys
    dq = dscores @ k / sqrt(hs)    dk = dscores^T @ q / sqrt(hs)
The softmax backward comes from dprobs_j/dscores_i = probs_j (delta_ij - probs_i): each
probability moves with its own score and, through the shared sum, against all the others.
"""

import math
from typing import NamedTuple

from ..backend import fast_path, xp_of
from .dropout import DropoutCache, dropout_backward, dropout_forward


class AttentionCache(NamedTuple):
    q: object  # (B, nh, T, hs) the queries
    k: object  # (B, nh, P + T, hs) the keys, after those of the past
    v: object  # (B, nh, P + T, hs) the values, likewise
    probs: object  # (B, nh, T, P + T) softmax of the masked scores
    probs_dropped: object  # (B, nh, T, P + T) after attention dropout (probs itself when off)
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


@fast_path
def causal_softmax(scores):
    """Softmax over the keys of scores (..., Tq, Tk), where the causal mask allows; 0 elsewhere.

    Subtracting the row max keeps exp from overflowing; it is finite, since the diagonal is
    never masked. A fast path may reuse `scores`' memory for the result: pass scores that are
    not needed afterwards.
    """
    xp = xp_of(scores)
    masked = xp.where(causal_mask(*scores.shape[-2:], xp), scores, -xp.inf)  # (..., Tq, Tk)
    exps = xp.exp(masked - masked.max(axis=-1, keepdims=True))  # exp(-inf) = 0
    return exps / exps.sum(axis=-1, keepdims=True)


def queries_keys_values(qkv, n_head, past=None):
    """qkv (B, T, 3C) -> q (B, nh, T, hs), and k, v (B, nh, P + T, hs) after those of `past`."""
    xp = xp_of(qkv)
    C = qkv.shape[-1] // 3
    q, k, v = (split_heads(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))
    if past is not None:  # prepend the keys and values of the tokens already seen
        k = xp.concatenate([past[0], k], axis=2)  # (B, nh, P + T, hs)
        v = xp.concatenate([past[1], v], axis=2)
    return q, k, v


@fast_path
def attention_forward(qkv, n_head, attn_pdrop=0.0, rng=None, past=None):
    q, k, v = queries_keys_values(qkv, n_head, past)  # (B, nh, T or P + T, hs)
    C = qkv.shape[-1] // 3
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(C // n_head)  # (B, nh, T, P + T)
    probs = causal_softmax(scores)  # (B, nh, T, P + T)
    probs_dropped, dropout = dropout_forward(probs, attn_pdrop, rng)
    y = merge_heads(probs_dropped @ v)  # (B, nh, T, hs) -> (B, T, C)
    return y, AttentionCache(q, k, v, probs, probs_dropped, dropout)


@fast_path
def attention_backward(dy, cache):
    xp = xp_of(dy)
    q, k, v, probs, probs_dropped, dropout = cache
    if k.shape[2] != q.shape[2]:
        raise ValueError("no backward pass through a key/value cache (past): it is for inference")
    hs = q.shape[3]
    dy_h = split_heads(dy, q.shape[1])  # (B, nh, T, hs)
    # forward: y_h = probs_dropped @ v
    dprobs_dropped = dy_h @ v.transpose(0, 1, 3, 2)  # (B, nh, T, T)
    dv = probs_dropped.transpose(0, 1, 3, 2) @ dy_h  # (B, nh, T, hs)
    # forward: probs_dropped = dropout(probs)
    dprobs = dropout_backward(dprobs_dropped, dropout)  # (B, nh, T, T)
    # forward: probs = softmax(masked scores); masked entries have probs == 0, so dscores == 0
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True))  # (B, nh, T, T)
    # forward: scores = q @ k^T / sqrt(hs)
    dq = dscores @ k / math.sqrt(hs)  # (B, nh, T, hs)
    dk = dscores.transpose(0, 1, 3, 2) @ q / math.sqrt(hs)  # (B, nh, T, hs)
    return xp.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)
