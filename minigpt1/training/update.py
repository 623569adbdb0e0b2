"""What one optimizer update needs, whichever objective it minimises: its random seeds, the
batch split into micro-batches or shards (and over ranks), the sum of their gradients, and
the clipping that also catches a loss or gradient gone NaN.

Everything random in an update is drawn from generators seeded by (seed, step, stream) or
keyed by (seed, step, sequence) (dropout_streams.py), never from state carried over from the
previous update. So a run resumed from the checkpoint of step s draws exactly the batches and
dropout masks the uninterrupted run drew at step s + 1.

Both objectives cut their batch into shards fixed by the batch, run them on every core, and
add their gradients in one fixed tree, so that their numbers do not depend on the machine.
"""

import math

import numpy as np

from .. import backend
from ..fast.batch_threads import run_in_order
from .estimate import check_fits
from .optim import clip_grad_norm


class Diverged(RuntimeError):
    """The loss or a gradient stopped being a finite number."""


def step_seed(seed, step, stream):
    """An independent 32-bit seed for (run seed, step, stream): data is stream 0, dropout 1+."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0])


def batch_shards(rows, micro_batch_size):
    """The shards a rank's `rows` of the batch (a range of its sequence numbers) run in: each
    micro-batch of `micro_batch_size` sequences (the last one maybe shorter) cut in two halves,
    the first one the larger when the size is odd; a micro-batch of one stays whole.

    They depend on the batch alone, never on the machine. Each rank's share is a whole
    number of micro-batches (rank_micro_batches), so every rank cuts its rows where one
    process would cut the whole batch. Two, not one per core: on this project's 2-core
    machines more, smaller shards measured slower (tiny: 4 shards 243 to 257 ms per step
    against 202 to 228 with 2), and the threads of a step run single-threaded BLAS.
    """
    shards = []
    for start in range(rows.start, rows.stop, micro_batch_size):
        stop = min(start + micro_batch_size, rows.stop)
        middle = (start + stop + 1) // 2
        shards += [range(start, middle), range(middle, stop)] if stop - start > 1 else [
            range(start, stop)]
    return shards


class PairwiseSum:
    """The sum of (loss, grads) terms given one at a time, always in the same binary tree:

        ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7))

    Floating-point addition is not associative, so the order is part of the result. One
    fixed tree makes the sum of a batch's shards the same whether they ran one after another,
    in threads, or on two ranks (each rank's half is a subtree when it holds a power of two
    shards, and the all-reduce of two ranks adds the two halves). Only the terms waiting to
    be paired are kept: at most log2(number of terms) of them.
    """

    def __init__(self):
        self.waiting = []  # (number of terms summed, (loss, grads)), largest first

    def add(self, term):
        count = 1
        while self.waiting and self.waiting[-1][0] == count:
            done, left = self.waiting.pop()
            term, count = self.pair(left, term), count + done
        self.waiting.append((count, term))

    def total(self):
        _, term = self.waiting.pop()
        while self.waiting:  # a number of terms that is not a power of two
            term = self.pair(self.waiting.pop()[1], term)
        return term

    @staticmethod
    def pair(left, right):
        """left + right, added into left's gradients."""
        for name, g in right[1].items():
            left[1][name] += g
        return left[0] + right[0], left[1]


def sum_over_shards(loss_and_grads, shards, device):
    """PairwiseSum of loss_and_grads(rows) over the shards; on the CPU the shards run in one
    thread per core (fast/batch_threads.py), their results added in the shards' order."""
    total = PairwiseSum()
    if device == "cpu":
        run_in_order(loss_and_grads, shards, total.add)
    else:  # one GPU already runs each shard's work in parallel
        for rows in shards:
            total.add(loss_and_grads(rows))
    return total.total()


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
    """(this rank's rows of the batch, its micro-batch size). One process may end on a shorter
    micro-batch; ranks must not (their shards would no longer be cut where one process cuts)."""
    mine = world.shard(batch_size)
    micro = min(micro_batch_size, mine.stop - mine.start)
    if world.size > 1 and (mine.stop - mine.start) % micro:
        raise ValueError(f"each of the {world.size} ranks takes {mine.stop - mine.start} of the "
                         f"{batch_size} sequences, which do not split into micro-batches of "
                         f"{micro}: choose a --micro-batch-size that divides it")
    return mine, micro


def check_rank_fits(cfg, world, batch_size, micro_batch_size, seq_len=None,
                    sequences_per_item=1):
    """Before anything is written: refuse a batch the ranks cannot share, and one rank's
    share that does not fit in its part of this machine's memory (estimate.check_fits)."""
    mine, micro = rank_micro_batches(world, batch_size, micro_batch_size)
    check_fits(cfg, mine.stop - mine.start, micro, seq_len,
               sequences_per_item=sequences_per_item, processes=world.local_size)
