"""Figure 2 (left) of the paper at small scale: what each pre-trained block is worth.

Fine-tune on each task with the embeddings and the first N pre-trained blocks transferred and
the other blocks started afresh (N(0, 0.02), as a new model), for N = 0 (the embeddings alone,
the original code's n_transfer = 0) up to n_layer (the whole pre-trained body), each N with
several seeds. The paper saw accuracy climb with every block it transferred, up to 9% on
MultiNLI with all 12: each layer of the pre-trained model holds something the task uses.

    OUT/
        settings.json               what this experiment runs: a rerun must ask the same
        <N>-blocks/<task>/seed-<s>/ one fine-tuning run folder per run
        transfer.json               per-seed scores, test-set sizes, means and intervals
        transfer.md                 the table (mean +- 95% interval), and its differences
        transfer.png                accuracy against blocks transferred, one line per task

It is the ablation's grid of runs (ablation.py) with other variants, and continues where it
stopped in the same way.
"""

from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

from ..fileio import write_json_atomic, write_text_atomic
from ..plots import plot_lines
from .ablation import (
    CHANCE,
    ExperimentPlan,
    about_the_numbers,
    cell,
    differences_table,
    experiment_settings,
    load_tasks,
    open_experiment,
    reference_row,
    run_grid,
    summaries,
    summaries_json,
)
from .run_folder import hold_run_dir, load_model


@dataclass
class TransferPlan(ExperimentPlan):
    """What `python -m minigpt1 transfer` runs (cli.py builds it from the flags)."""

    out_dir: str | Path = "runs/transfer"
    layers: tuple[int, ...] | None = None  # blocks to transfer (default 0..n_layer; -1: none)


def variant_name(n_blocks):
    return f"{n_blocks} blocks"


def transfer_variants(layers, n_layer):
    """{name: the FinetuneConfig fields it sets} for each number of blocks to transfer."""
    bad = [n for n in layers if not -1 <= n <= n_layer]
    if bad or not layers:
        raise ValueError(f"layers to transfer must lie in -1..{n_layer} (-1: nothing, 0: the "
                         f"embeddings alone, {n_layer}: the whole pre-trained body), got "
                         f"{list(layers)}")
    return {variant_name(n): {"transfer_layers": n} for n in sorted(set(layers))}


def transfer_table(found, layers, n_layer, sizes, tasks):
    """Markdown: the scores per number of blocks transferred, and the differences between
    neighbours and between the most and the fewest."""
    columns = [*tasks, "average"]
    lines = ["| blocks transferred | " + " | ".join(columns) + " |",
             "|" + "---|" * (len(columns) + 1)]
    notes = {-1: " (nothing)", 0: " (embeddings only)", n_layer: " (all)"}
    for n in layers:
        row = found[variant_name(n)]
        lines.append(f"| {n}{notes.get(n, '')} | " + " | ".join(cell(row[c]) for c in columns)
                     + " |")
    lines.append(reference_row("chance", CHANCE, tasks))
    names = [variant_name(n) for n in layers]
    pairs = [(b, a) for a, b in pairwise(names)]
    if len(names) > 2:
        pairs.append((names[-1], names[0]))
    n_seeds = found[names[0]]["average"].n
    return "\n".join([*lines, "", about_the_numbers(n_seeds, sizes), "",
                      differences_table(found, pairs, columns)])


def run_transfer(plan, progress=True):
    """Fine-tune with 0..n_layer pre-trained blocks on every task with every seed (continuing
    an interrupted experiment); write and return the table's numbers {variant: {column:
    Summary}}."""
    with hold_run_dir(plan.out_dir):  # one experiment per folder (each run locks its own)
        out_dir = Path(plan.out_dir)
        n_layer = load_model(plan.checkpoint, plan.which)[0].cfg.n_layer
        layers = sorted(set(range(n_layer + 1) if plan.layers is None else plan.layers))
        variants = transfer_variants(layers, n_layer)
        data = open_experiment(out_dir, experiment_settings(plan, "transfer", variants),
                               plan.force, lambda: load_tasks(plan))
        scores = run_grid(plan, variants, data, progress)
        found = summaries(scores)
        sizes = {name: len(task.splits["test"]) for name, task in data.items()}
        table = transfer_table(found, layers, n_layer, sizes, plan.tasks)
        write_text_atomic(out_dir / "transfer.md", table + "\n")
        write_json_atomic(out_dir / "transfer.json", {
            "checkpoint": str(plan.checkpoint), "settings": asdict(plan.finetune),
            "n_layer": n_layer, "layers": layers, "seeds": plan.seed_list,
            "test_examples": sizes, "per_seed": scores, "summary": summaries_json(found),
            "chance": CHANCE,
        })  # fmt: skip
        lines = {task: (layers, [100 * found[variant_name(n)][task].mean for n in layers],
                        [100 * found[variant_name(n)][task].half_width for n in layers])
                 for task in plan.tasks}
        plot_lines(lines, out_dir / "transfer.png",
                   title="Fine-tuning with the first N pre-trained blocks (test)",
                   xlabel="pre-trained blocks transferred (0: the embeddings alone)",
                   ylabel="accuracy (%)",
                   references={task: 100 * CHANCE[task] for task in plan.tasks})
        print(table)
        return found
