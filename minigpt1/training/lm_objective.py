"""The pre-training loop: batches -> L1 and gradients -> clip -> AdamW, with evaluation,
metrics, checkpoints, a progress bar, a divergence guard and a clean Ctrl-C.

Everything random in a step is drawn from generators seeded by (seed, step), never from
state carried over from the previous step. So a run resumed from the checkpoint of step s
draws exactly the batches and dropout masks the uninterrupted run drew at step s + 1, and
its metrics are bit-identical (the test suite checks this).
"""

import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import backend
from ..corpus.texts import eval_windows, random_windows
from ..fileio import write_text_atomic
from .checkpoint import save_checkpoint
from .distributed import SINGLE
from .estimate import check_fits, flops_per_token
from .optim import clip_grad_norm, warmup_cosine


def option(default, help):
    """A dataclass field whose help text the command line shows for its flag."""
    return field(default=default, metadata={"help": help})


def check_finite_non_negative(config, names):
    """Refuse a NaN, an infinity or a negative value among these float settings: each would
    train without an error and without learning."""
    for name in names:
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")


@dataclass
class TrainConfig:
    """How to train. The defaults suit the small preset on a CPU (see README, Results); the
    paper's values, for its 12 x 768 model on 8 GPUs, are given beside them."""

    max_steps: int = option(5000, "optimizer updates (fewer if --minutes runs out first)")
    batch_size: int = option(8, "sequences per update (GPT-1: 64)")
    micro_batch_size: int = option(8, "sequences per forward/backward; gradients accumulate")
    lr: float = option(2e-3, "peak learning rate (GPT-1: 2.5e-4)")
    min_lr_ratio: float = option(0.1, "the cosine ends at lr * min_lr_ratio (GPT-1: 0)")
    warmup_steps: int = option(300, "linear warm-up from 0; post-LN needs it (GPT-1: 2000)")
    weight_decay: float = option(0.01, "decoupled, on matrices only (GPT-1: 0.01)")
    grad_clip: float = option(1.0, "global-norm clipping threshold")
    eval_every: int = option(250, "evaluate, log val_loss and checkpoint every N updates")
    eval_windows: int = option(64, "validation windows per evaluation (spread over the text)")
    log_every: int = option(10, "append a metrics line every N updates")
    seed: int = option(0, "seeds data order and dropout masks")
    minutes: float | None = option(None, "wall-clock budget; the schedule is fitted to it")

    def __post_init__(self):
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of micro_batch_size "
                f"({self.micro_batch_size})"
            )
        for name in ("max_steps", "batch_size", "micro_batch_size", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_finite_non_negative(self, ("lr", "min_lr_ratio", "weight_decay", "grad_clip"))


class StoppedEarly(KeyboardInterrupt):
    """Ctrl-C stopped the run after an update and a checkpoint: --resume continues it."""


class Diverged(RuntimeError):
    """The loss or a gradient stopped being a finite number."""


def step_seed(seed, step, stream):
    """An independent 32-bit seed for (run seed, step, stream): data is stream 0, dropout 1+."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0])


def first_non_finite(arrays):
    """Name of the first array holding a NaN or an infinity, or None."""
    for name, a in arrays.items():
        if not bool(backend.xp_of(a).isfinite(a).all()):
            return name
    return None


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


def train_step(model, optimizer, train_ids, step, lr, tcfg, seq_len, world=SINGLE):
    """One update from batch_size windows, in micro-batches (on several ranks: this rank's
    share, then one all-reduce); returns (mean loss, grad norm)."""
    windows = random_windows(train_ids, tcfg.batch_size, seq_len + 1, np.random.default_rng(
        step_seed(tcfg.seed, step, 0)))  # (B, T + 1): T inputs, each with its next token
    mine, micro, first = rank_micro_batches(world, tcfg.batch_size, tcfg.micro_batch_size)
    windows = windows[mine]  # (B / N, T + 1): this rank's shard

    def loss_and_grads(i):
        rng = backend.device_rng(model.device, step_seed(tcfg.seed, step, first + i + 1))
        return model.lm_loss_and_grads(windows[i * micro : (i + 1) * micro], train=True, rng=rng)

    sizes = [micro] * (len(windows) // micro)
    loss, grads = mean_over_micro_batches(sizes, loss_and_grads, total=tcfg.batch_size)
    grads, (loss,) = world.sum_gradients(grads, (loss,))
    norm = clip_and_check(grads, loss, tcfg.grad_clip, step)
    optimizer.step(grads, lr=lr)
    return loss, norm


def evaluate(model, windows, micro_batch_size):
    """Mean L1 over equal-length validation windows (dropout off)."""
    batches = [windows[i : i + micro_batch_size] for i in range(0, len(windows), micro_batch_size)]
    losses = [model.lm_loss(batch) for batch in batches]
    return float(np.average(losses, weights=[len(batch) for batch in batches]))


MEASURED_STEPS = 8  # updates timed before a wall-clock budget is turned into a step count


def fit_steps_to_budget(tcfg, seconds_per_step):
    """How many updates fit in tcfg.minutes, keeping ~10% for evaluations and checkpoints."""
    if tcfg.minutes is None:
        return tcfg.max_steps
    fit = int(0.9 * tcfg.minutes * 60 / seconds_per_step)
    return max(1, min(tcfg.max_steps, fit))


class GracefulInterrupt:
    """The first Ctrl-C asks the loop to stop after the current update (and checkpoint);
    a second one stops at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("interrupt: finishing this update, then saving a checkpoint (Ctrl-C again "
                   "to stop at once)")

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)
        return False


