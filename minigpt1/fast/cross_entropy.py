"""The cross-entropy's log-probabilities with fewer passes over the (N, V) logits.

layers/cross_entropy.py's target_log_probs makes four passes over the logits, the largest
array of a step: the row max, the shift, exp, the row sums. Any shift of a row gives the same
log-probabilities and the same softmax; the max only keeps exp from overflowing or losing the
whole row to underflow. A language model's logits stay far inside those bounds, so on the CPU
exp(z) is first tried unshifted, which saves the first two passes. A row whose sum lands
outside [sqrt(tiny), 1/sqrt(tiny)] (1e-19 to 1e19 in float32: a largest logit above about
43 - ln V, or below about -43) is done again, shifted, so that every probability above
sqrt(tiny) keeps full precision, in the loss and in the backward's factor 1 / sum. The
log-probabilities carry an absolute rounding error of eps * |log sum exp(z)| instead of
eps * log V: at most about 5e-6 in float32.

On a GPU the check would make the host wait for the device inside the step, so there every
row is shifted, with exp written over the shifted logits instead of into a new (N, V) array.
"""

from ..backend import register_fast_path, xp_of


def shifted_target_log_probs(logits, targets):
    """target_log_probs with every row shifted by its max, exp computed in place."""
    xp = xp_of(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, V), every entry <= 0
    shifted_target = shifted[xp.arange(targets.shape[0]), targets]  # (N,), before exp overwrites
    exps = xp.exp(shifted, out=shifted)  # (N, V), in place
    sumexp = exps.sum(axis=1)  # (N,)
    return shifted_target - xp.log(sumexp), exps, sumexp


def unshifted_target_log_probs(logits, targets):
    """target_log_probs with exp(z) unshifted; the rows it does not suit are redone shifted."""
    xp = xp_of(logits)
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


register_fast_path("target_log_probs", "cpu", unshifted_target_log_probs)
register_fast_path("target_log_probs", "cuda", shifted_target_log_probs)
