"""The training loop, written once. Pre-training (lm_objective.py) and fine-tuning
(task_objective.py) drive it through three callbacks: an update, an evaluation and a save.

    for step = start .. total - 1:
        record = update(step, total)               one optimizer update: loss, lr, grad norm
        a fresh pre-training run, after its first updates, at the warm-up's end and halfway
            from there: fit `total` to the time budget
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
BUDGET_SHARE = 0.95  # of a budget, for the updates (and evaluations) up to the last one; the
# rest is for the last evaluation and checkpoint


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
    """Fit a fresh run's number of updates to a wall-clock budget: once its first updates are
    timed, again at the warm-up's end, and last halfway from there to the end, each time from
    the time per update since the fit before (evaluations included). Until the warm-up's end
    the learning rate does not depend on the total, so the second fit changes nothing done;
    the third follows a machine that sped up or slowed down since. With no budget the number
    stays, and the timing still says how long it will take."""

    minutes: float | None
    flops_per_update: float  # for the GFLOP/s the timing reports
    fitted: Callable[[int], None] | None = None  # told the total at each fit (run.json keeps it)
    warmup_end: int = 0  # updates done when the warm-up ends

    def first_fit(self, start):
        """Updates done at the first fit: MEASURED_STEPS timed ones, after two that pay for
        first touches of memory."""
        return start + MEASURED_STEPS + 2

    def next_fit(self, start, step, total):
        """Updates done at the fit after the one made at `step`, or None after the last: the
        warm-up's end if it is still ahead, else halfway to the end; none after the halfway
        fit (the one made neither at the first fit nor at the warm-up's end)."""
        if step not in (self.first_fit(start), self.warmup_end):
            return None
        at = self.warmup_end if step < self.warmup_end else (step + total) // 2
        return at if step < at < total else None


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
    next_fit = budget.first_fit(step) if budget else None  # updates done at the next fit
    bar = tqdm(total=total, initial=step, desc=objective.name, unit="step",
               disable=not (progress and world.is_writer), dynamic_ncols=True)
    # a budget counts from the session's first update (a resume's with --minutes)
    clock = Stopwatch(step)
    # the bar closes however the loop ends: an error's message then gets a line of its own
    with bar, GracefulInterrupt() as interrupt:
        # one rank's Ctrl-C stops them all, at the same update: none may wait for the others
        while step < total and not world.agree(interrupt.requested):
            record = {"step": step + 1, **objective.update(step, total)}
            step += 1
            clock.updated(step)
            if next_fit and step == min(next_fit, total):
                total = bar.total = fit_to_budget(budget, clock, schedule.total, step, world)
                next_fit = budget.next_fit(schedule.start, step, total)
            evaluated = step % schedule.eval_every == 0 or step == total
            if evaluated:
                validation = objective.evaluate(step)
                record.update(validation)
            if world.is_writer and (evaluated or step % schedule.log_every == 0):
                append_metrics(metrics, record)
            if evaluated:  # after its metrics line: a resume never loses that line
                objective.save(step, total, validation["val_loss"])
            speed = (step - schedule.start) * objective.per_update / clock.elapsed()
            bar.set_postfix({"loss": f"{record['loss']:.3f}",
                             f"{objective.item}_s": f"{speed:,.0f}"})
            bar.update(1)
    if step < total:  # stopped early by Ctrl-C: keep what was done
        objective.save(step, total, None)
        world.barrier()  # no rank leaves before rank 0 has saved
        raise StoppedEarly(f"stopped at step {step}; continue with --resume")
    if validation is None:  # resumed a run that had already finished (killed after its save)
        validation = objective.evaluate(step)
    seconds = max(1e-9, clock.elapsed())
    return Outcome(step, validation, (step - schedule.start) * objective.per_update / seconds)


class Stopwatch:
    """A training session's clock: the time since it started, and the time per update since
    the last fit of its budget (or, before the first, since its first two updates, which pay
    for first touches of memory), evaluations and saves included."""

    def __init__(self, start):
        self.start, self.started = start, time.perf_counter()
        self.timed_from = (start, self.started)  # (updates done, time) the timing counts from

    def updated(self, step):
        if step - self.start <= 2:
            self.timed_from = (step, time.perf_counter())

    def elapsed(self):
        return time.perf_counter() - self.started

    def lap(self, step):
        """Seconds per update since the timing's origin, which then moves to now."""
        done, since = self.timed_from
        if step == done:  # two updates or fewer: time them all
            done, since = self.start, self.started
        now = time.perf_counter()
        self.timed_from = (step, now)
        return (now - since) / (step - done)


def fit_to_budget(budget, clock, total, step, world):
    """The run's number of updates, fitted after `step` of them: those done plus as many as
    the clock's time per update fits in what is left of BUDGET_SHARE of the budget, at most
    `total` (the schedule's own), and never fewer than `step` (the last update done must
    still be evaluated)."""
    # rank 0's timing: one plan for all ranks
    seconds, elapsed = world.broadcast_json([clock.lap(step), clock.elapsed()])
    if budget.minutes is not None:
        left = BUDGET_SHARE * budget.minutes * 60 - elapsed
        total = min(total, step + max(0, int(left / seconds)))
    total = max(step, total)
    if budget.fitted:
        budget.fitted(total)
    tqdm.write(f"after {step - clock.start} updates, {seconds:.3f} s per update "
               f"({budget.flops_per_update / 1e9 / seconds:,.0f} GFLOP/s): {total} updates "
               f"planned ({elapsed / 60 + (total - step) * seconds / 60:.1f} min)")
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
