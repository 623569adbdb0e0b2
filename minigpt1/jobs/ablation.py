"""The paper's ablation (Table 5) at small scale, on the four Shakespeare tasks.

Three ways to fine-tune the same pre-trained model, with the same data, budget and seeds:

    pre-training + L3     the full method: transferred weights, L2 + 0.5 L1
    pre-training + L2     no auxiliary LM objective (lambda = 0)
    no pre-training + L3  the same architecture from a random start (transfer nothing)

and, before any fine-tuning, the zero-shot score of the pre-trained language model on the
multiple-choice task (Figure 2 right): pick the answer whose tokens the model finds most
probable on average, given the context. The paper's own rows are printed beside ours.
"""

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..fileio import write_json_atomic, write_text_atomic
from ..plots import plot_bars
from ..training.task_objective import FinetuneConfig
from .finetune import FinetunePlan, run_finetuning
from .run_folder import hold_run_dir, load_model, load_task, plan_json, source_text_dir

TASKS = ("genre", "continuation", "same-work", "next-line")
VARIANTS = {  # name: (transfer_layers, lm_coef)
    "pre-training + L3": (None, 0.5),
    "pre-training + L2": (None, 0.0),
    "no pre-training + L3": (-1, 0.5),
}
# Table 5 of the paper: GLUE-average of 8 tasks, 12 x 768 model pre-trained on BooksCorpus
PAPER_AVERAGES = {"pre-training + L3": 74.7, "pre-training + L2": 75.0,
                  "no pre-training + L3": 59.9}
CHANCE = {"genre": 1 / 3, "continuation": 0.5, "same-work": 0.5, "next-line": 0.25}


def ablation_config(**overrides):
    """The fine-tuning settings of the ablation: GPT-1's recipe, with the learning rate and
    epochs a 4 x 128 model needs (found by experiment; see README, Results)."""
    return replace(FinetuneConfig(lr=1e-3, epochs=3), **overrides)


@dataclass
class AblationPlan:
    """What `python -m minigpt1 ablation` runs (cli.py builds it from the flags)."""

    checkpoint: str | Path  # a pre-trained run folder (e.g. the demo's)
    out_dir: str | Path = "runs/ablation"  # where the runs and the tables go
    text_dir: str | Path | None = None  # corpus for the tasks (default: the checkpoint's own)
    finetune: FinetuneConfig = field(default_factory=ablation_config)  # each variant's base
    tasks: tuple[str, ...] = TASKS
    force: bool = False  # replace an earlier ablation in out_dir


def zero_shot_multiple_choice(model, tokenizer, examples, progress=True):
    """Accuracy of picking, for each example, the answer with the highest average token
    log-probability after its context (no fine-tuning, no special tokens)."""
    n_ctx, right = model.cfg.n_ctx, 0
    for example in tqdm(examples, desc="zero-shot", disable=not progress, leave=False):
        context = tokenizer.encode(example.segments[0] + "\n")
        scores = []
        for answer in example.segments[1:]:
            answer_ids = tokenizer.encode(answer)[:n_ctx]
            ids = (context + answer_ids)[-(n_ctx + 1) :]  # keep the answer and what precedes it
            mask = np.zeros((1, len(ids)))
            mask[0, -len(answer_ids) :] = 1  # score the answer's tokens only
            scores.append(-model.lm_loss(np.array([ids]), mask))
        right += int(np.argmax(scores)) == example.label
    return right / len(examples)


def markdown_table(results, zero_shot, tasks=TASKS):
    """Our test scores (%) per task and their average, beside the paper's averages."""
    header = "| variant | " + " | ".join(tasks) + " | average | paper (GLUE avg) |"
    lines = [header, "|" + "---|" * (len(tasks) + 3)]
    chance = [100 * CHANCE[t] for t in tasks]
    for name, scores in results.items():
        row = [100 * scores[t] for t in tasks]
        cells = " | ".join(f"{v:.1f}" for v in row)
        lines.append(f"| {name} | {cells} | {np.mean(row):.1f} | {PAPER_AVERAGES[name]} |")
    lines.append("| chance | " + " | ".join(f"{v:.1f}" for v in chance)
                 + f" | {np.mean(chance):.1f} | |")
    if zero_shot is not None:
        lines.append(f"\nZero-shot (the pre-trained LM, before fine-tuning) on next-line: "
                     f"{100 * zero_shot:.1f}% (chance 25.0%).")
    return "\n".join(lines)


def run_ablation(plan, progress=True):
    """Fine-tune every variant on every task; write and return the table (test scores)."""
    with hold_run_dir(plan.out_dir):  # one ablation per folder (each run in it locks its own)
        out_dir = Path(plan.out_dir)
        if (out_dir / "ablation.md").exists() and not plan.force:
            raise FileExistsError(f"{out_dir} already holds an ablation; use --force or "
                                  "another --out")
        fcfg, tasks = plan.finetune, plan.tasks
        text_dir = plan.text_dir or source_text_dir(plan.checkpoint)
        data = {name: load_task(name, text_dir=text_dir, seed=fcfg.seed) for name in tasks}
        model, tokenizer = load_model(plan.checkpoint)
        zero_shot = None
        if "next-line" in data:
            test = data["next-line"].splits["test"]
            zero_shot = zero_shot_multiple_choice(model, tokenizer, test, progress)
            print(f"zero-shot next-line accuracy of the pre-trained model: {zero_shot:.3f}")
        results = {}
        for variant, (transfer, lm_coef) in VARIANTS.items():
            config = replace(fcfg, transfer_layers=transfer, lm_coef=lm_coef)
            results[variant] = {}
            for name, task in data.items():
                print(f"--- {variant}: {name} ---")
                folder = out_dir / variant.replace(" + ", "-").replace(" ", "-") / name
                run = run_finetuning(FinetunePlan(plan.checkpoint, name, folder, finetune=config,
                                                  force=True), task, progress=progress)
                results[variant][name] = run["scores"]["test"]
        table = markdown_table(results, zero_shot, tasks)
        write_text_atomic(out_dir / "ablation.md", table + "\n")
        write_json_atomic(out_dir / "ablation.json", {"checkpoint": str(plan.checkpoint),
                                                      "settings": asdict(fcfg), "test": results,
                                                      "zero_shot_next_line": zero_shot,
                                                      "plan": plan_json(plan)})
        bars = {task: {v: 100 * results[v][task] for v in results} for task in tasks}
        plot_bars(bars, out_dir / "ablation.png", title="Ablation on the Shakespeare tasks (test)",
                  ylabel="accuracy (%)")
        print(table)
        return results, zero_shot
