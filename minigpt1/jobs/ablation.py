"""The paper's ablation (Table 5) at small scale, on the four Shakespeare tasks, over seeds.

Three ways to fine-tune the same pre-trained model, with the same data and budget:

    pre-training + L3     the full method: transferred weights, L2 + 0.5 L1
    pre-training + L2     no auxiliary LM objective (lambda = 0)
    no pre-training + L3  the same architecture from a random start (transfer nothing)

each run once per seed: the seed draws the task head's initial weights, the order of the
training examples, the dropout masks (and, without pre-training, the whole network). The
tables give every score as mean +- a 95% interval over the seeds, and say which differences
between variants the seeds resolve (finetuning/statistics.py). Before any fine-tuning the
pre-trained language model is scored zero-shot on each task (finetuning/zero_shot.py).

    OUT/
        settings.json                 what this ablation runs: a rerun must ask the same
        zero_shot.json                the pre-trained model's zero-shot test accuracy per task
        <variant>/<task>/seed-<s>/    one fine-tuning run folder per run
        ablation.json                 per-seed scores, test-set sizes, means, intervals
        ablation.md, ablation.png     the table with its differences; bars with error bars

An experiment folder continues where it stopped: a rerun with the same settings skips the
runs that hold their results.json, resumes one that was interrupted (from its last
checkpoint) and starts the others; more --seeds add runs. The grid of runs, the experiment
folder and the tables here serve transfer.py too (Figure 2 left: transfer is an ablation
whose variants are the number of blocks transferred).
"""

import json
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..fileio import read_json, write_json_atomic, write_text_atomic
from ..finetuning.statistics import binomial_se, compare, summarize, verdict
from ..finetuning.zero_shot import zero_shot_accuracy
from ..plots import plot_bars
from ..training.checkpoint import read_index
from ..training.loop import StoppedEarly
from ..training.task_objective import FinetuneConfig
from .finetune import FinetunePlan, run_finetuning, subsample_train
from .run_folder import OURS, hold_run_dir, load_model, load_task, source_text_dir, start_run_dir

TASKS = ("genre", "word-order", "same-work", "next-line")
VARIANTS = {  # name: (transfer_layers, lm_coef)
    "pre-training + L3": (None, 0.5),
    "pre-training + L2": (None, 0.0),
    "no pre-training + L3": (-1, 0.5),
}
# Table 5 of the paper: GLUE-average of 8 tasks, 12 x 768 model pre-trained on BooksCorpus
PAPER_AVERAGES = {"pre-training + L3": 74.7, "pre-training + L2": 75.0,
                  "no pre-training + L3": 59.9}
CHANCE = {"genre": 1 / 3, "word-order": 0.5, "same-work": 0.5, "next-line": 0.25}


def ablation_config(**overrides):
    """The fine-tuning settings of the ablation and the transfer sweep: GPT-1's recipe, with
    the learning rate a small model needs (1e-3, found by experiment) and a budget that fits a
    2-core CPU: 2 epochs of 640 training examples per run, 36 runs in about an hour from
    the shipped 6 x 256 model (README, Results)."""
    return replace(FinetuneConfig(lr=1e-3, epochs=2, max_train_examples=640), **overrides)


@dataclass
class ExperimentPlan:
    """What a seeded grid of fine-tuning runs needs (the ablation's and transfer's plans)."""

    checkpoint: str | Path  # a pre-trained run folder (e.g. the demo's)
    out_dir: str | Path = "runs/ablation"  # where the runs and the tables go
    text_dir: str | Path | None = None  # corpus for the tasks (default: the checkpoint's own)
    finetune: FinetuneConfig = field(default_factory=ablation_config)  # each run's base
    tasks: tuple[str, ...] = TASKS
    force: bool = False  # delete an earlier experiment in out_dir and start over
    seeds: int = 3  # runs per variant and task, with seeds finetune.seed, finetune.seed + 1, ...
    which: str = "last"  # which checkpoint of the pre-training run: last | best | step-NNNNNNN
    device: str = "cpu"  # cpu | cuda

    def __post_init__(self):
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        if not self.tasks:
            raise ValueError("an experiment needs at least one task")

    @property
    def seed_list(self):
        return [self.finetune.seed + k for k in range(self.seeds)]


