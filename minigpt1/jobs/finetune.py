"""The fine-tuning job: a pre-trained model + a task -> a fine-tuned run folder.

    RUN/
        run.json          the task, the source checkpoint, the model and fine-tuning configs
        tokenizer/        the pre-training tokenizer plus _start_, _delimiter_, _classify_
        metrics.jsonl     one line per logged update (loss, l2, l1, lr, val_<metric>, ...)
        checkpoints/      last and best (lowest validation L2), weights include clf.*
        loss.png          training and validation loss
        results.json      the task's metric on validation and test after the last epoch

On several ranks (`world`, see distributed.py) rank 0 alone prepares the run; the others
receive the configs, the encoded examples, the weights and the optimizer state from it.
"""

from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import GPTConfig
from ..corpus.texts import load_text_dir
from ..errors import FormatError
from ..fileio import read_json, section, write_json_atomic
from ..finetuning.shakespeare_tasks import SHAKESPEARE_TASKS, make_shakespeare_task
from ..finetuning.task_files import FILE_TASKS, load_task_files
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
from ..training.checkpoint import load_checkpoint
from ..training.distributed import SINGLE
from ..training.lm_objective import check_rank_fits
from ..training.optim import AdamW
from ..training.task_objective import FinetuneConfig, evaluate_task, finetune
from .pretrain import FORMAT_VERSION, check_run_dir, load_model, start_run_dir


def task_names():
    return [*SHAKESPEARE_TASKS, *FILE_TASKS]


def load_task(name, data=None, seed=0, text_dir=None):
    """TaskData for a task name: the Shakespeare tasks are built from `data` (or text_dir,
    the corpus the model was pre-trained on, or the default corpus); file tasks read `data`."""
    if name in SHAKESPEARE_TASKS:
        if data is None and text_dir is None:
            from .demo import default_corpus

            text_dir = default_corpus("data")
        return make_shakespeare_task(name, load_text_dir(data or text_dir), seed)
    if name in FILE_TASKS:
        if data is None:
            raise ValueError(f"task {name} is read from its files: give --data FOLDER "
                             f"({FILE_TASKS[name].description or 'the dataset folder'})")
        return load_task_files(name, data)
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(task_names())}")


def source_text_dir(checkpoint):
    """The corpus a pre-training run folder was trained on, or None."""
    run_json = Path(checkpoint) / "run.json"
    if run_json.exists():
        text_dir = read_json(run_json, what="run description").get("text_dir")
        if isinstance(text_dir, str) and text_dir and Path(text_dir).is_dir():
            return text_dir
    return None


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


def resumed_task_model(run_dir, device="cpu"):
    """(TaskModel, tokenizer, checkpoint, FinetuneConfig, run.json) of a fine-tuning run to
    continue."""
    run, cfg, fcfg, spec = read_finetune_run(run_dir)
    checkpoint = load_checkpoint(run_dir)
    missing = [k for k in HEAD if k not in checkpoint.params]
    if missing:
        raise FormatError(f"{checkpoint.folder / 'params.npz'}: no task head {missing}")
    body = {k: v for k, v in checkpoint.params.items() if k not in HEAD}
    gpt = GPT(cfg, seed=fcfg.seed, device=device, params=body)
    head = {k: checkpoint.params[k] for k in HEAD}
    model = TaskModel(gpt, spec, fcfg.seed, fcfg.clf_pdrop, head)
    return model, BPETokenizer.load(run_dir / "tokenizer"), checkpoint, fcfg, run


