"""Pre-training's objective, L1: the language model's loss on windows of text, driven by the
training loop (loop.py).

    L1(U) = sum_i log P(u_i | u_{i-k..i-1})     k = n_ctx; the loss minimised is -L1 per token

One update draws batch_size random windows of n_ctx + 1 tokens from the training ids (the
window's last n_ctx tokens are the targets of its first n_ctx), takes the mean L1 and its
gradients over shards of the batch (one thread per core, the same numbers on any number of
cores), clips them and steps AdamW along a warm-up + cosine schedule.
An evaluation is the mean L1 over fixed windows spread over the validation text.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..corpus.text_folders import eval_windows, random_windows
from . import loop
from .distributed import SINGLE
from .dropout_streams import DropoutStreams
from .estimate import flops_per_token
from .optim import warmup_cosine
from .options import check_finite_non_negative, option
from .update import batch_shards, clip_and_check, rank_micro_batches, step_seed, sum_over_shards


@dataclass
class TrainConfig:
    """How to train. The defaults suit the small preset on a CPU (see README, Results); the
    paper's values, for its 12 x 768 model on 8 GPUs, are given beside them."""

    max_steps: int = option(5000, "optimizer updates (fewer if --minutes runs out first)")
    batch_size: int = option(8, "sequences per update (GPT-1: 64)")
    micro_batch_size: int = option(8, "sequences per forward/backward, run as two shards on "
                                      "the cores; gradients accumulate")
    lr: float = option(2e-3, "peak learning rate (GPT-1: 2.5e-4)")
    min_lr_ratio: float = option(0.1, "the cosine ends at lr * min_lr_ratio (GPT-1: 0)")
    warmup_steps: int = option(300, "linear warm-up from 0; post-LN needs it (GPT-1: 2000)")
    weight_decay: float = option(0.01, "decoupled, on matrices only (GPT-1: 0.01)")
    grad_clip: float = option(1.0, "global-norm clipping threshold")
    eval_every: int = option(250, "evaluate, log val_loss and checkpoint every N updates")
    keep_every: int | None = option(None, "keep the checkpoint of every N updates as a snapshot "
                                          "(a multiple of --eval-every); others are pruned")
    eval_windows: int = option(64, "validation windows per evaluation (spread over the text)")
    log_every: int = option(10, "append a metrics line every N updates")
    seed: int = option(0, "seeds data order and dropout masks")
    minutes: float | None = option(None, "wall-clock budget; the schedule is fitted to it")

    def __post_init__(self):
        # ranges first: a micro_batch_size of 0 must not reach the modulo below
        for name in ("max_steps", "batch_size", "micro_batch_size", "eval_every", "eval_windows",
                     "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.keep_every is not None and (self.keep_every < 1
                                            or self.keep_every % self.eval_every):
            raise ValueError(f"keep_every ({self.keep_every}) must be a positive multiple of "
                             f"eval_every ({self.eval_every}): snapshots are kept checkpoints, "
                             "and checkpoints are written every eval_every updates")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be at least 0, got {self.warmup_steps}")
        check_finite_non_negative(self, ("lr", "min_lr_ratio", "weight_decay", "grad_clip"))
        if self.minutes is not None and not 0 < self.minutes < math.inf:
            raise ValueError(f"minutes must be a finite number > 0, got {self.minutes}")
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of micro_batch_size "
                f"({self.micro_batch_size})"
            )


@dataclass
class TokenData:
    """The token ids pre-training reads, and what turns its validation loss into bits per byte
    (or character): bits = nats per token * tokens / bytes / ln 2."""

    train: np.ndarray  # (N,) the training text's token ids
    val: np.ndarray  # (N_val,) the validation text's
    val_tokens_per_unit: float | None = None  # tokens / bytes (or characters) of validation
    unit: str = "char"  # "byte" or "char": what the bits are per

    def bits_per_unit(self, loss):
        """A validation loss in nats per token -> bits per byte (or character)."""
        return loss * self.val_tokens_per_unit / math.log(2)