@dataclass
class AblationPlan(ExperimentPlan):
    """What `python -m minigpt1 ablation` runs (cli.py builds it from the flags)."""


# ---- the experiment folder and its grid of runs ----------------------------------------------


def experiment_settings(plan, kind, variants):
    """What a rerun must share with the runs already in the folder, as JSON values. The seeds
    are not in it (more seeds add runs), nor is the device."""
    settings = {"kind": kind, "checkpoint": str(Path(plan.checkpoint).resolve()),
                "which": plan.which, "source": checkpoint_name(plan.checkpoint, plan.which),
                "text_dir": plan.text_dir and str(Path(plan.text_dir).resolve()),
                "finetune": asdict(plan.finetune), "tasks": plan.tasks, "variants": variants}
    return json.loads(json.dumps(settings))  # tuples become lists, as read back from the file


def checkpoint_name(checkpoint, which):
    """The checkpoint folder `which` names in a pre-training run (it moves on while the run
    trains), or None for a HuggingFace folder."""
    index = read_index(checkpoint) if (Path(checkpoint) / "checkpoints").is_dir() else None
    return index.get(which, which) if index else None


def open_experiment(out_dir, settings, force, prepare):
    """Start the experiment in out_dir (whose lock the caller holds), or continue the one
    there when its settings.json records the same settings; anything else is refused.
    `prepare()` reads what the experiment needs (tasks, model) before anything is written or
    deleted, so that bad input leaves out_dir as it was; its result is returned."""
    out_dir, kind = Path(out_dir), settings["kind"]
    an = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"  # "an ablation", "a transfer"
    path = out_dir / "settings.json"
    continuing = not force and path.exists()
    if continuing:
        recorded = read_json(path, what=f"{kind} settings")
        differ = sorted(k for k in {*settings, *recorded} if settings.get(k) != recorded.get(k))
        if differ:
            raise FileExistsError(
                f"{out_dir} already holds {an} experiment with other settings: they differ "
                f"in {', '.join(differ)} (see {path}); give the same settings to continue it, "
                "--force to delete it and start over, or another --out")
    elif not force and any(p.name not in OURS for p in out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} already holds {an} or other files, but no "
                              "settings.json to continue from (an earlier version's?): choose "
                              "another --out, or --force to delete what is there")
    prepared = prepare()
    if force:
        start_run_dir(out_dir)
    if not continuing:
        write_json_atomic(path, settings)
    return prepared


def load_tasks(plan):
    """{task: TaskData} of the plan, built once with the base seed: every run of every seed
    trains on the same examples (a --max-train-examples subset included) and is tested on the
    same test set."""
    fcfg = plan.finetune
    text_dir = plan.text_dir or source_text_dir(plan.checkpoint)
    data = {name: load_task(name, text_dir=text_dir, seed=fcfg.seed) for name in plan.tasks}
    if fcfg.max_train_examples is not None:  # each run's own subsample then keeps them all
        data = {name: subsample_train(task, fcfg.max_train_examples, fcfg.seed)
                for name, task in data.items()}
    return data


