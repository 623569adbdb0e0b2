"""What one optimizer update needs, whichever objective it minimises: its random seeds, the
batch split into micro-batches (and over ranks), the mean of their gradients, and the
clipping that also catches a loss or gradient gone NaN.

Everything random in an update is drawn from generators seeded by (seed, step, stream), never
from state carried over from the previous update. So a run resumed from the checkpoint of step
s draws exactly the batches and dropout masks the uninterrupted run drew at step s + 1.
"""

import math

import numpy as np

from .. import backend
from .estimate import check_fits
from .optim import clip_grad_norm


class Diverged(RuntimeError):
    """The loss or a gradient stopped being a finite number."""


def step_seed(seed, step, stream):
    """An independent 32-bit seed for (run seed, step, stream): data is stream 0, dropout 1+."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0])


def mean_over_micro_batches(sizes, loss_and_grads, total=None):
    """Mean loss and gradients over micro-batches of the given sizes: what one big batch of
    sum(sizes) examples would give. loss_and_grads(i) -> (loss, grads) of micro-batch i.

    With `total` (the whole batch, when these micro-batches are one rank's share of it) each
    term is weighted by size / total: the ranks' results then sum to the batch's mean."""
    total = total or sum(sizes)
    loss, grads = 0.0, None
    for i, size in enumerate(sizes):
        micro_loss, micro_grads = loss_and_grads(i)
        share = size / total
        loss += share * micro_loss
        if grads is None:
            grads = micro_grads
            if share != 1.0:
                for g in grads.values():
                    g *= share
        else:
            for name, g in micro_grads.items():
                grads[name] += share * g
    return loss, grads


def first_non_finite(arrays):
    """Name of the first array holding a NaN or an infinity, or None."""
    for name, a in arrays.items():
        if not bool(backend.xp_of(a).isfinite(a).all()):
            return name
    return None


def clip_and_check(grads, loss, max_norm, step):
    """Clip the gradients' global norm; raise Diverged, naming the culprit, on a NaN or inf."""
    norm = clip_grad_norm(grads, max_norm)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        bad = "the loss" if not math.isfinite(loss) else f"gradient {first_non_finite(grads)}"
        raise Diverged(f"step {step + 1}: {bad} is not finite (loss {loss}, grad norm {norm}); "
                       "try a lower --lr or more warm-up steps")
    return norm


def rank_micro_batches(world, batch_size, micro_batch_size):
    """(this rank's rows of the batch, its micro-batch size, the batch-wide number of its
    first micro-batch): micro-batch k of the batch draws dropout stream k + 1 on any rank.
    One process may end on a shorter micro-batch; ranks must not (the numbering would shift)."""
    mine = world.shard(batch_size)
    micro = min(micro_batch_size, mine.stop - mine.start)
    if world.size > 1 and (mine.stop - mine.start) % micro:
        raise ValueError(f"each of the {world.size} ranks takes {mine.stop - mine.start} of the "
                         f"{batch_size} sequences, which do not split into micro-batches of "
                         f"{micro}: choose a --micro-batch-size that divides it")
    return mine, micro, mine.start // micro


def check_rank_fits(cfg, world, batch_size, micro_batch_size, seq_len=None,
                    sequences_per_item=1):
    """Before anything is written: refuse a batch the ranks cannot share, and one rank's
    share that does not fit in its part of this machine's memory (estimate.check_fits)."""
    mine, micro, _ = rank_micro_batches(world, batch_size, micro_batch_size)
    check_fits(cfg, mine.stop - mine.start, micro, seq_len,
               sequences_per_item=sequences_per_item, processes=world.local_size)
