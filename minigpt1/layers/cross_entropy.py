"""Softmax cross-entropy with an ignore mask: the language-model loss L1 (and, later, L2).

    logp = log_softmax(z) = (z - max(z)) - log(sum(exp(z - max(z))))      (stable: no overflow)
    loss = sum_i w_i * (-logp[i, y_i]) / sum_i w_i           w_i >= 0: 1 keep, 0 ignore

so with a 0/1 mask the loss is the mean over the positions that count. Other weights give
other means: w = mask / (tokens in its sequence) averages each sequence first, then the
sequences, the way GPT-1's fine-tuning code averaged its auxiliary LM loss.

Backward (dloss the upstream scalar), as d(-logp[i, y_i]) / dz_ij = softmax(z_i)_j - [j == y_i]:
    dlogits[i] = dloss * w_i / sum(w) * (softmax(z_i) - onehot(y_i))
The one-hot matrix is never built: we subtract at the target indices instead. The forward
keeps exps = exp(z - shift) with their row sums, so that softmax = exps / sumexp; any shift
of a row gives the same softmax, and the max is the one that keeps exp from overflowing.
"""

from typing import NamedTuple

from ..backend import fast_path, xp_of


class CrossEntropyCache(NamedTuple):
    exps: object  # (N, V) exp(z - shift): the softmax before dividing by its row sums
    sumexp: object  # (N,) the row sums
    targets: object  # (N,) target ids
    scale: object  # (N,) w_i / sum(w): each position's share of the mean
    shape: tuple  # (..., V) the logits' original shape


def position_weights(targets, mask, dtype):
    """targets (...) ids, mask (...) weights or None -> scale (N,): w_i / sum(w)."""
    xp = xp_of(targets)
    y = targets.reshape(-1)  # (N,)
    if mask is None:
        w, count = xp.ones(y.shape, dtype=dtype), y.size  # on a GPU: no read-back
    else:
        w = mask.reshape(-1).astype(dtype)  # (N,)
        count = float(w.sum())
    if count <= 0:
        raise ValueError("cross-entropy over an empty mask: at least one target must count")
    return w / count


@fast_path
def target_log_probs(logits, targets):
    """logits (N, V), targets (N,) -> log p[i, y_i] (N,), exps (N, V) and their row sums (N,)."""
    xp = xp_of(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, V), every entry <= 0
    exps = xp.exp(shifted)  # (N, V)
    sumexp = exps.sum(axis=1)  # (N,)
    logp_target = shifted[xp.arange(targets.shape[0]), targets] - xp.log(sumexp)  # (N,)
    return logp_target, exps, sumexp


def cross_entropy_forward(logits, targets, mask=None):
    """logits (..., V), targets (...) ids, mask (...) weights or None -> (loss, cache)."""
    y = targets.reshape(-1)  # (N,)
    scale = position_weights(y, mask, logits.dtype)  # (N,)
    logp_target, exps, sumexp = target_log_probs(logits.reshape(-1, logits.shape[-1]), y)
    loss = -(scale * logp_target).sum()
    return loss, CrossEntropyCache(exps, sumexp, y, scale, logits.shape)


def cross_entropy_backward(dloss, cache):
    xp = xp_of(cache.exps)
    exps, sumexp, y, scale, shape = cache
    # forward: loss = -sum_i scale_i * log(exps[i, y_i] / sumexp_i)
    dlogits = exps * (dloss * scale / sumexp)[:, None]  # (N, V): dloss * scale * softmax
    dlogits[xp.arange(y.shape[0]), y] -= dloss * scale  # minus the one-hot part
    return dlogits.reshape(shape)
