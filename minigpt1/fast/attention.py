"""Causal attention one block of queries at a time, with in-place softmax passes.

layers/attention.py computes the whole (T, T) score matrix. Under the causal mask query i
never looks at keys after i, so the upper triangle is computed only to be thrown away. Cut
the queries into blocks of QUERY_BLOCK rows; block [a, b) needs only the keys [0, b) (after
a past of P tokens: [0, P + b)):

    for each block [a, b):
        y_h[a:b] = causal_softmax(q[a:b] @ k[:b]^T) @ v[:b]          (B, nh, b - a, hs)

With T = 512 and blocks of 128 the four blocks touch 1 + 2 + 3 + 4 = 10 of the 16 tiles of
the full matrix: 5/8 of the products and of the softmax's passes over memory. The loop runs
over blocks of queries, never over heads; the backward pass walks the same blocks, and dk, dv
add up the contributions of every block whose queries saw them. This is the idea behind
FlashAttention's tiling, without its fusion. Up to QUERY_BLOCK tokens there is one block.

Within a block the passes over the (b - a, P + b) scores are cut down too:
- the queries are scaled before the product (T * hs numbers, not T * T scores);
- the softmax works in place, with its row sums as BLAS products (row_sums.py);
- the softmax's shift by the row max is skipped where it cannot matter. The shift only keeps
  exp in range, and |q_i . k_j| <= |q_i| |k_j| (Cauchy-Schwarz): in a sequence whose largest
  |q_i| |k_j| is within half the float's exponent range (44 in float32), exp of every score is
  finite and far from underflow, and so is any row sum. Its scores go to exp as they are,
  which saves the max (a slow reduction over short rows) and the subtraction, 2 of the
  softmax's 6 passes. The check costs two passes over q and k, not over the scores; it is
  made per sequence from its own numbers, so the same on any split of a batch;
- the softmax backward needs D = sum over keys of dprobs * probs, one number per query. That
  sum equals dy_h . y_h (the FlashAttention identity: sum_k (dy . v_k) probs_d_k = dy . y,
  dropout included), a dot product over hs values instead of a pass over the keys.

The cache keeps each block's probabilities; its `probs` assembles the full (T, P + T) matrix
for attention maps. Dropout draws one mask per block, so with attn_pdrop > 0 the masks differ
from the plain layer's (the same distribution, other draws).

A training step whose only shard is one sequence (products.py) would run all of this on one
core. The heads are independent, so a shard of one sequence cuts them in 4 fixed groups
(batch_threads.fixed_parts), each walking the blocks on its own: dealt out to the cores when
the shard runs alone, one after another when it runs beside other shards, the same numbers
either way. The dropout numbers are drawn first, for all heads at once as above, and each
group takes its heads' share: the same masks as the heads at once.
"""

import functools
import math
from typing import NamedTuple

import numpy

from ..backend import DEVICES, register_fast_path, xp_of
from ..layers.attention import (
    causal_mask,
    causal_softmax,
    merge_heads,
    split_heads,
)
from ..layers.dropout import dropout_backward, dropout_forward
from .batch_threads import fixed_parts, map_dealt, parts_threads
from .row_sums import row_sum

QUERY_BLOCK = 128  # rows per block: big enough for efficient matmuls, small enough to skip
MIN_GROUPED_SCORES = 1 << 21  # scores (B nh T T) below which the heads stay together


