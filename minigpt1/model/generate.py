"""Sampling text from a trained model: greedy, temperature, top-k and top-p, with a KV cache.

At each step the model gives logits z for the next token; we turn them into a distribution

    P(token) = softmax(z / temperature)         temperature 0 means argmax (greedy)

optionally keep only the k most likely tokens (top-k) or the smallest set whose probability
reaches p (top-p, "nucleus"), renormalise, and draw one token from a seeded generator.

The key/value cache (`GPT.decode`) keeps every layer's keys and values, so each new token
costs one position's work. GPT-1's positions are absolute (learned rows 0..n_ctx-1): once the
text outgrows n_ctx, the window slides and every position changes meaning, so from then on
each step recomputes the last n_ctx tokens from scratch, exactly as without a cache.
"""

import warnings

import numpy as np

from ..backend import to_numpy


def top_k_filter(logits, k):
    """Set all but the k largest logits of each row to -inf. (B, V) -> (B, V); k >= 1."""
    if k is None or k >= logits.shape[-1]:
        return logits
    if k < 1:
        raise ValueError(f"top_k must be at least 1, got {k}")
    kth = np.partition(logits, -k, axis=-1)[:, -k][:, None]  # (B, 1) the k-th largest value
    return np.where(logits >= kth, logits, -np.inf)


def top_p_filter(logits, p):
    """Keep the most likely tokens until their probability reaches p; -inf for the rest.

    The most likely token is always kept, so at least one token survives for any p > 0.
    """
    if p is None or p >= 1.0:
        return logits
    if p <= 0.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    order = np.argsort(-logits, axis=-1)  # (B, V) most likely first
    sorted_logits = np.take_along_axis(logits, order, axis=-1)
    probs = np.exp(sorted_logits - sorted_logits[:, :1])
    probs /= probs.sum(axis=-1, keepdims=True)
    mass_before = np.cumsum(probs, axis=-1) - probs  # probability of the tokens ahead of each
    keep_sorted = mass_before < p  # the first token has mass_before 0: always kept
    keep = np.empty_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, logits, -np.inf)


def sample_next(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """One token id per row of logits (B, V), as an int64 array (B,)."""
    if temperature == 0:
        return np.asarray(logits).argmax(axis=-1)
    logits = np.asarray(logits, dtype=np.float64)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    logits = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.array([rng.choice(probs.shape[-1], p=row) for row in probs])


def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=0,
             use_cache=True):
    """Continue `prompt` (a list of ids, or (B, T) ids) by max_new_tokens; returns (B, T + new).

    A prompt longer than n_ctx keeps its last n_ctx tokens (with a warning).
    """
    ids = np.atleast_2d(np.asarray(prompt, dtype=np.int64))
    if ids.shape[1] == 0:
        raise ValueError("the prompt is empty: give at least one token")
    n_ctx = model.cfg.n_ctx
    if ids.shape[1] > n_ctx:
        warnings.warn(f"prompt of {ids.shape[1]} tokens cut to its last {n_ctx} (n_ctx)",
                      stacklevel=2)
        ids = ids[:, -n_ctx:]
    rng = np.random.default_rng(seed)
    past, fed = None, 0  # the cache, and how many tokens of `ids` it holds
    for _ in range(max_new_tokens):
        if use_cache and ids.shape[1] <= n_ctx:  # feed only the tokens the cache lacks
            logits, past = model.decode(ids[:, fed:], past)
            fed = ids.shape[1]
        else:  # no cache, or the window has slid: the last n_ctx tokens from scratch
            logits, _ = model.decode(ids[:, -n_ctx:])
        next_ids = sample_next(to_numpy(logits[:, -1]), rng, temperature, top_k, top_p)
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids
