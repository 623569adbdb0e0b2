"""What the jobs share: their run folders, the models in them, and the data they start from.

    check_run_dir, start_run_dir   may this folder be used as asked; empty it for a new run
    plan_json                      a job's plan as run.json records it
    fingerprint                    a tokenizer folder's digest (token-id caches are keyed by it)
    load_model, export_run         a run folder's (or HuggingFace folder's) GPT and tokenizer
    default_corpus, source_text_dir, load_task    the texts and tasks a job trains on
"""

import hashlib
import shutil
from dataclasses import asdict
from pathlib import Path

from ..corpus.shakespeare import prepare_shakespeare
from ..corpus.text_folders import SAMPLE_DIR, load_text_dir
from ..errors import FormatError
from ..fileio import read_json
from ..finetuning.file_tasks import FILE_TASKS, load_task_files
from ..finetuning.shakespeare_tasks import SHAKESPEARE_TASKS, make_shakespeare_task
from ..model.gpt import GPT
from ..tokenizer.bpe import BPETokenizer
from ..training.checkpoint import load_checkpoint, read_index

FORMAT_VERSION = 1  # of run.json


def check_run_dir(run_dir, resume, force):
    """Raise unless run_dir may be used as asked (changes nothing)."""
    run_dir = Path(run_dir)
    is_run = (run_dir / "run.json").exists()
    if resume:
        if not is_run or read_index(run_dir) is None:
            raise FileNotFoundError(
                f"nothing to resume in {run_dir}: no run.json and checkpoint there; "
                "start a run with --out without --resume"
            )
    elif run_dir.exists() and any(run_dir.iterdir()) and not force:
        what = "holds another run" if is_run else "is not empty"
        raise FileExistsError(
            f"{run_dir} {what}; use --resume to continue it, another --out, or --force "
            "to delete it and start over"
        )
    return run_dir


def start_run_dir(run_dir):
    """An empty run folder (what force allowed to be there is deleted)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)


def plan_json(plan):
    """A job's plan as JSON values, paths as strings: run.json's "plan", and what rank 0
    sends the other ranks."""
    return {name: str(value) if isinstance(value, Path) else value
            for name, value in asdict(plan).items()}


def fingerprint(directory):
    """sha256 over the names and bytes of a folder's files: changes when the tokenizer does."""
    h = hashlib.sha256()
    for path in sorted(Path(directory).iterdir()):
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def checkpoint_config(checkpoint):
    """The GPTConfig a checkpoint's state.json records (load_checkpoint built and checked it)."""
    if checkpoint.config is None:
        raise FormatError(f"{checkpoint.folder / 'state.json'}: no 'config' section")
    return checkpoint.config


def load_model(path, which="last", device="cpu"):
    """(model, tokenizer) from a run folder (its last or best checkpoint) or from a
    HuggingFace-style folder (config.json + model.safetensors + vocab.json + merges.txt)."""
    path = Path(path)
    if (path / "checkpoints" / "index.json").exists():
        check_tokenizer(path / "tokenizer", path)
        checkpoint = load_checkpoint(path, which)
        cfg = checkpoint_config(checkpoint)
        # a fine-tuned run also holds its task head (clf.*): the GPT itself is the rest
        body = {k: v for k, v in checkpoint.params.items() if not k.startswith("clf.")}
        model = GPT(cfg, device=device, params=body)
        tokenizer = BPETokenizer.load(path / "tokenizer")
    elif (path / "config.json").exists():
        check_tokenizer(path, path)
        model = GPT.from_pretrained(path, device=device)
        # the real openai-gpt files carry no minigpt1_bpe.json: they are GPT-1's mode
        mode = None if (path / "minigpt1_bpe.json").exists() else "gpt1"
        tokenizer = BPETokenizer.load(path, mode)
    else:
        raise FileNotFoundError(
            f"{path} is neither a run folder (checkpoints/index.json) nor a model folder "
            "(config.json + model.safetensors)"
        )
    if tokenizer.vocab_size > model.cfg.vocab_size:
        raise ValueError(f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the "
                         f"model only {model.cfg.vocab_size}: they do not belong together")
    return model, tokenizer


def check_tokenizer(folder, model_dir):
    if not (folder / "vocab.json").exists() or not (folder / "merges.txt").exists():
        raise FileNotFoundError(
            f"{model_dir} has no tokenizer ({folder}/vocab.json and merges.txt): a model is "
            "only usable with the tokenizer it was trained with; copy that tokenizer's files "
            f"into {folder}"
        )


def export_run(run_dir, out_dir, which="best", force=False):
    """Weights and tokenizer of a run as a HuggingFace openai-gpt folder (no optimizer)."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and not force:
        raise FileExistsError(f"{out_dir} already holds a model; choose another --out or --force")
    if which == "best" and "best" not in (read_index(run_dir) or {}):
        which = "last"  # a run stopped before its first evaluation has no best yet
    model, tokenizer = load_model(run_dir, which)
    model.save_pretrained(out_dir)
    tokenizer.save(out_dir)
    return out_dir


def default_corpus(data_dir):
    """The prepared Shakespeare folder; the sample corpus, with a visible note, when offline."""
    try:
        return prepare_shakespeare(data_dir, progress=False)
    except (OSError, RuntimeError, ValueError) as err:
        print(f"NOTE: could not prepare Shakespeare ({err}).\n"
              f"NOTE: using the small sample corpus in {SAMPLE_DIR} instead.")
        return SAMPLE_DIR


def source_text_dir(checkpoint):
    """The corpus a pre-training run folder was trained on, or None."""
    run_json = Path(checkpoint) / "run.json"
    if run_json.exists():
        text_dir = read_json(run_json, what="run description").get("text_dir")
        if isinstance(text_dir, str) and text_dir and Path(text_dir).is_dir():
            return text_dir
    return None


def task_names():
    return [*SHAKESPEARE_TASKS, *FILE_TASKS]


def load_task(name, data=None, seed=0, text_dir=None):
    """TaskData for a task name: the Shakespeare tasks are built from `data` (or text_dir,
    the corpus the model was pre-trained on, or the default corpus); file tasks read `data`."""
    if name in SHAKESPEARE_TASKS:
        if data is None and text_dir is None:
            text_dir = default_corpus("data")
        return make_shakespeare_task(name, load_text_dir(data or text_dir), seed)
    if name in FILE_TASKS:
        if data is None:
            raise ValueError(f"task {name} is read from its files: give --data FOLDER "
                             f"({FILE_TASKS[name].description or 'the dataset folder'})")
        return load_task_files(name, data)
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(task_names())}")