def append_metrics(path, record):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(path, step):
    """Keep only the metrics lines of steps <= step (a resumed run rewrites what follows).

    A process killed mid-write can leave a last line without its newline: it is dropped.
    """
    path = Path(path)
    if not path.exists():
        return
    complete = path.read_text(encoding="utf-8").split("\n")[:-1]  # lines that ended
    kept = [line for line in complete if line.strip() and json.loads(line)["step"] <= step]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def pretrain(model, optimizer, train_ids, val_ids, tcfg, run_dir, start_step=0,
             total_steps=None, val_units_per_token=None, unit="char", progress=True,
             world=SINGLE):
    """Run (or continue) pre-training from start_step; on several ranks (`world`), each
    computes its share of every update and only rank 0 writes.

    Returns {"steps", "val_loss", "tokens_per_s"} of this session, and "val_bits_per_<unit>"
    when val_units_per_token is given.

    val_units_per_token: tokens / characters (or bytes) of the validation text, to turn
    nats per token into bits per character: bpc = loss * tokens / chars / ln 2.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.jsonl"
    if world.is_writer:
        truncate_metrics(metrics_path, start_step)
    seq_len = model.cfg.n_ctx
    val = eval_windows(val_ids, seq_len + 1, tcfg.eval_windows)
    tokens_per_step = tcfg.batch_size * seq_len

    def lr_at(step):
        return warmup_cosine(step, tcfg.lr, tcfg.warmup_steps, total_steps,
                             tcfg.lr * tcfg.min_lr_ratio)

    def bits(loss):  # validation nats per token -> bits per byte (or character)
        return loss * val_units_per_token / math.log(2)

    def checkpoint(step, val_loss=None):
        world.check_identical(model.params, step)  # every rank: the weights saved are everyone's
        if world.is_writer:
            state = {"config": model.cfg.to_dict(), "train": asdict(tcfg),
                     "total_steps": total_steps}
            save_checkpoint(run_dir, step, model.params, optimizer.state_dict(), state, val_loss)

    fitted = total_steps is not None  # a resumed run keeps the schedule it started with
    total_steps = total_steps or tcfg.max_steps
    bar = tqdm(total=total_steps, initial=start_step, desc="pre-training", unit="step",
               disable=not (progress and world.is_writer), dynamic_ncols=True)
    val_loss, started, step, durations = None, time.perf_counter(), start_step, []
    with GracefulInterrupt() as interrupt:
        while step < total_steps and not world.agree(interrupt.requested):
            t0 = time.perf_counter()
            loss, norm = train_step(model, optimizer, train_ids, step, lr_at(step), tcfg, seq_len,
                                    world)
            durations.append(time.perf_counter() - t0)
            record = {"step": step + 1, "loss": loss, "lr": lr_at(step), "grad_norm": norm}
            step += 1
            if not fitted and step == min(MEASURED_STEPS + 2, total_steps):  # fix the schedule
                timed = durations[2:] or durations  # the first two pay for first touches
                seconds = world.broadcast_json(sum(timed) / len(timed))  # one plan for all ranks
                # never fewer than already done: the last update must still be evaluated
                total_steps = max(step, fit_steps_to_budget(tcfg, seconds))
                fitted, bar.total = True, total_steps
                gflops = flops_per_token(model.cfg, seq_len).training * tokens_per_step / 1e9
                tqdm.write(f"measured {seconds:.2f} s per update ({gflops / seconds:,.0f} GFLOP/s):"
                           f" {total_steps} updates planned ({total_steps * seconds / 60:.1f} min)")
            if step % tcfg.eval_every == 0 or step == total_steps:
                val_loss = evaluate(model, val, tcfg.micro_batch_size)
                record.update(val_loss=val_loss, val_ppl=math.exp(min(val_loss, 700)))
                if val_units_per_token is not None:
                    record[f"val_bp{unit[0]}"] = bits(val_loss)
            if world.is_writer and (step % tcfg.log_every == 0 or "val_loss" in record):
                append_metrics(metrics_path, record)
            if "val_loss" in record:  # after its metrics line: a resume never loses that line
                checkpoint(step, val_loss)
            rate = (step - start_step) * tokens_per_step / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}")
            bar.update(1)
    bar.close()
    if step < total_steps:  # stopped early by Ctrl-C: keep what was done
        checkpoint(step)
        world.barrier()  # no rank leaves before rank 0 has saved
        raise StoppedEarly(f"stopped at step {step}; continue with --resume")
    if val_loss is None:  # resumed a run that had already finished (killed after its last save)
        val_loss = evaluate(model, val, tcfg.micro_batch_size)
    rate = (step - start_step) * tokens_per_step / max(1e-9, time.perf_counter() - started)
    result = {"steps": step, "val_loss": val_loss, "tokens_per_s": rate}
    if val_units_per_token is not None:
        result[f"val_bits_per_{unit}"] = bits(val_loss)
    return result