class BlockedAttentionCache(NamedTuple):
    q: object  # (B, nh, T, hs) the queries, already scaled by 1/sqrt(hs)
    k: object  # (B, nh, P + T, hs) the keys, after those of the past
    v: object  # (B, nh, P + T, hs)
    groups: list  # per group of heads: (its heads, a slice; per block [a, b): (probs,
    #               probs_dropped, dropout cache), (B, heads, b - a, P + b))
    y_h: object  # (B, nh, T, hs) the output: dy_h . y_h gives the softmax backward's row sums
    block: int  # queries per block

    @property
    def probs(self):
        """The full (B, nh, T, P + T) probabilities, zeros above the diagonal (attention maps)."""
        B, nh, T, _ = self.q.shape
        full = xp_of(self.q).zeros((B, nh, T, self.k.shape[2]), dtype=self.q.dtype)
        for heads, blocks in self.groups:
            for a, (probs, _, _) in zip(range(0, T, self.block), blocks, strict=True):
                full[:, heads, a : a + probs.shape[2], : probs.shape[3]] = probs
        return full


def causal_softmax_in_place(scores, unshifted=None):
    """layers/attention.py's causal_softmax, overwriting scores (B, ..., Tq, Tk) (NumPy) with
    the result. `unshifted` (B,) marks the sequences whose scores need no shift by the row max
    (unshifted_sequences); None: every row is shifted."""
    Tq, Tk = scores.shape[-2:]
    if Tq > 1:  # one query (a step of generation) is the last position: it sees every key
        scores += additive_causal_mask(Tq, Tk, scores.dtype)
    subtract_row_max(scores, unshifted)
    probs = numpy.exp(scores, out=scores)
    probs *= 1.0 / row_sum(probs)  # one division per row, not per score
    return probs


@functools.lru_cache(maxsize=64)
def additive_causal_mask(Tq, Tk, dtype):
    """(Tq, Tk): 0 where query i may see key s, -inf elsewhere; read-only, made once per shape."""
    mask = numpy.where(causal_mask(Tq, Tk, numpy), 0.0, -numpy.inf).astype(dtype)
    mask.flags.writeable = False
    return mask


def subtract_row_max(scores, unshifted):
    """scores (B, ..., Tk) -= their row max, in the sequences not marked `unshifted` (B,)."""
    if unshifted is None or not unshifted.any():
        scores -= scores.max(axis=-1, keepdims=True)
    elif not unshifted.all():
        shifted = ~unshifted
        rows = scores[shifted]  # (B', ..., Tk) a copy
        rows -= rows.max(axis=-1, keepdims=True)
        scores[shifted] = rows


def unshifted_sequences(q, k):
    """(B,) bool: the sequences whose scores q @ k^T need no shift by the row max, or None
    (every row shifted: on a GPU, whose fused softmax shifts anyway, or when the scores are
    fewer than q and k, as in generation, where checking would cost more than it saves).

    A sequence qualifies when max |q_i| max |k_j| <= half the dtype's exponent range
    (ln(float max) / 2: 44 in float32); a NaN or inf fails the test and is shifted.
    """
    (B, _, Tq, hs), Tk = q.shape, k.shape[2]
    if not isinstance(q, numpy.ndarray) or Tq * Tk <= (Tq + Tk) * hs:
        return None
    limit = 0.5 * math.log(numpy.finfo(q.dtype).max)
    q_squared = row_sum(q * q).reshape(B, -1).max(axis=1)  # (B,) max |q_i|^2
    k_squared = row_sum(k * k).reshape(B, -1).max(axis=1)  # (B,) max |k_j|^2
    return q_squared * k_squared <= limit * limit


def attend(q, k, v, attn_pdrop, rng, unshifted=None):
    """Scaled queries q (B, nh, Tq, hs) over keys/values (B, nh, Tk, hs) -> y_h (B, nh, Tq, hs),
    and what the backward pass needs: probs, probs_dropped and the dropout cache.
    `unshifted` (B,): the sequences whose softmax may skip the shift (unshifted_sequences)."""
    scores = q @ k.transpose(0, 1, 3, 2)  # (B, nh, Tq, Tk)
    if unshifted is None:
        probs = causal_softmax(scores)  # the fast path of the scores' device
    else:
        probs = causal_softmax_in_place(scores, unshifted)
    probs_dropped, dropout_cache = dropout_forward(probs, attn_pdrop, rng)
    return probs_dropped @ v, probs, probs_dropped, dropout_cache