def run_finetuning(checkpoint, task_name, run_dir, data=None, fcfg=None, which="last",
                   resume=False, force=False, device="cpu", progress=True, task=None,
                   allow_truncation=True, world=SINGLE):
    """Fine-tune (or resume) on a task; returns a summary with validation and test metrics.

    `task` (TaskData) skips loading by name, for callers that built the examples already.
    With allow_truncation=False an example longer than the context is an error, not cut.
    On several ranks, rank 0 prepares the run and every rank trains; only rank 0 evaluates
    the test split and returns the summary (the others None).
    """
    run = {}
    if world.is_writer:  # the other ranks receive run["shared"] below
        run = prepare_finetuning(checkpoint, task_name, run_dir, data, fcfg, which, resume,
                                 force, device, task, allow_truncation, world)
    shared = world.broadcast(run.get("shared"))
    fcfg = FinetuneConfig(**shared["finetune"])
    model = run.get("model") or TaskModel(
        GPT(GPTConfig.from_dict(shared["config"]), seed=fcfg.seed, device=device),
        TaskSpec(**shared["task"]), fcfg.seed, fcfg.clf_pdrop)
    if world.is_writer:
        train, validation = run["encoded"]["train"], run["encoded"]["validation"]
    else:
        train, validation = (examples_from_json(rows) for rows in shared["examples"])
    optimizer = AdamW(model.params, lr=fcfg.lr, weight_decay=fcfg.weight_decay)
    if run.get("optimizer"):
        optimizer.load_state_dict(run["optimizer"])
    world.share_weights(model, optimizer)  # all ranks start from rank 0's weights
    result = finetune(model, optimizer, train, validation, fcfg, Path(run_dir),
                      shared["start_step"], progress, world)
    if not world.is_writer:
        return None
    encoded, spec = run["encoded"], model.spec
    scores = {split: evaluate_task(model, examples, fcfg.batch_size)["metric"]
              for split, examples in encoded.items() if split != "train"}
    write_json_atomic(Path(run_dir) / "results.json", {"task": spec.name, "metric": spec.metric,
                                                       **scores})
    plot_losses(Path(run_dir) / "metrics.jsonl", Path(run_dir) / "loss.png",
                title=f"fine-tuning on {spec.name} (lambda = {fcfg.lm_coef})")
    return {"run_dir": Path(run_dir), "model": model, "spec": spec, "scores": scores, **result}


def examples_to_json(examples):
    return [[e.sequences, e.label, e.truncated, e.source] for e in examples]


def examples_from_json(rows):
    """EncodedExamples from examples_to_json's lists (what a broadcast carries)."""
    return [EncodedExample(tuple(map(tuple, seqs)), label, truncated, source)
            for seqs, label, truncated, source in rows]


def prepare_finetuning(checkpoint, task_name, run_dir, data, fcfg, which, resume, force, device,
                       task, allow_truncation, world=SINGLE):
    """Check, read and write what a fine-tuning run needs before its first update: the
    model with its task head, the encoded examples, run.json or the checkpoint to resume."""
    run_dir = check_run_dir(run_dir, resume, force)
    start_step = 0
    if resume:
        model, tokenizer, saved, fcfg, run = resumed_task_model(run_dir, device)
        task_name, data, checkpoint = model.spec.name, run.get("data"), run["checkpoint"]
        start_step = saved.step
    else:
        fcfg = fcfg or FinetuneConfig()
        gpt, tokenizer = load_model(checkpoint, which, device)  # fails early, before the data
    task = task or load_task(task_name, data, fcfg.seed, source_text_dir(checkpoint))
    if fcfg.max_train_examples is not None:
        task = subsample_train(task, fcfg.max_train_examples, fcfg.seed)
    if not resume:
        model = new_task_model(gpt, tokenizer, task.spec, fcfg)
    encoded = encode_splits(task, tokenizer, model.gpt.cfg.n_ctx, allow_truncation)
    longest = max(len(seq) for example in encoded["train"] for seq in example.sequences)
    batch = min(fcfg.batch_size, len(encoded["train"]))
    check_rank_fits(model.gpt.cfg, world, batch, fcfg.micro_batch_size, longest,
                    sequences_per_item=len(encoded["train"][0].sequences))
    if not resume:  # only now: bad data must not cost an earlier run its folder
        start_run_dir(run_dir)
        tokenizer.save(run_dir / "tokenizer")
        write_json_atomic(run_dir / "run.json", {
            "format_version": FORMAT_VERSION, "kind": "finetune", "task": asdict(task.spec),
            "checkpoint": str(checkpoint), "which": which, "data": data and str(data),
            "config": model.gpt.cfg.to_dict(), "finetune": asdict(fcfg),
        })  # fmt: skip
    print(show_layout(encoded["train"][0], tokenizer))
    if resume:
        print(f"resuming {run_dir} at step {start_step}")
    if world.size > 1:
        print("\n".join(world.describe(batch, fcfg.micro_batch_size, fcfg.lr)))
    counts = ", ".join(f"{len(v):,} {k}" for k, v in encoded.items())
    print(f"task {task.spec.name} ({task.spec.kind}, metric {task.spec.metric}): {counts}; "
          f"lambda = {fcfg.lm_coef}")
    examples = None  # what the other ranks train and evaluate on, if there are others
    if world.size > 1:
        examples = [examples_to_json(encoded[split]) for split in ("train", "validation")]
    return {"model": model, "encoded": encoded, "optimizer": saved.optimizer if resume else None,
            "shared": {"config": model.gpt.cfg.to_dict(), "finetune": asdict(fcfg),
                       "task": asdict(task.spec), "start_step": start_step,
                       "examples": examples}}
