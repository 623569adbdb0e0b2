"""Softmax cross-entropy with an ignore mask: the language-model loss L1 (and, later, L2).

    logp = log_softmax(logits) = z - max(z) - log(sum(exp(z - max(z))))        (stable: no overflow)
    loss = sum_i w_i * (-logp[i, y_i]) / sum_i w_i           w_i >= 0: 1 keep, 0 ignore

so with a 0/1 mask the loss is the mean over the positions that count. Other weights give
other means: w = mask / (tokens in its sequence) averages each sequence first, then the
sequences, the way GPT-1's fine-tuning code averaged its auxiliary LM loss.

Backward (dloss is the upstream scalar):
    dlogits[i] = dloss * w_i / sum(w) * (softmax(z_i) - onehot(y_i))
The one-hot matrix is never built: we subtract at the target indices instead. The forward
keeps exp(z - max(z)) unnormalised with its row sums: the loss needs only the sums, and the
backward folds 1 / sum into the per-row factor it multiplies by anyway (one pass, not two).

Any shift of a row gives the same log-probabilities and the same softmax; the max only
keeps exp from overflowing or losing the whole row to underflow. A language model's logits
stay far inside those bounds, so on the CPU exp(z) is first tried unshifted: that saves two
of the four passes over the (N, V) logits, the largest array of a step. A row whose sum lands
outside [sqrt(tiny), 1/sqrt(tiny)] (1e-19 to 1e19 in float32: a largest logit above about
43 - ln V, or below about -43) is done again, shifted, so that every probability above
sqrt(tiny) keeps full precision, in the loss and in the backward's factor 1 / sum. The
log-probabilities carry an absolute rounding error of eps * |log sum exp(z)| instead of
eps * log V: at most about 5e-6 in float32. On a GPU the check would make the host wait for
the device inside the step, so there every row is shifted.
"""

from typing import NamedTuple

from ..backend import fused_kernels, xp_of


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


def target_log_probs(logits, targets):
    """logits (N, V), targets (N,) -> log p[i, y_i] (N,), exps (N, V) and their row sums (N,)."""
    xp = xp_of(logits)
    if fused_kernels(logits) is not None:  # a GPU: no data-dependent branch, shift every row
        return shifted_target_log_probs(logits, targets)
    with xp.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        exps = xp.exp(logits)  # (N, V), unshifted
        sumexp = exps.sum(axis=1)  # (N,)
        logp_target = logits[xp.arange(targets.shape[0]), targets] - xp.log(sumexp)  # (N,)
    bound = xp.sqrt(xp.finfo(logits.dtype).tiny)
    redo = ~((sumexp >= bound) & (sumexp <= 1.0 / bound))  # NaN (a diverged model) fails too
    if redo.any():
        logp_target[redo], exps[redo], sumexp[redo] = shifted_target_log_probs(
            logits[redo], targets[redo])
    return logp_target, exps, sumexp


def shifted_target_log_probs(logits, targets):
    """target_log_probs with every row shifted by its max: safe for any finite logits."""
    xp = xp_of(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, V), every entry <= 0
    shifted_target = shifted[xp.arange(targets.shape[0]), targets]  # (N,), before exp overwrites
    exps = xp.exp(shifted, out=shifted)  # (N, V), in place
    sumexp = exps.sum(axis=1)  # (N,)
    return shifted_target - xp.log(sumexp), exps, sumexp


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
    dlogits = exps * (dloss * scale / sumexp)[:, None]  # (N, V): the softmax part
    dlogits[xp.arange(y.shape[0]), y] -= dloss * scale  # minus the one-hot part
    return dlogits.reshape(shape)
