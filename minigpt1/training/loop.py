"""The training loop, written once. Pre-training (lm_objective.py) and fine-tuning
(task_objective.py) drive it through three callbacks: an update, an evaluation and a save.

    for step = start .. total - 1:
        record = update(step, total)               one optimizer update: loss, lr, grad norm
        a fresh pre-training run, after its first updates: fit `total` to the time budget
        every eval_every updates, and after the last:
            record += evaluate(step + 1)           validation loss (and the task's metric)
        every log_every updates, and with each evaluation: record -> a metrics.jsonl line
        after an evaluation, and after its metrics line: save(step + 1, total, val_loss)

The first Ctrl-C asks the loop to stop after the update in flight: it saves a checkpoint and
raises StoppedEarly, and --resume continues from there. On several ranks (distributed.py)
every rank runs this loop in step: before each update they agree whether to stop, the
evaluation and the save run on all of them, and only rank 0 writes files and shows progress.
"""

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..fileio import naming_errors, write_text_atomic
from .checkpoint import save_checkpoint
from .distributed import SINGLE

MEASURED_STEPS = 8  # updates timed before a wall-clock budget is turned into a step count


class StoppedEarly(KeyboardInterrupt):
    """Ctrl-C stopped the run after an update and a checkpoint: --resume continues it."""


@dataclass
class Objective:
    """What the loop trains, as three callbacks, and the words its progress bar uses."""

    name: str  # the progress bar's label, e.g. "pre-training"
    update: Callable[[int, int], dict]  # (step, total) -> that update's metrics: loss, lr, ...
    evaluate: Callable[[int], dict]  # (step) -> validation metrics, "val_loss" among them
    save: Callable[[int, int, float | None], None]  # (step, total, val_loss) -> a checkpoint
    per_update: int  # items (tokens, examples) per update, for the speed shown and returned
    item: str  # their name in the progress bar: "tok", "ex"


@dataclass
class Budget:
    """Fit a fresh run's number of updates to a wall-clock budget once its first updates are
    timed. With no budget the number stays, and the timing still says how long it will take."""

    minutes: float | None
    flops_per_update: float  # for the GFLOP/s the timing reports
    fitted: Callable[[int], None] | None = None  # told the total once fixed (run.json keeps it)


@dataclass
class Schedule:
    """When the loop does what, counted in optimizer updates."""

    start: int  # updates already done: 0, or the step of the checkpoint a run resumes from
    total: int  # updates in the whole run (at most that, with a budget)
    eval_every: int  # evaluate, then save a checkpoint, every N updates and after the last
    log_every: int  # append a metrics line every N updates (and at every evaluation)
    budget: Budget | None = None  # a fresh pre-training run's; None keeps `total` as it is


@dataclass
class Outcome:
    """What a training session ended with."""

    steps: int  # updates done in all (the resumed ones included)
    validation: dict  # the last evaluation's metrics
    items_per_s: float  # training speed of this session


def train(objective, schedule, run_dir, world=SINGLE, progress=True):
    """Run (or continue) training from schedule.start; returns its Outcome. Raises
    StoppedEarly after a Ctrl-C (once saved), Diverged on a NaN (the last checkpoint stays)."""
    metrics = Path(run_dir) / "metrics.jsonl"
    if world.is_writer:
        truncate_metrics(metrics, schedule.start)  # a resumed run rewrites what follows
    step, total, budget, validation = schedule.start, schedule.total, schedule.budget, None
    bar = tqdm(total=total, initial=step, desc=objective.name, unit="step",
               disable=not (progress and world.is_writer), dynamic_ncols=True)
    started, durations = time.perf_counter(), []
    # the bar closes however the loop ends: an error's message then gets a line of its own
    with bar, GracefulInterrupt() as interrupt:
        # one rank's Ctrl-C stops them all, at the same update: none may wait for the others
        while step < total and not world.agree(interrupt.requested):
            t0 = time.perf_counter()
            record = {"step": step + 1, **objective.update(step, total)}
            durations.append(time.perf_counter() - t0)
            step += 1
            # a budget counts from the session's first update (a resume's with --minutes)
            if budget and step == min(schedule.start + MEASURED_STEPS + 2, total):
                total = bar.total = fit_to_budget(budget, durations, total, step, world,
                                                  schedule.start)
                budget = None
            evaluated = step % schedule.eval_every == 0 or step == total
            if evaluated:
                validation = objective.evaluate(step)
                record.update(validation)
            if world.is_writer and (evaluated or step % schedule.log_every == 0):
                append_metrics(metrics, record)
            if evaluated:  # after its metrics line: a resume never loses that line
                objective.save(step, total, validation["val_loss"])
            speed = (step - schedule.start) * objective.per_update / (time.perf_counter() - started)
            bar.set_postfix({"loss": f"{record['loss']:.3f}",
                             f"{objective.item}_s": f"{speed:,.0f}"})
            bar.update(1)
    if step < total:  # stopped early by Ctrl-C: keep what was done
        objective.save(step, total, None)
        world.barrier()  # no rank leaves before rank 0 has saved
        raise StoppedEarly(f"stopped at step {step}; continue with --resume")
    if validation is None:  # resumed a run that had already finished (killed after its save)
        validation = objective.evaluate(step)
    seconds = max(1e-9, time.perf_counter() - started)
    return Outcome(step, validation, (step - schedule.start) * objective.per_update / seconds)


def fit_to_budget(budget, durations, total, step, world, start=0):
    """The run's number of updates once `durations` timed the first ones: `start` plus as
    many as fit in the budget (keeping ~10% for evaluations and checkpoints), at most `total`,
    and never fewer than the `step` updates already done (the last one must be evaluated)."""
    timed = durations[2:] or durations  # the first two pay for first touches of memory
    seconds = world.broadcast_json(sum(timed) / len(timed))  # rank 0's timing: one plan for all
    if budget.minutes is not None:
        total = max(1, min(total, start + int(0.9 * budget.minutes * 60 / seconds)))
    total = max(step, total)
    if budget.fitted:
        budget.fitted(total)
    tqdm.write(f"measured {seconds:.2f} s per update "
               f"({budget.flops_per_update / 1e9 / seconds:,.0f} GFLOP/s): {total} updates "
               f"planned ({total * seconds / 60:.1f} min)")
    return total


def saver(run_dir, params, optimizer, state, world=SINGLE, keep_every=None):
    """The save callback of both objectives: every rank checks that its weights are rank 0's
    (the weights saved are everyone's), then rank 0 writes the checkpoint, whose state.json
    holds `state` (the configs) and the run's number of updates. The checkpoint of every
    `keep_every`-th update is kept as a snapshot."""

    def save(step, total, val_loss=None):
        world.check_identical(params, step)
        if world.is_writer:
            keep = keep_every is not None and step % keep_every == 0
            save_checkpoint(run_dir, step, params, optimizer.state_dict(),
                            {**state, "total_steps": total}, val_loss, keep=keep)

    return save


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
    with naming_errors(path), open(path, "a", encoding="utf-8") as f:  # a full disk names it
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