def attend_backward(dy_h, y_h, q, k, v, probs, probs_dropped, dropout_cache):
    """The backward pass of `attend`: dy_h, y_h (B, nh, Tq, hs) -> dq, dk, dv.

    dq (B, nh, Tq, hs) is for the scaled queries; dk, dv (B, nh, Tk, hs).
    """
    # forward: y_h = probs_dropped @ v
    dprobs = dropout_backward(dy_h @ v.transpose(0, 1, 3, 2), dropout_cache)  # (B, nh, Tq, Tk)
    dv = probs_dropped.transpose(0, 1, 3, 2) @ dy_h  # (B, nh, Tk, hs)
    # forward: probs = softmax(scores): dscores = probs * (dprobs - D), D = dy_h . y_h
    dscores = dprobs
    dscores -= row_sum(dy_h * y_h)  # (B, nh, Tq, 1) broadcast over the keys
    dscores *= probs  # (B, nh, Tq, Tk)
    # forward: scores = q @ k^T
    return dscores @ k, dscores.transpose(0, 1, 3, 2) @ q, dv


def attend_by_blocks(q, k, v, attn_pdrop, rng, block, unshifted=None):
    """Scaled queries q (B, h, T, hs) over keys/values (B, h, P + T, hs), one block of queries
    at a time -> y_h (B, h, T, hs) and what each block's backward pass needs."""
    xp = xp_of(q)
    T, P = q.shape[2], k.shape[2] - q.shape[2]
    if T <= block:  # one block (short windows, generation): no slices to cut
        y_h, *saved = attend(q, k, v, attn_pdrop, rng, unshifted)
        return y_h, [saved]
    outputs, blocks = [], []
    for a, b in query_spans(T, block):  # queries [a, b) see keys [0, P + b)
        y_block, *saved = attend(q[:, :, a:b], k[:, :, : P + b], v[:, :, : P + b], attn_pdrop,
                                 rng, unshifted)
        outputs.append(y_block)
        blocks.append(saved)
    return xp.concatenate(outputs, axis=2), blocks


def attend_by_blocks_backward(dy_h, y_h, q, k, v, blocks, block):
    """The backward pass of `attend_by_blocks` (no past): dy_h, y_h (B, h, T, hs) -> dq, dk, dv
    (B, h, T, hs), dq for the scaled queries."""
    xp = xp_of(dy_h)
    spans = query_spans(q.shape[2], block)
    grads = [  # (dq, dk, dv) of each block
        attend_backward(dy_h[:, :, a:b], y_h[:, :, a:b], q[:, :, a:b], k[:, :, :b], v[:, :, :b],
                        *saved)
        for (a, b), saved in zip(spans, blocks, strict=True)
    ]
    dq_blocks = [dq_block for dq_block, _, _ in grads]
    dq = dq_blocks[0] if len(grads) == 1 else xp.concatenate(dq_blocks, axis=2)  # (B, h, T, hs)
    _, dk, dv = grads[-1]  # the last block saw every key: its dk and dv start the sums
    for (_, b), (_, dk_block, dv_block) in zip(spans[:-1], grads[:-1], strict=True):
        dk[:, :, :b] += dk_block
        dv[:, :, :b] += dv_block
    return dq, dk, dv


def query_spans(T, block):
    """The blocks [a, b) of T queries."""
    return [(a, min(a + block, T)) for a in range(0, T, block)]


class Drawn:
    """The uniform numbers of a group of heads, drawn in advance from the sequence's stream and
    handed to dropout_forward in order: groups running at once must not draw from one stream."""

    def __init__(self, draws):
        self.draws = iter(draws)

    def random(self, shape, dtype):
        u = next(self.draws)
        if u.shape != tuple(shape) or u.dtype != dtype:
            raise ValueError(f"drawn {u.shape} {u.dtype}, asked for {tuple(shape)} {dtype}")
        return u


