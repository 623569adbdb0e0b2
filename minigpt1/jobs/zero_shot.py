"""Figure 2 (right) of the paper at small scale: zero-shot accuracy as pre-training goes on.

The heuristics of finetuning/zero_shot.py score each Shakespeare task with the language model
alone, no fine-tuning, at every kept snapshot of a pre-training run (`pretrain --keep-every N`),
at its last checkpoint, and at step 0: a fresh model with the run's config and seed. The paper
saw these scores climb steadily through pre-training: in learning to model text, the language
model learns things the tasks need.

    OUT/
        settings.json               the run, tasks and split scored: a rerun must ask the same
        steps/step-0000500.json     one checkpoint's accuracy per task (a rerun skips it)
        zero_shot.json              every step's scores, the test-set sizes and chance
        zero_shot.md                the table: pre-training updates x tasks
        zero_shot.png               accuracy against updates, one line per task, chance dashed

A rerun with the same settings scores only the checkpoints not scored yet: those an
interruption left, and those the pre-training run saved since; the tables keep every step
scored, a last checkpoint the run has since replaced included.
"""

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..fileio import read_json, write_json_atomic, write_text_atomic
from ..finetuning.zero_shot import zero_shot_accuracy
from ..model.gpt import GPT
from ..plots import plot_lines
from ..tokenizer.bpe import BPETokenizer
from ..training.checkpoint import load_checkpoint, read_index, snapshots
from .ablation import CHANCE, TASKS, open_experiment, reference_row
from .run_folder import checkpoint_config, hold_run_dir, load_task, source_text_dir

FRESH = "fresh"  # step 0's name: the run's config and seed, no update


@dataclass
class ZeroShotPlan:
    """What `python -m minigpt1 zero-shot` runs (cli.py builds it from the flags)."""

    checkpoint: str | Path  # a pre-training run folder (keep snapshots: pretrain --keep-every)
    out_dir: str | Path = "runs/zero-shot"  # where the tables go
    text_dir: str | Path | None = None  # corpus for the tasks (default: the checkpoint's own)
    tasks: tuple[str, ...] = TASKS
    split: str = "test"  # train | validation | test
    max_examples: int | None = None  # score the first N examples of each task (default all)
    step_zero: bool = True  # also score a fresh model (step 0)
    seed: int = 0  # builds the tasks (the ablation's default fine-tuning seed: the same tests)
    force: bool = False  # delete an earlier zero-shot experiment in out_dir and start over
    device: str = "cpu"  # cpu | cuda

    def __post_init__(self):
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples must be at least 1, got {self.max_examples}")
        if not self.tasks:
            raise ValueError("zero-shot needs at least one task")


def checkpoints_to_score(run_dir, step_zero=True):
    """[(step, which)] oldest first: step 0 (FRESH), every kept snapshot (by its name), and
    the last checkpoint ("last": load_checkpoint reads a checkpoint by name only if kept)."""
    index = read_index(run_dir)
    if index is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoints/: zero-shot scores the "
                                "checkpoints of a pre-training run folder")
    points = [(step_of(name), name) for name in snapshots(run_dir)]
    if index["last"] not in snapshots(run_dir):
        points.append((step_of(index["last"]), "last"))
    return [(0, FRESH), *points] if step_zero else points


def step_of(name):
    return int(name.removeprefix("step-"))


def model_at(run_dir, which, device):
    """(step, GPT) of the run's checkpoint `which`; FRESH: step 0, a GPT initialised with the
    run's config and seed."""
    checkpoint = load_checkpoint(run_dir, "last" if which == FRESH else which)
    cfg = checkpoint_config(checkpoint)
    if which == FRESH:
        seed = checkpoint.state.get("train", {}).get("seed", 0)
        return 0, GPT(cfg, seed=seed, device=device)
    return checkpoint.step, GPT(cfg, device=device, params=checkpoint.params)