def train_step(model, optimizer, train_ids, step, lr, tcfg, seq_len, world=SINGLE):
    """One update from batch_size windows, in shards (on several ranks: this rank's share,
    then one all-reduce); returns (mean loss, grad norm)."""
    windows = random_windows(train_ids, tcfg.batch_size, seq_len + 1, np.random.default_rng(
        step_seed(tcfg.seed, step, 0)))  # (B, T + 1): T inputs, each with its next token
    loss, grads = batch_loss_and_grads(model, windows, tcfg.seed, step,
                                       tcfg.micro_batch_size, world)
    grads, (loss,) = world.sum_gradients(grads, (loss,))
    norm = clip_and_check(grads, loss, tcfg.grad_clip, step)
    optimizer.step(grads, lr=lr)
    return loss, norm


def batch_loss_and_grads(model, windows, seed, step, micro_batch_size, world=SINGLE):
    """This rank's share of the mean L1 over windows (B, T + 1) and of its gradients, dropout
    on: the sum over its shards (update.batch_shards) of each shard's share, in a fixed order.

    Each sequence draws its dropout masks from its own streams (dropout_streams.py), so the
    result is the same bit for bit on 1, 2 or 4 threads: the core count changes neither the
    shards, nor their masks, nor the order their gradients are added in.
    """
    B = windows.shape[0]
    mine, micro = rank_micro_batches(world, B, micro_batch_size)
    shards = batch_shards(range(mine.start, mine.stop), micro)

    def shard_loss_and_grads(rows):
        streams = DropoutStreams(seed, step, rows, model.device)
        return model.lm_loss_and_grads(windows[rows.start : rows.stop], train=True,
                                       rng=streams, scale=len(rows) / B)

    return sum_over_shards(shard_loss_and_grads, shards, model.device)


def evaluate(model, windows, micro_batch_size):
    """Mean L1 over equal-length validation windows (dropout off)."""
    batches = [windows[i : i + micro_batch_size] for i in range(0, len(windows), micro_batch_size)]
    losses = [model.lm_loss(batch) for batch in batches]
    return float(np.average(losses, weights=[len(batch) for batch in batches]))


def pretrain(model, optimizer, data, tcfg, run_dir, start_step=0, total_steps=None,
             progress=True, world=SINGLE, fitted=None):
    """Run (or continue) pre-training on TokenData from start_step; on several ranks
    (`world`), each computes its share of every update and only rank 0 writes.

    total_steps is the schedule a resumed run started with; a fresh run (None) fits its
    number of updates to tcfg.minutes once its first updates are timed, and twice more
    (loop.Budget), and tells `fitted(total)` the number each time. Returns {"steps",
    "val_loss", "tokens_per_s"} of this session, and "val_bits_per_<unit>" when the data
    gives its tokens per unit.
    """
    seq_len = model.cfg.n_ctx
    val = eval_windows(data.val, seq_len + 1, tcfg.eval_windows)  # (W, T + 1), fixed
    tokens_per_update = tcfg.batch_size * seq_len

    def update(step, total):
        lr = warmup_cosine(step, tcfg.lr, tcfg.warmup_steps, total, tcfg.lr * tcfg.min_lr_ratio)
        loss, norm = train_step(model, optimizer, data.train, step, lr, tcfg, seq_len, world)
        return {"loss": loss, "lr": lr, "grad_norm": norm}

    def validate(step):
        val_loss = evaluate(model, val, tcfg.micro_batch_size)
        record = {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 700))}
        if data.val_tokens_per_unit is not None:
            record[f"val_bp{data.unit[0]}"] = data.bits_per_unit(val_loss)
        return record

    state = {"config": model.cfg.to_dict(), "train": asdict(tcfg)}
    save = loop.saver(run_dir, model.params, optimizer, state, world, tcfg.keep_every)
    objective = loop.Objective("pre-training", update, validate, save, tokens_per_update, "tok")
    budget = None  # a resumed run keeps the schedule it started with
    if total_steps is None:
        flops = flops_per_token(model.cfg, seq_len).training * tokens_per_update
        budget = loop.Budget(tcfg.minutes, flops, fitted, warmup_end=tcfg.warmup_steps)
    schedule = loop.Schedule(start_step, total_steps or tcfg.max_steps, tcfg.eval_every,
                             tcfg.log_every, budget)
    done = loop.train(objective, schedule, run_dir, world, progress)
    val_loss = done.validation["val_loss"]
    result = {"steps": done.steps, "val_loss": val_loss, "tokens_per_s": done.items_per_s}
    if data.val_tokens_per_unit is not None:
        result[f"val_bits_per_{data.unit}"] = data.bits_per_unit(val_loss)
    return result