def scaled_queries_keys_values(qkv, n_head, past=None):
    """layers/attention.py's queries_keys_values, the queries scaled by 1/sqrt(hs) as attend
    expects: q (B, nh, T, hs), a contiguous copy, and k, v (B, nh, P + T, hs).

    The same views of qkv, cut in one reshape instead of three: a step of generation makes
    this call once per block and token, where the two saved calls are 4% of a block's time.
    """
    xp = xp_of(qkv)
    B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    q, k, v = qkv.reshape(B, T, 3, n_head, C // n_head).transpose(2, 0, 3, 1, 4)
    if past is not None:  # prepend the keys and values of the tokens already seen
        k = xp.concatenate([past[0], k], axis=2)  # (B, nh, P + T, hs)
        v = xp.concatenate([past[1], v], axis=2)
    return q * (1.0 / math.sqrt(C // n_head)), k, v


def attention_forward_by_blocks(qkv, n_head, attn_pdrop=0.0, rng=None, past=None,
                                block=QUERY_BLOCK):
    xp = xp_of(qkv)
    q, k, v = scaled_queries_keys_values(qkv, n_head, past)
    unshifted = unshifted_sequences(q, k)  # (B,) or None
    threads = parts_threads() if isinstance(q, numpy.ndarray) else None
    if q.shape[0] * n_head * q.shape[2] * k.shape[2] < MIN_GROUPED_SCORES:
        threads = None  # too little work to split: decided by the shapes alone
    if threads is None:  # the heads at once, as one batch of products
        y_h, blocks = attend_by_blocks(q, k, v, attn_pdrop, rng, block, unshifted)
        groups = [(slice(None), blocks)]
    else:  # a shard of one sequence: its heads in fixed groups
        B, T, P = q.shape[0], q.shape[2], k.shape[2] - q.shape[2]
        draws = [rng.random((B, n_head, b - a, P + b), dtype=q.dtype)  # as the heads at once
                 for a, b in query_spans(T, block)] if attn_pdrop > 0.0 else []

        def attend_heads(h):
            group_rng = Drawn([u[:, h] for u in draws])
            return attend_by_blocks(q[:, h], k[:, h], v[:, h], attn_pdrop, group_rng, block,
                                    unshifted)

        heads = fixed_parts(n_head)
        results = map_dealt(attend_heads, heads, threads)
        y_h = xp.concatenate([y_group for y_group, _ in results], axis=1)  # (B, nh, T, hs)
        groups = [(h, blocks) for h, (_, blocks) in zip(heads, results, strict=True)]
    return merge_heads(y_h), BlockedAttentionCache(q, k, v, groups, y_h, block)


def attention_backward_by_blocks(dy, cache):
    xp = xp_of(dy)
    q, k, v, groups, y_h, block = cache
    if k.shape[2] != q.shape[2]:
        raise ValueError("no backward pass through a key/value cache (past): it is for inference")
    n_head, hs = q.shape[1], q.shape[3]
    dy_h = split_heads(dy, n_head)  # (B, nh, T, hs)

    def heads_backward(group):
        h, blocks = group
        return attend_by_blocks_backward(dy_h[:, h], y_h[:, h], q[:, h], k[:, h], v[:, h],
                                         blocks, block)

    grads = map_dealt(heads_backward, groups, parts_threads() or 1)
    dq, dk, dv = (parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=1)
                  for parts in zip(*grads, strict=True))  # (B, nh, T, hs) each
    dq *= 1.0 / math.sqrt(hs)  # forward: q = q_unscaled / sqrt(hs)
    return xp.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)


register_fast_path("causal_softmax", "cpu", causal_softmax_in_place)
for device in DEVICES:  # on a GPU, causal_softmax inside each block is the fused kernel
    register_fast_path("attention_forward", device, attention_forward_by_blocks)
    register_fast_path("attention_backward", device, attention_backward_by_blocks)