def load_examples(plan):
    """{task: (TaskSpec, the examples scored)}: the split, its first max_examples."""
    text_dir = plan.text_dir or source_text_dir(plan.checkpoint)
    found = {}
    for name in plan.tasks:
        task = load_task(name, text_dir=text_dir, seed=plan.seed)
        if plan.split not in task.splits:
            raise ValueError(f"task {name} has no {plan.split} split (it has "
                             f"{', '.join(task.splits)})")
        found[name] = (task.spec, task.splits[plan.split][: plan.max_examples])
    return found


def zero_shot_table(points, tasks, split, sizes):
    """Markdown: accuracy (%) per task and on average at each step, with chance."""
    columns = [*tasks, "average"]
    lines = [f"Zero-shot {split} accuracy (%) of the language model alone, through "
             "pre-training. Examples: " + ", ".join(f"{t} {n}" for t, n in sizes.items()) + ".",
             "", "| updates | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for point in points:
        lines.append(reference_row(str(point["step"]), point["scores"], tasks))
    lines.append(reference_row("chance", CHANCE, tasks))
    return "\n".join(lines)


def run_zero_shot(plan, progress=True):
    """Score every checkpoint not scored yet (continuing an interrupted experiment); write and
    return all the points [{"step", "checkpoint", "scores": {task: accuracy}}], oldest first."""
    with hold_run_dir(plan.out_dir):
        out_dir, run_dir = Path(plan.out_dir), Path(plan.checkpoint)
        todo = checkpoints_to_score(run_dir, plan.step_zero)
        settings = {"kind": "zero-shot", "checkpoint": str(run_dir.resolve()),
                    "text_dir": plan.text_dir and str(Path(plan.text_dir).resolve()),
                    "tasks": list(plan.tasks), "split": plan.split,
                    "max_examples": plan.max_examples, "seed": plan.seed}
        examples, tokenizer = open_experiment(out_dir, settings, plan.force, lambda: (
            load_examples(plan), BPETokenizer.load(run_dir / "tokenizer")))
        steps_dir = out_dir / "steps"
        todo = [(step, which) for step, which in todo if not scored(steps_dir, step).exists()]
        bar = tqdm(total=len(todo), desc="zero-shot checkpoints", unit="checkpoint",
                   disable=not progress)
        with bar:
            for _, which in todo:
                step, model = model_at(run_dir, which, plan.device)  # "last" may have moved on
                scores = {task: zero_shot_accuracy(model, tokenizer, spec, tested, progress)
                          for task, (spec, tested) in examples.items()}
                tqdm.write(f"step {step}: " + ", ".join(f"{t} {v:.3f}" for t, v in scores.items()))
                name = FRESH if which == FRESH else f"step-{step:07d}"
                write_json_atomic(scored(steps_dir, step), {"step": step, "checkpoint": name,
                                                            "scores": scores})
                bar.update(1)
        points = sorted((read_json(path, what="zero-shot scores")  # earlier ones included
                         for path in steps_dir.glob("*.json")),
                        key=lambda point: point["step"])
        write_results(out_dir, plan, points, {t: len(e) for t, (_, e) in examples.items()})
        return points


def scored(steps_dir, step):
    """Where the scores of the checkpoint at `step` are kept."""
    return steps_dir / f"step-{step:07d}.json"


def write_results(out_dir, plan, points, sizes):
    """zero_shot.json, zero_shot.md and zero_shot.png of the scored points."""
    table = zero_shot_table(points, plan.tasks, plan.split, sizes)
    write_text_atomic(out_dir / "zero_shot.md", table + "\n")
    write_json_atomic(out_dir / "zero_shot.json", {
        "checkpoint": str(plan.checkpoint), "split": plan.split, "examples": sizes,
        "chance": {t: CHANCE[t] for t in plan.tasks}, "steps": points,
    })  # fmt: skip
    steps = [point["step"] for point in points]
    lines = {t: (steps, [100 * point["scores"][t] for point in points]) for t in plan.tasks}
    plot_lines(lines, out_dir / "zero_shot.png", title=f"Zero-shot {plan.split} accuracy "
               "through pre-training", xlabel="pre-training updates", ylabel="accuracy (%)",
               references={t: 100 * CHANCE[t] for t in plan.tasks})
    print(table)
