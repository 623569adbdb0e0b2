"""Fine-tuning's objective: L2 (or L3 = L2 + lambda L1) on a labelled task, with GPT-1's recipe,
driven by the training loop (loop.py).

    for each of `epochs` passes over the shuffled training examples:
        for each batch of `batch_size` examples (the last, incomplete one is dropped):
            loss, grads = L3 and its gradients, averaged over micro-batches
                          (each run as two shards on the cores)
            clip the global gradient norm to 1; AdamW with warmup_linear
    evaluate on the validation split after every epoch, with the task's metric

As in pre-training, each step's randomness (which examples, which dropout masks) is drawn
from generators seeded by (seed, step), so a run resumed from a checkpoint repeats exactly
what the uninterrupted run would have done. On several ranks (distributed.py) each takes its
share of every batch; the update is the same.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from .. import backend
from ..finetuning.metrics import all_scores
from ..finetuning.transformations import make_batch
from . import loop
from .distributed import SINGLE
from .optim import warmup_linear
from .options import check_finite_non_negative, option
from .update import batch_shards, clip_and_check, rank_micro_batches, step_seed, sum_over_shards


@dataclass
class FinetuneConfig:
    """How to fine-tune. The defaults are GPT-1's (paper, section 4.1; the original code)."""

    epochs: int = option(3, "passes over the training examples (GPT-1: 3)")
    batch_size: int = option(32, "examples per update (GPT-1: 32)")
    micro_batch_size: int = option(8, "examples per forward/backward; gradients accumulate")
    lr: float = option(6.25e-5, "peak learning rate (GPT-1: 6.25e-5)")
    warmup: float = option(0.002, "fraction of the updates spent warming up (GPT-1: 0.002)")
    weight_decay: float = option(0.01, "decoupled, on matrices only (GPT-1: 0.01)")
    grad_clip: float = option(1.0, "global-norm clipping threshold (GPT-1: 1)")
    lm_coef: float = option(0.5, "lambda, the weight of the auxiliary LM loss; 0 = L2 alone")
    clf_pdrop: float = option(0.1, "dropout on the extract token's state (GPT-1: 0.1)")
    transfer_layers: int | None = option(
        None, "keep the embeddings and the first N pre-trained blocks (-1: none; default all)")
    max_train_examples: int | None = option(
        None, "train on a seeded random subset of this many examples (default: all)")
    eval_every: int = option(0, "evaluate every N updates (0: after every epoch)")
    log_every: int = option(10, "append a metrics line every N updates")
    seed: int = option(0, "seeds the head, data order and dropout masks")

    def __post_init__(self):
        for name in ("epochs", "batch_size", "micro_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_finite_non_negative(self, ("lr", "weight_decay", "grad_clip", "lm_coef"))
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the updates, in [0, 1): got {self.warmup}")
        if not 0 <= self.clf_pdrop < 1:  # dropout divides by 1 - rate
            raise ValueError(f"clf_pdrop is a dropout rate, in [0, 1): got {self.clf_pdrop}")


def steps_per_epoch(n_examples, batch_size):
    """Whole batches per pass (GPT-1 drops the incomplete last one); at least one."""
    return max(1, n_examples // batch_size)


def batch_indices(n_examples, fcfg, step):
    """The examples of update `step`: a slice of epoch (step // steps)'s seeded shuffle."""
    per_epoch = steps_per_epoch(n_examples, fcfg.batch_size)
    epoch, i = divmod(step, per_epoch)
    order = np.random.default_rng(step_seed(fcfg.seed, epoch, 0)).permutation(n_examples)
    return order[i * fcfg.batch_size : (i + 1) * fcfg.batch_size]


def micro_batches(items, size):
    return [items[i : i + size] for i in range(0, len(items), size)]


def finetune_step(model, optimizer, train, step, lr, fcfg, world=SINGLE):
    """One update (on several ranks: this rank's share of the batch, then one all-reduce);
    returns (L3, L2, L1 or None, grad norm), means over the batch.

    As in pre-training, each micro-batch runs as two shards on the cores (update.batch_shards)
    and their gradients are added in one fixed tree. A shard draws its dropout masks from a
    generator seeded by (seed, step, its first example), so the update is the same bit for bit
    on any number of cores and ranks."""
    indices = batch_indices(len(train), fcfg, step)
    mine, micro = rank_micro_batches(world, len(indices), fcfg.micro_batch_size)

    def shard_loss_and_grads(rows):
        rng = backend.device_rng(model.gpt.device, step_seed(fcfg.seed, step, rows.start + 1))
        batch = make_batch([train[i] for i in indices[rows.start : rows.stop]],
                           model.spec.regression)
        share = len(rows) / len(indices)  # this shard's part of the batch's mean
        loss, grads, terms = model.finetune_loss_and_grads(batch, fcfg.lm_coef, True, rng,
                                                           scale=share)
        return np.array([loss, share * terms["l2"], share * (terms["l1"] or 0.0)]), grads

    losses, grads = sum_over_shards(shard_loss_and_grads,
                                    batch_shards(range(mine.start, mine.stop), micro),
                                    model.gpt.device)
    grads, (loss, l2, l1) = world.sum_gradients(grads, tuple(map(float, losses)))
    norm = clip_and_check(grads, loss, fcfg.grad_clip, step)
    optimizer.step(grads, lr=lr)
    return loss, l2, l1 if fcfg.lm_coef else None, norm


def predictions(scores, spec):
    """Scores -> predicted labels: the argmax class or answer; the value itself for regression."""
    return scores if spec.regression else scores.argmax(axis=-1)


def evaluate_task(model, encoded, batch_size=32):
    """{"loss": mean L2, "metric": the task's metric, "metrics": {name: value} of it and of
    what GLUE reports beside it (metrics.all_scores)} over encoded examples (dropout off)."""
    spec = model.spec
    order = sorted(range(len(encoded)), key=lambda i: max(map(len, encoded[i].sequences)))
    losses, sizes, predicted = [], [], np.zeros(len(encoded))
    for chunk in micro_batches(order, batch_size):  # similar lengths together: less padding
        batch = make_batch([encoded[i] for i in chunk], spec.regression)
        l2, scores = model.evaluate(batch)  # one forward pass for the loss and the scores
        losses.append(l2)
        sizes.append(len(chunk))
        predicted[chunk] = predictions(scores, spec)
    labels = np.array([e.label for e in encoded])
    if not spec.regression:
        predicted = predicted.astype(np.int64)
    scores = all_scores(spec.metric, predicted, labels)
    return {"loss": float(np.average(losses, weights=sizes)), "metric": scores[spec.metric],
            "metrics": scores}


def schedule_warning(n_examples, fcfg):
    """What is wrong with the learning-rate schedule of n_examples training examples, in
    words; None when nothing is.

    GPT-1's schedule warms up over ceil(warmup * total) updates, the first at lr 0. On a
    tiny training set that can be all of the first epoch, or every update: with fewer
    examples than a batch an epoch is one update, so a one-epoch run is the warm-up's first
    update alone, at lr 0, and changes no weight (its L2 and L3 runs end identical).
    """
    per_epoch = steps_per_epoch(n_examples, fcfg.batch_size)
    total = per_epoch * fcfg.epochs
    warmup_steps = math.ceil(fcfg.warmup * total)
    schedule = (f"{n_examples} training examples in batches of {fcfg.batch_size} make "
                f"{per_epoch} update(s) per epoch, {total} in {fcfg.epochs} epoch(s), of which "
                f"warm-up ({fcfg.warmup:.1%} of them, rounded up) takes {warmup_steps}")
    fix = ("more training examples (--max-train-examples), a smaller --batch-size, more "
           "--epochs, or --warmup 0 (the first update then runs at the peak lr)")
    if all(warmup_linear(step, 1.0, warmup_steps, total) == 0 for step in range(total)):
        return (f"WARNING: every update runs at learning rate 0, so fine-tuning changes no "
                f"weight: {schedule}, and the warm-up's first update has lr 0. Fix: {fix}.")
    if per_epoch < warmup_steps + 1:
        return (f"WARNING: the whole first epoch is warm-up, its first update at learning rate "
                f"0: {schedule}. Fix: {fix}.")
    return None


def finetune(model, optimizer, train, validation, fcfg, run_dir, start_step=0, progress=True,
             world=SINGLE):
    """Run (or continue) fine-tuning of a TaskModel on encoded examples; returns a summary
    {"steps", "val_loss", "val_metric", "examples_per_s"}. Only rank 0 writes."""
    per_epoch = steps_per_epoch(len(train), fcfg.batch_size)
    total_steps = per_epoch * fcfg.epochs
    warmup_steps = math.ceil(fcfg.warmup * total_steps)
    metric = model.spec.metric

    def update(step, total):
        lr = warmup_linear(step, fcfg.lr, warmup_steps, total)
        loss, l2, l1, norm = finetune_step(model, optimizer, train, step, lr, fcfg, world)
        return {"loss": loss, "l2": l2, "l1": l1, "lr": lr, "grad_norm": norm,
                "epoch": step // per_epoch + 1}

    def validate(step):
        val = evaluate_task(model, validation, fcfg.batch_size)
        tqdm.write(f"step {step}: validation {metric} {val['metric']:.4f}, L2 {val['loss']:.4f}")
        return {"val_loss": val["loss"], **{f"val_{k}": v for k, v in val["metrics"].items()}}

    warning = schedule_warning(len(train), fcfg)
    if warning and world.is_writer:
        tqdm.write(warning)

    state = {"config": model.gpt.cfg.to_dict(), "finetune": asdict(fcfg),
             "task": asdict(model.spec)}
    save = loop.saver(run_dir, model.params, optimizer, state, world)
    objective = loop.Objective(f"fine-tuning {model.spec.name}", update, validate, save,
                          fcfg.batch_size, "ex")
    schedule = loop.Schedule(start_step, total_steps, fcfg.eval_every or per_epoch, fcfg.log_every)
    done = loop.train(objective, schedule, run_dir, world, progress)
    return {"steps": done.steps, "val_loss": done.validation["val_loss"],
            "val_metric": done.validation[f"val_{metric}"], "examples_per_s": done.items_per_s}