def run_grid(plan, variants, data, progress=True):
    """Fine-tune every variant on every task with every seed: {variant: {task: {seed: test
    score}}}. Seed by seed, so that an interrupted grid has whole seeds to show."""
    runs = [(v, t, s) for s in plan.seed_list for v in variants for t in data]
    scores = {v: {t: {} for t in data} for v in variants}
    folders = {run: run_folder(plan.out_dir, *run) for run in runs}
    todo = {run for run in runs if not (folders[run] / "results.json").exists()}
    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc="fine-tuning runs",
               unit="run", disable=not progress, dynamic_ncols=True)
    with bar:
        for variant, task, seed in runs:
            folder = folders[variant, task, seed]
            if (variant, task, seed) in todo:
                tqdm.write(f"--- {variant}: {task}, seed {seed} ---")
                config = replace(plan.finetune, **variants[variant], seed=seed)
                resume = (folder / "run.json").exists()  # interrupted: continue it
                run_plan = FinetunePlan(plan.checkpoint, task, folder, finetune=config,
                                        which=plan.which, device=plan.device, resume=resume,
                                        force=not resume)
                try:
                    run_finetuning(run_plan, data[task], progress=progress)
                except StoppedEarly:  # Ctrl-C: the run saved where it stopped
                    raise StoppedEarly(
                        f"stopped {variant} on {task}, seed {seed}, after saving it in "
                        f"{folder}; give the same command again to continue the experiment"
                    ) from None
                bar.update(1)
            scores[variant][task][seed] = read_json(folder / "results.json", "results")["test"]
    return scores


def run_folder(out_dir, variant, task, seed):
    slug = variant.replace(" + ", "-").replace(" ", "-")
    return Path(out_dir) / slug / task / f"seed-{seed}"


def summaries(scores):
    """{variant: {task: Summary, ..., "average": Summary}} of run_grid's scores; the average
    is summarized over the seeds' own averages across the tasks."""
    found = {}
    for variant, by_task in scores.items():
        found[variant] = {task: summarize(list(by_seed.values()))
                          for task, by_seed in by_task.items()}
        per_seed = np.mean([list(by_seed.values()) for by_seed in by_task.values()], axis=0)
        found[variant]["average"] = summarize(per_seed)
    return found


# ---- tables ----------------------------------------------------------------------------------


def cell(summary):
    """A score in percent: "66.5 +- 1.2" (the 95% interval's half width), "66.5" for one seed."""
    if summary.n < 2:
        return f"{100 * summary.mean:.1f}"
    return f"{100 * summary.mean:.1f} ± {100 * summary.half_width:.1f}"


