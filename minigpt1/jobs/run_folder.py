"""What the jobs share: their run folders, the models in them, and the data they start from.

    held_by_writer                 a job holds its folder's lock while it runs: one writer
    check_run_dir, start_run_dir   may this folder be used as asked; empty it for a new run
    plan_json                      a job's plan as run.json records it
    fingerprint                    a tokenizer folder's digest (token-id caches are keyed by it)
    load_model, export_run         the GPT and tokenizer of a run folder, a HuggingFace folder or
                                   the 2018 release; a run's as a folder transformers loads
    default_corpus, source_text_dir, load_task    the texts and tasks a job trains on
"""

import hashlib
import os
import shlex
import shutil
import socket
import sys
import time
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock, Timeout
from tqdm import tqdm

from ..corpus.shakespeare import prepare_shakespeare
from ..corpus.text_folders import SAMPLE_DIR, load_text_dir
from ..errors import FormatError
from ..fileio import read_json, write_json_atomic
from ..finetuning.file_tasks import FILE_TASKS, load_task_files
from ..finetuning.shakespeare_tasks import SHAKESPEARE_TASKS, make_shakespeare_task
from ..model.gpt import GPT
from ..model.openai_release import is_release_folder
from ..tokenizer.bpe import BPETokenizer
from ..tokenizer.files import file_names as tokenizer_file_names
from ..training.checkpoint import load_checkpoint, read_index
from ..training.distributed import SINGLE

FORMAT_VERSION = 1  # of run.json
LOCK, HOLDER = ".lock", ".lock.json"  # the lock's file and who holds it: ours, never deleted
OURS = {LOCK, HOLDER}


class RunFolderInUse(RuntimeError):
    """Another process holds the run folder's lock (exit status 1)."""


def held_by_writer(run_dir, world=SINGLE):
    """The lock of run_dir held by the rank that writes it (hold_run_dir), so that a second
    job on that folder (a --force or --resume included) stops before it writes or deletes
    anything; the other ranks of a distributed run write nothing and take no lock."""
    return hold_run_dir(run_dir) if world.is_writer else nullcontext()


