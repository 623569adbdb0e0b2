"""Token + position embedding (GPT-1's h0 = U We + Wp, equation 2 of the paper).

    h0[b, t] = wte[ids[b, t]] + wpe[start + t]     ids: (B, T) ints   wte: (V, C)   wpe: (n_ctx, C)

`start` is the position of the first token: 0 for a whole sequence, the number of tokens
already seen when a generator feeds new tokens one at a time.

Backward: a row of wte is used once per occurrence of its token, so its gradient is the sum of
dh0 over those positions (a scatter-add); row t of wpe is used once per sequence, so its
gradient is dh0 summed over the batch. Rows never used get zero gradient. With tied weights
the LM head has already filled a (V, C) gradient for wte: pass it as `dwte` and the rows are
added into it, instead of into a fresh (V, C) array that would then be added to it.
"""

from typing import NamedTuple

from ..backend import fast_path, xp_of


class EmbeddingCache(NamedTuple):
    ids: object  # (B, T) token ids
    vocab_size: int  # V, rows of wte
    n_positions: int  # n_ctx, rows of wpe
    start: int  # position of ids[:, 0]


def embedding_forward(ids, wte, wpe, start=0):
    T = ids.shape[1]
    h0 = wte[ids]  # (B, T, C) gather: one row per token, a new array
    h0 += wpe[start : start + T]  # (T, C) broadcast over the batch
    return h0, EmbeddingCache(ids, wte.shape[0], wpe.shape[0], start)


@fast_path
def scatter_add(out, ids, values):
    """out[ids[b, t]] += values[b, t] for every position, in place: out (V, C), values (B, T, C).

    add.at, not out[ids] += values: a token repeated in the batch must add up, not overwrite.
    """
    xp_of(out).add.at(out, ids, values)


def embedding_backward(dh0, cache, dwte=None):
    xp = xp_of(dh0)
    ids, vocab_size, n_positions, start = cache
    B, T, C = dh0.shape
    # forward: h0 = wte[ids] + wpe[start : start + T]
    if dwte is None:
        dwte = xp.zeros((vocab_size, C), dtype=dh0.dtype)
    scatter_add(dwte, ids, dh0)  # (V, C): each row gathers the positions of its token
    dwpe = xp.zeros((n_positions, C), dtype=dh0.dtype)
    dwpe[start : start + T] = dh0.sum(axis=0)  # (T, C)
    return dwte, dwpe