def differences_table(found, pairs, columns):
    """Markdown: for each pair of rows (a, b), a - b in every column and whether it is resolved."""
    lines = ["| difference | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for a, b in pairs:
        cells = [verdict(compare(found[a][c], found[b][c])) for c in columns]
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def about_the_numbers(n_seeds, sizes=None):
    """What the intervals mean and what they leave out, in words under a table."""
    freedom = f"{n_seeds - 1} degree{'s' * (n_seeds > 2)} of freedom"
    seeds = (f"mean ± the 95% interval's half width over {n_seeds} seeds (Student's t, "
             f"{freedom})" if n_seeds > 1 else "one seed: no interval")
    text = (f"Test accuracy (%), {seeds}. A difference is resolved when it exceeds two "
            "standard errors of the difference, sqrt(sd_a²/n_a + sd_b²/n_b).")
    if sizes:
        smallest = min(sizes.values())
        text += (" Test examples: " + ", ".join(f"{task} {n}" for task, n in sizes.items())
                 + ". The seeds vary the fine-tuning, not the test set: its own sampling "
                 f"error, {100 * binomial_se(0.5, smallest):.1f} points (one standard error) "
                 f"for an accuracy near 50% on {smallest} examples, is not in these intervals.")
    return text


def markdown_table(results, zero_shot=None, tasks=TASKS, sizes=None):
    """The ablation's table (test scores per task and on average, beside the paper's
    averages, chance and zero-shot), its differences and a note on the numbers.

    results: {variant: {column: Summary}} (summaries()), or {variant: {task: score}} of one
    run each. sizes: {task: test examples}, for the note.
    """
    found = {name: row if "average" in row else one_seed(row) for name, row in results.items()}
    columns = [*tasks, "average"]
    lines = ["| variant | " + " | ".join(columns) + " | paper (GLUE avg) |",
             "|" + "---|" * (len(columns) + 2)]
    for name, row in found.items():
        lines.append(f"| {name} | " + " | ".join(cell(row[c]) for c in columns)
                     + f" | {PAPER_AVERAGES.get(name, '')} |")
    lines.append(reference_row("chance", CHANCE, tasks) + " |")
    if zero_shot:
        lines.append(reference_row("zero-shot (the pre-trained LM alone)", zero_shot, tasks)
                     + " |")
    n_seeds = next(iter(found.values()))["average"].n
    return "\n".join([*lines, "", about_the_numbers(n_seeds, sizes), "",
                      differences_table(found, list(combinations(found, 2)), columns)])


def one_seed(scores):
    """{column: Summary} of one run's {task: score}, its average included."""
    return summaries({"run": {task: {0: value} for task, value in scores.items()}})["run"]


def reference_row(name, scores, tasks):
    """A table row of fixed scores (chance, zero-shot) and their average, in percent."""
    row = [100 * scores[t] for t in tasks]
    return f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + f" | {np.mean(row):.1f} |"


def summaries_json(found):
    return {row: {c: s.to_json() for c, s in by_column.items()} for row, by_column in found.items()}


# ---- the job ---------------------------------------------------------------------------------


def run_ablation(plan, progress=True):
    """Fine-tune every variant on every task with every seed (continuing an interrupted
    ablation); write and return the tables' numbers: ({variant: {column: Summary}}, zero-shot
    accuracy per task)."""
    with hold_run_dir(plan.out_dir):  # one ablation per folder (each run in it locks its own)
        out_dir = Path(plan.out_dir)
        variants = {name: {"transfer_layers": transfer, "lm_coef": lm_coef}
                    for name, (transfer, lm_coef) in VARIANTS.items()}
        settings = experiment_settings(plan, "ablation", variants)
        data, pretrained = open_experiment(out_dir, settings, plan.force, lambda: (
            load_tasks(plan), load_model(plan.checkpoint, plan.which, plan.device)))
        zero_shot = zero_shot_scores(*pretrained, data, out_dir / "zero_shot.json", progress)
        scores = run_grid(plan, variants, data, progress)
        found = summaries(scores)
        sizes = {name: len(task.splits["test"]) for name, task in data.items()}
        table = markdown_table(found, zero_shot, plan.tasks, sizes)
        write_text_atomic(out_dir / "ablation.md", table + "\n")
        write_json_atomic(out_dir / "ablation.json", {
            "checkpoint": str(plan.checkpoint), "settings": asdict(plan.finetune),
            "seeds": plan.seed_list, "test_examples": sizes, "per_seed": scores,
            "summary": summaries_json(found), "zero_shot": zero_shot, "chance": CHANCE,
        })  # fmt: skip
        columns = [*plan.tasks, "average"]
        plot_bars({c: {v: 100 * found[v][c].mean for v in found} for c in columns},
                  out_dir / "ablation.png", title="Ablation on the Shakespeare tasks (test)",
                  ylabel="accuracy (%)",
                  errors={c: {v: 100 * found[v][c].half_width for v in found} for c in columns})
        print(table)
        return found, zero_shot


def zero_shot_scores(model, tokenizer, data, path, progress=True):
    """{task: accuracy} of the pre-trained model's zero-shot heuristic on each test split,
    computed once and kept in `path`."""
    if path.exists():
        return read_json(path, what="zero-shot scores")
    scores = {name: zero_shot_accuracy(model, tokenizer, task.spec, task.splits["test"],
                                       progress) for name, task in data.items()}
    print("zero-shot test accuracy of the pre-trained model: "
          + ", ".join(f"{name} {value:.3f}" for name, value in scores.items()))
    write_json_atomic(path, scores)
    return scores
