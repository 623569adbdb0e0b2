"""The fine-tuning job: a pre-trained model + a task -> a fine-tuned run folder.

    RUN/
        run.json          the task, the source checkpoint, the model and fine-tuning configs
        tokenizer/        the pre-training tokenizer plus _start_, _delimiter_, _classify_
        metrics.jsonl     one line per logged update (loss, l2, l1, lr, val_<metric>, ...)
        checkpoints/      last and best (lowest validation L2), weights include clf.*
        loss.png          training and validation loss
        results.json      the task's metric on validation and test after the last epoch, and
                          under "metrics" what GLUE reports beside it (accuracy beside F1,
                          Spearman beside Pearson)

On several ranks (`world`, see distributed.py) rank 0 alone prepares the run; the others
receive the plan, the model config, the task and the encoded examples from it, then the
weights and the optimizer state.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import GPTConfig
from ..errors import FormatError
from ..fileio import read_json, section, write_json_atomic
from ..finetuning.file_tasks import FILE_TASKS, load_task_files
from ..finetuning.multiple_choice import ROC_VALIDATION
from ..finetuning.task_model import HEAD, TaskModel, transfer_layers, with_special_tokens
from ..finetuning.transformations import (
    EncodedExample,
    TaskData,
    TaskSpec,
    encode_examples,
    show_layout,
)
from ..model.gpt import GPT
from ..plots import plot_losses
from ..tokenizer.bpe import BPETokenizer
from ..training.checkpoint import load_checkpoint, read_index
from ..training.distributed import SINGLE
from ..training.optim import AdamW
from ..training.task_objective import FinetuneConfig, evaluate_task, finetune
from ..training.update import check_rank_fits
from .run_folder import (
    FORMAT_VERSION,
    check_run_dir,
    fingerprint,
    held_by_writer,
    load_model,
    load_task,
    plan_json,
    record_config,
    run_tokenizer_fingerprint,
    source_text_dir,
    start_run_dir,
)


@dataclass
class FinetunePlan:
    """What to fine-tune, on which task, and where: `python -m minigpt1 finetune`'s flags
    (cli.py builds it), recorded in run.json as "plan"."""

    checkpoint: str | Path  # a pre-training run folder, or a HuggingFace openai-gpt folder
    task: str  # a task name (run_folder.task_names())
    run_dir: str | Path  # the run folder (--out)
    data: str | Path | None = None  # the task's folder; texts for the Shakespeare tasks
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    which: str = "last"  # which checkpoint of a pre-training run: last | best
    resume: bool = False  # continue the run in run_dir (its own task and settings)
    extend: bool = False  # with resume: a larger finetune.epochs extends the run
    force: bool = False  # delete a run already in run_dir and start over
    device: str = "cpu"  # cpu | cuda
    allow_truncation: bool = True  # False: an example longer than the context is an error
    n_validation: int = ROC_VALIDATION  # rocstories: stories of the val file held out (GPT-1: 374)

    @classmethod
    def from_json(cls, values):
        return cls(**{**values, "finetune": FinetuneConfig(**values["finetune"])})


@dataclass
class PreparedFinetuning:
    """What rank 0 prepares before the first update, and every rank trains from."""

    plan: FinetunePlan  # a resumed run's carries its own task, data, source and settings
    cfg: GPTConfig  # the pre-trained model's, with the task's special tokens
    spec: TaskSpec
    encoded: dict  # {split: [EncodedExample]}; the other ranks get train and validation
    start_step: int = 0
    model: TaskModel | None = None  # rank 0 only: the weights to start from
    optimizer: dict | None = None  # rank 0 only: the AdamW state to resume


def subsample_train(task, n, seed):
    """The task with a seeded random subset of n training examples (order kept)."""
    train = task.splits["train"]
    if n < 1:
        raise ValueError(f"max_train_examples must be at least 1, got {n}")
    keep = np.sort(np.random.default_rng(seed).permutation(len(train))[:n])
    return TaskData(task.spec, {**task.splits, "train": [train[i] for i in keep]})


def encode_splits(task, tokenizer, n_ctx, allow_truncation=True):
    """{split: [EncodedExample]}, telling how many examples had to be cut to fit n_ctx."""
    encoded = {}
    for split, examples in task.splits.items():
        if not examples:
            raise ValueError(f"task {task.spec.name}: the {split} split has no examples")
        encoded[split] = encode_examples(examples, task.spec, tokenizer, n_ctx, allow_truncation)
        cut = sum(e.truncated for e in encoded[split])
        if cut:
            print(f"{split}: {cut} of {len(examples)} examples were cut to fit n_ctx={n_ctx} "
                  "(text nearest the delimiter kept; the extract token always is)")
    return encoded


def new_task_model(gpt, tokenizer, spec, fcfg):
    """A TaskModel from a pre-trained GPT; the special tokens join the tokenizer (in place)."""
    gpt = with_special_tokens(gpt, tokenizer, seed=fcfg.seed)
    if fcfg.transfer_layers is not None:
        gpt = transfer_layers(gpt, fcfg.transfer_layers, seed=fcfg.seed)
    return TaskModel(gpt, spec, seed=fcfg.seed, clf_pdrop=fcfg.clf_pdrop)


def read_finetune_run(run_dir):
    """(run.json as a dict, GPTConfig, FinetuneConfig, TaskSpec) of a fine-tuning run."""
    path = Path(run_dir) / "run.json"
    run = read_json(path, what="run description")
    cfg = section(run, "config", GPTConfig.from_dict, path)
    fcfg = section(run, "finetune", lambda values: FinetuneConfig(**values), path)
    spec = section(run, "task", lambda values: TaskSpec(**values), path)
    if not isinstance(run.get("checkpoint"), str):
        raise FormatError(f"{path}: 'checkpoint' must be a path, found {run.get('checkpoint')!r}")
    if not isinstance(run.get("data"), str | None):
        raise FormatError(f"{path}: 'data' must be a path or null, found {run['data']!r}")
    return run, cfg, fcfg, spec


def recorded_finetune_plan(run_dir):
    """The FinetunePlan a run folder's run.json records, as a resume continues it: its "plan",
    or for a run.json older than plans the same rebuilt from its other sections."""
    run, _, fcfg, spec = read_finetune_run(run_dir)
    plan = FinetunePlan(run["checkpoint"], spec.name, run_dir, run.get("data"), fcfg,
                        run.get("which", "last"))
    if "plan" in run:
        plan = section(run, "plan", FinetunePlan.from_json, Path(run_dir) / "run.json")
    return replace(plan, finetune=fcfg, run_dir=run_dir, resume=True, force=False)


def resumed_plan(plan):
    """The run's own plan (task, data, source, FinetuneConfig) and run.json, with one change a
    resume accepts: more epochs (the learning rate's decay stretches to the new end)."""
    run, _, fcfg, spec = read_finetune_run(plan.run_dir)
    if plan.extend and plan.finetune.epochs > fcfg.epochs:
        fcfg = replace(fcfg, epochs=plan.finetune.epochs)
    return run, replace(plan, task=spec.name, data=run.get("data"),
                        checkpoint=run["checkpoint"], finetune=fcfg)


def check_run_files(run, run_dir, task):
    """Refuse a tokenizer or task examples other than those the run started with (run.json
    written before they were recorded says nothing, and nothing is compared)."""
    run_tokenizer_fingerprint(run, run_dir)
    if run.get("examples") not in (None, examples_digest(task)):
        raise ValueError(
            f"the task's examples (read from {run.get('data') or 'the pre-training corpus'}) "
            "are not those the run started with: restore them to continue this run, or start "
            "a new run")


def examples_digest(task):
    """sha256 of a task's examples, every split: run.json's record of what the run reads."""
    rows = {split: [[list(e.segments), e.label] for e in examples]
            for split, examples in task.splits.items()}
    text = json.dumps(rows, sort_keys=True, default=str)  # default: a label read as numpy's
    return hashlib.sha256(text.encode()).hexdigest()


def resumed_task_model(plan):
    """(TaskModel, tokenizer, checkpoint) of the fine-tuning run in plan.run_dir, at its last
    checkpoint; (None, None, None) when it failed before its first (it restarts from step 0)."""
    run_dir = Path(plan.run_dir)
    if read_index(run_dir) is None:
        return None, None, None
    _, cfg, _, spec = read_finetune_run(run_dir)
    fcfg = plan.finetune  # the run's own, its epochs perhaps extended (resumed_plan)
    checkpoint = load_checkpoint(run_dir)
    missing = [k for k in HEAD if k not in checkpoint.params]
    if missing:
        raise FormatError(f"{checkpoint.folder / 'params.npz'}: no task head {missing}")
    body = {k: v for k, v in checkpoint.params.items() if k not in HEAD}
    gpt = GPT(cfg, seed=fcfg.seed, device=plan.device, params=body)
    head = {k: checkpoint.params[k] for k in HEAD}
    model = TaskModel(gpt, spec, fcfg.seed, fcfg.clf_pdrop, head)
    return model, BPETokenizer.load(run_dir / "tokenizer"), checkpoint


def run_finetuning(plan, task=None, world=SINGLE, progress=True):
    """Fine-tune (or resume) as planned; returns a summary with validation and test metrics.

    `task` (TaskData) skips loading plan.task by name, for callers that built the examples
    already. On several ranks, rank 0 prepares the run and every rank trains; only rank 0
    evaluates the test split and returns the summary (the others None).
    """
    with held_by_writer(plan.run_dir, world):  # one writer per run folder, for the whole job
        run = share(prepare_finetuning(plan, task, world) if world.is_writer else None, world)
        fcfg = run.plan.finetune
        model = run.model or TaskModel(GPT(run.cfg, seed=fcfg.seed, device=run.plan.device),
                                       run.spec, fcfg.seed, fcfg.clf_pdrop)
        optimizer = AdamW(model.params, lr=fcfg.lr, weight_decay=fcfg.weight_decay)
        if run.optimizer:
            optimizer.load_state_dict(run.optimizer)
        world.share_weights(model, optimizer)  # all ranks start from rank 0's weights
        run_dir = Path(run.plan.run_dir)
        result = finetune(model, optimizer, run.encoded["train"], run.encoded["validation"], fcfg,
                          run_dir, run.start_step, progress, world)
        if not world.is_writer:
            return None
        spec = model.spec
        metrics = {split: evaluate_task(model, examples, fcfg.batch_size)["metrics"]
                   for split, examples in run.encoded.items() if split != "train"}
        scores = {split: values[spec.metric] for split, values in metrics.items()}
        write_json_atomic(run_dir / "results.json", {"task": spec.name, "metric": spec.metric,
                                                     **scores, "metrics": metrics})
        plot_losses(run_dir / "metrics.jsonl", run_dir / "loss.png",
                    title=f"fine-tuning on {spec.name} (lambda = {fcfg.lm_coef})")
        return {"run_dir": run_dir, "model": model, "spec": spec, "scores": scores,
                "metrics": metrics, **result}


def share(run, world):
    """Rank 0's PreparedFinetuning on every rank: the plan, the model config, the task and the
    training and validation examples travel (as JSON, no pickle); the weights follow by
    share_weights."""
    if world.size == 1:
        return run
    if world.is_writer:
        world.broadcast({
            "plan": plan_json(run.plan), "config": run.cfg.to_dict(), "task": asdict(run.spec),
            "start_step": run.start_step,
            "examples": [examples_to_json(run.encoded[split]) for split in ("train", "validation")],
        })  # fmt: skip
        return run
    sent = world.broadcast()
    train, validation = (examples_from_json(rows) for rows in sent["examples"])
    return PreparedFinetuning(FinetunePlan.from_json(sent["plan"]),
                              GPTConfig.from_dict(sent["config"]), TaskSpec(**sent["task"]),
                              {"train": train, "validation": validation}, sent["start_step"])


def examples_to_json(examples):
    return [[e.sequences, e.label, e.truncated, e.source] for e in examples]


def examples_from_json(rows):
    """EncodedExamples from examples_to_json's lists (what a broadcast carries)."""
    return [EncodedExample(tuple(map(tuple, seqs)), label, truncated, source)
            for seqs, label, truncated, source in rows]


def prepare_finetuning(plan, task=None, world=SINGLE):
    """Check, read and write what a fine-tuning run needs before its first update: the
    model with its task head, the encoded examples, run.json or the checkpoint to resume."""
    run_dir = check_run_dir(plan.run_dir, plan.resume, plan.force)
    model = saved = None
    if plan.resume:
        run, plan = resumed_plan(plan)
        model, tokenizer, saved = resumed_task_model(plan)
    if model is None:  # a new run, or one that failed before its first checkpoint
        gpt, tokenizer = load_model(plan.checkpoint, plan.which, plan.device)  # fails early
    fcfg = plan.finetune
    task = task or plan_task(plan)
    if fcfg.max_train_examples is not None:
        task = subsample_train(task, fcfg.max_train_examples, fcfg.seed)
    if plan.resume:
        check_run_files(run, run_dir, task)
    if model is None:
        model = new_task_model(gpt, tokenizer, task.spec, fcfg)
    encoded = encode_splits(task, tokenizer, model.gpt.cfg.n_ctx, plan.allow_truncation)
    longest = max(len(seq) for example in encoded["train"] for seq in example.sequences)
    batch = min(fcfg.batch_size, len(encoded["train"]))
    check_rank_fits(model.gpt.cfg, world, batch, fcfg.micro_batch_size, longest,
                    sequences_per_item=len(encoded["train"][0].sequences))
    if not plan.resume:  # only now: bad data must not cost an earlier run its folder
        start_finetune_folder(plan, task, model.gpt.cfg, tokenizer)
    elif fcfg.epochs != run["finetune"]["epochs"]:  # the next bare --resume continues it
        record_config(run_dir, run, "finetune", fcfg)
    print(show_layout(encoded["train"][0], tokenizer))
    if saved:
        print(f"resuming {run_dir} at step {saved.step}")
    if world.size > 1:
        print("\n".join(world.describe(batch, fcfg.micro_batch_size, fcfg.lr)))
    counts = ", ".join(f"{len(v):,} {k}" for k, v in encoded.items())
    print(f"task {task.spec.name} ({task.spec.kind}, metric {task.spec.metric}): {counts}; "
          f"lambda = {fcfg.lm_coef}")
    return PreparedFinetuning(plan, model.gpt.cfg, task.spec, encoded, saved.step if saved else 0,
                              model, saved and saved.optimizer)


def plan_task(plan):
    """The plan's task, read as load_task reads it; the Story Cloze Test holds out
    plan.n_validation stories of its val file for validation."""
    if plan.task in FILE_TASKS and plan.data is not None:
        return load_task_files(plan.task, plan.data, n_validation=plan.n_validation)
    return load_task(plan.task, plan.data, plan.finetune.seed, source_text_dir(plan.checkpoint))


def start_finetune_folder(plan, task, cfg, tokenizer):
    """A new run folder: the tokenizer with the task's special tokens, and run.json (last: a
    folder that holds it holds everything a --resume needs)."""
    run_dir = Path(plan.run_dir)
    start_run_dir(run_dir)
    tokenizer.save(run_dir / "tokenizer")
    write_json_atomic(run_dir / "run.json", {
        "format_version": FORMAT_VERSION, "kind": "finetune", "task": asdict(task.spec),
        "tokenizer_fingerprint": fingerprint(run_dir / "tokenizer"),
        "examples": examples_digest(task),
        "checkpoint": str(plan.checkpoint), "which": plan.which,
        "data": plan.data and str(plan.data), "config": cfg.to_dict(),
        "finetune": asdict(plan.finetune), "plan": plan_json(plan),
    })  # fmt: skip