@contextmanager
def hold_run_dir(run_dir):
    """Hold run_dir's lock (creating the folder) for the block, or raise RunFolderInUse
    naming the holder. The operating system drops the lock when its process dies, kill -9
    included, so a crashed run's lock is simply taken over."""
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir} is a file, not a folder: choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunFolderInUse(
            f"{run_dir} is in use by {_holder(run_dir)}: one run writes a folder at a time; "
            "wait for that run to finish (or stop it), or choose another --out"
        ) from None
    try:
        write_json_atomic(run_dir / HOLDER, {
            "pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        })  # fmt: skip
        yield run_dir
    finally:
        _leave(run_dir, lock, created)


def _leave(run_dir, lock, created):
    """Release the lock; a folder made only to hold it (the job stopped before writing
    anything) is removed, so that a refused command leaves no trace."""
    with suppress(OSError):
        (run_dir / HOLDER).unlink(missing_ok=True)
        if created and [path.name for path in run_dir.iterdir()] == [LOCK]:
            (run_dir / LOCK).unlink()  # while still held, so no other job is inside
    lock.release()
    if created:
        with suppress(OSError):  # not empty: another job started there meanwhile
            run_dir.rmdir()


def _command():
    """This process's command line, as the user would have typed it."""
    if sys.argv and sys.argv[0].endswith("__main__.py"):
        return "python -m minigpt1 " + shlex.join(sys.argv[1:])
    return shlex.join(sys.argv)


def _holder(run_dir):
    """Who holds run_dir's lock, in words, from the note that process wrote beside it."""
    try:
        who = read_json(run_dir / HOLDER, what="lock holder")
        return (f"process {who['pid']} on {who['host']} (`{who['command']}`, running since "
                f"{who['since']})")
    except (OSError, ValueError, KeyError):  # it is starting, or ending, right now
        return "another process"


def check_run_dir(run_dir, resume, force):
    """Raise unless run_dir may be used as asked (changes nothing). run.json is all a resume
    needs (a run that failed before its first checkpoint resumes from step 0); the lock's
    files do not count: a folder holding only them is empty."""
    run_dir = Path(run_dir)
    is_run = (run_dir / "run.json").exists()
    if resume:
        if not is_run and _contents(run_dir):  # a start that failed before run.json
            raise FileNotFoundError(
                f"nothing to resume in {run_dir}: it holds no run.json (a run that failed "
                "before writing it, or no run at all); start the run anew there with --force "
                "(it deletes the folder), or choose another --out")
        if not is_run:
            raise FileNotFoundError(f"nothing to resume: {run_dir} holds no run; start a run "
                                    "there without --resume")
    elif _contents(run_dir) and not force:
        what = "holds another run" if is_run else "is not empty"
        advice = "--resume to continue it, " if is_run else ""
        raise FileExistsError(
            f"{run_dir} {what}; use {advice}another --out, or --force to delete it and "
            "start over"
        )
    return run_dir


def _contents(run_dir):
    """What run_dir holds besides the lock's files."""
    return [path for path in run_dir.iterdir() if path.name not in OURS] if run_dir.is_dir() else []


def start_run_dir(run_dir):
    """An empty run folder: what force allowed to be there is deleted, except the lock's
    files (the lock is held: deleting its file would let a second writer in)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in _contents(run_dir):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


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


def run_tokenizer_fingerprint(run, run_dir):
    """The fingerprint of a run folder's tokenizer/, refused unless run.json records the same
    (a run.json written before fingerprints were recorded says nothing: nothing is compared)."""
    folder = Path(run_dir) / "tokenizer"
    key = fingerprint(folder)
    if run.get("tokenizer_fingerprint") not in (None, key):
        raise ValueError(
            f"{folder} is not the tokenizer the run started with (its files differ from the "
            "fingerprint in run.json): restore it to continue this run, or start a new run")
    return key


def record_config(run_dir, run, name, config, **more):
    """Rewrite run.json (read as `run`) with the config dataclass `config` as its section
    `name` (and as the recorded plan's), and any `more` keys: how a resume that extends the
    budget makes the next bare --resume continue the extended run."""
    run = {**run, name: asdict(config), **more}
    if isinstance(run.get("plan"), dict):
        run["plan"] = {**run["plan"], name: asdict(config)}
    write_json_atomic(Path(run_dir) / "run.json", run)


def checkpoint_config(checkpoint):
    """The GPTConfig a checkpoint's state.json records (load_checkpoint built and checked it)."""
    if checkpoint.config is None:
        raise FormatError(f"{checkpoint.folder / 'state.json'}: no 'config' section")
    return checkpoint.config


def load_model(path, which="last", device="cpu"):
    """(model, tokenizer) from a run folder (its last or best checkpoint), a HuggingFace-style
    folder (config.json + model.safetensors + vocab.json + merges.txt) or the 2018 release's
    model/ folder (params_shapes.json + params_*.npy + encoder_bpe_40000.json +
    vocab_40000.bpe). A run with no best checkpoint yet (none evaluated so far) gives its
    last for "best", with a note."""
    path = Path(path)
    if (path / "checkpoints" / "index.json").exists():
        check_tokenizer(path / "tokenizer", path)
        if which == "best" and (read_index(path) or {}).get("best") is None:
            tqdm.write(f"note: {path} has no best checkpoint yet (no evaluation so far): "
                       "using its last", file=sys.stderr)
            which = "last"
        checkpoint = load_checkpoint(path, which)
        cfg = checkpoint_config(checkpoint)
        # a fine-tuned run also holds its task head (clf.*): the GPT itself is the rest
        body = {k: v for k, v in checkpoint.params.items() if not k.startswith("clf.")}
        model = GPT(cfg, device=device, params=body)
        tokenizer = BPETokenizer.load(path / "tokenizer")
    elif (path / "config.json").exists() or is_release_folder(path):
        check_tokenizer(path, path)
        model = GPT.from_pretrained(path, device=device)
        # the real openai-gpt files carry no minigpt1_bpe.json: they are GPT-1's mode
        mode = None if (path / "minigpt1_bpe.json").exists() else "gpt1"
        tokenizer = BPETokenizer.load(path, mode)
    else:
        raise FileNotFoundError(
            f"{path} is neither a run folder (checkpoints/index.json) nor a model folder "
            "(config.json + model.safetensors, or the 2018 release's params_shapes.json + "
            "params_*.npy)"
        )
    if tokenizer.vocab_size > model.cfg.vocab_size:
        raise ValueError(f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the "
                         f"model only {model.cfg.vocab_size}: they do not belong together")
    return model, tokenizer


def check_tokenizer(folder, model_dir):
    if tokenizer_file_names(folder) is None:
        raise FileNotFoundError(
            f"{model_dir} has no tokenizer ({folder}/vocab.json and merges.txt): a model is "
            "only usable with the tokenizer it was trained with; copy that tokenizer's files "
            f"into {folder}"
        )


def export_run(run_dir, out_dir, which="best", force=False):
    """Weights and tokenizer of a run (or of any folder load_model reads) as a HuggingFace
    openai-gpt folder, no optimizer, that transformers' AutoModelForCausalLM and
    AutoTokenizer.from_pretrained(out_dir) load. A run never evaluated exports its last
    checkpoint for "best" (load_model)."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and not force:
        raise FileExistsError(f"{out_dir} already holds a model; choose another --out or --force")
    model, tokenizer = load_model(run_dir, which)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir, model_max_length=model.cfg.n_ctx)
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
