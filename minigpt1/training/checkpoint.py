"""Checkpoints: a run's weights, optimizer moments and position, safe to kill at any moment.

    RUN/checkpoints/
        index.json          {"last": "step-0000200", "best": "step-0000150", "best_val_loss": ...,
                             "kept": ["step-0000100"]}
        step-0000100/       params.npz  optimizer.npz  state.json
        step-0000150/
        step-0000200/

"kept" lists the snapshots `pretrain --keep-every N` asks for: checkpoints never pruned, read
back by name (load_checkpoint(run_dir, "step-0000100")).

A checkpoint is written into a temporary folder, flushed to the disk (its files, then the
folder) and renamed into place (a rename is atomic), then index.json is replaced atomically
to point at it, and only then are folders that the index no longer names deleted. A process
killed at any instant, or a power loss, therefore leaves an index that names complete
checkpoints. Pruning deletes only what a save wrote (step-NNNNNNN folders and the leftovers
of killed saves): a backup or notes put into checkpoints/ stay. Arrays are .npz (read with
allow_pickle=False), everything else JSON; every file carries a format version.
"""

import contextlib
import errno
import functools
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..backend import to_numpy
from ..config import GPTConfig
from ..errors import FormatError
from ..fileio import fsync_path, read_json, section, usual_mode, write_json_atomic
from ..model.parameters import check_params

FORMAT_VERSION = 1
FOLDER_NAME = re.compile(r"step-\d{7}")  # what index.json may name: nothing else, no path
# what a save leaves in checkpoints/ when killed: its temporary folder or index.json's temp file
LEFTOVER = re.compile(r"\.step-\d{7}\..+|\.index\.json\..+\.tmp")
TASK_HEAD = ("clf.weight", "clf.bias")  # a fine-tuned run's checkpoint adds its task head


@dataclass
class Checkpoint:
    step: int
    params: dict  # name -> numpy array
    optimizer: dict  # AdamW.state_dict() as numpy arrays
    state: dict  # JSON: config, schedule, seeds, data position, losses
    folder: Path = None  # where it was read from, for messages
    config: GPTConfig = None  # the model config state.json records (None if it has none)


def checkpoints_dir(run_dir):
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir, step, params, optimizer_state, state, val_loss=None, keep=False):
    """Write checkpoint `step`; it becomes `last`, `best` if val_loss is the lowest yet, and a
    kept snapshot if `keep`.

    A write that fails (disk full, no permission) raises OSError naming the step, the stage
    and the cause; the checkpoints already there are left as they were, the previous one
    still loads, and nothing is left behind that a later save would trip on.
    """
    root = checkpoints_dir(run_dir)
    name = f"step-{step:07d}"
    stage = functools.partial(_stage, name=name, root=root)
    with stage(f"creating {root}"):
        root.mkdir(parents=True, exist_ok=True)
    with stage("creating a temporary folder"):
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        tmp.chmod(usual_mode(folder=True))  # mkdtemp makes 0700; the umask decides, as for mkdir
    try:
        with stage("writing params.npz"):
            np.savez(tmp / "params.npz", **{k: to_numpy(v) for k, v in params.items()})
        with stage("writing optimizer.npz"):
            np.savez(tmp / "optimizer.npz",
                     **{k: to_numpy(v) for k, v in optimizer_state.items()})
        with stage("writing state.json"):
            write_json_atomic(tmp / "state.json", {"format_version": FORMAT_VERSION,
                                                   "step": step, "val_loss": val_loss, **state})
        with stage("flushing the files to the disk"):
            for file in ("params.npz", "optimizer.npz", "state.json", ""):  # "": the folder
                fsync_path(tmp / file)
        with stage("reading index.json"):
            index = read_index(run_dir) or {"format_version": FORMAT_VERSION}
        created = name not in _named(index)
        if not created:  # this step is already saved (Ctrl-C right after a save)
            with stage("removing the temporary folder"):
                shutil.rmtree(tmp)
        else:
            if (root / name).exists():  # left by a save killed before its index update
                with stage(f"removing the unfinished {name}"):
                    shutil.rmtree(root / name)
            with stage(f"renaming the temporary folder to {name}"):
                tmp.rename(root / name)
                fsync_path(root)  # the rename is on the disk before the index names it
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index["last"] = name
    if keep:
        index["kept"] = sorted({*index.get("kept", []), name})
    if val_loss is not None and val_loss < index.get("best_val_loss", float("inf")):
        index["best"], index["best_val_loss"] = name, val_loss
    try:
        with stage("writing index.json"):
            write_json_atomic(root / "index.json", index)
    except BaseException:
        if created:  # the index still names the previous checkpoints: drop the new one
            with contextlib.suppress(Exception):
                if name not in _named(read_index(run_dir) or {}):
                    shutil.rmtree(root / name, ignore_errors=True)
        raise
    _prune(root, keep=_named(index))
    return root / name


@contextlib.contextmanager
def _stage(what, name, root):
    """Report an OSError inside the block as `what` having failed while saving `name`."""
    try:
        yield
    except OSError as err:
        raise _save_error(err, name, root, what) from err


def _named(index):
    """The checkpoint folders an index names."""
    return {index.get("last"), index.get("best"), *index.get("kept", [])} - {None}


def _save_error(err, name, root, stage):
    """An OSError (of the same errno, so still e.g. a PermissionError) saying what failed."""
    if err.errno == errno.ENOSPC:
        fix = "free some disk space, then resume the run (--resume)"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"make {root} writable for this user, then resume the run (--resume)"
    else:
        fix = "fix the cause, then resume the run (--resume)"
    cause = os.strerror(err.errno) if err.errno else err  # the system's words: the fix is ours
    message = (f"could not save checkpoint {name} in {root}: {stage} failed "
               f"({cause}); the checkpoints already there are unchanged. {fix}")
    return OSError(message) if err.errno is None else OSError(err.errno, message)


def _prune(root, keep):
    """Delete the checkpoint folders the index no longer names and the leftovers of killed
    saves (best effort: errors are ignored). Anything else is the user's: it stays, and is
    mentioned the first time a save sees it."""
    for path in root.iterdir():
        if FOLDER_NAME.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
        elif LEFTOVER.fullmatch(path.name) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif LEFTOVER.fullmatch(path.name):
            with contextlib.suppress(OSError):
                path.unlink()
        elif path.name != "index.json":
            _mention_foreign(path)


@functools.cache  # once per path and process: a note, not a warning at every save
def _mention_foreign(path):
    tqdm.write(f"note: {path} is not a checkpoint; pruning leaves it where it is")


def read_index(run_dir):
    """The run's checkpoint index, or None if it has no checkpoint yet."""
    path = checkpoints_dir(run_dir) / "index.json"
    if not path.exists():
        return None
    index = read_json(path, what="checkpoint index")
    check_version(index, path)
    for key in ("last", "best"):
        name = index.get(key)
        if (key == "last" or name is not None) and not (
            isinstance(name, str) and FOLDER_NAME.fullmatch(name)
        ):
            raise FormatError(f"{path}: '{key}' must name a checkpoint folder such as "
                              f"step-0000200, found {name!r}")
    kept = index.get("kept", [])
    if not (isinstance(kept, list)
            and all(isinstance(name, str) and FOLDER_NAME.fullmatch(name) for name in kept)):
        raise FormatError(f"{path}: 'kept' must be a list of checkpoint folders such as "
                          f"step-0000200, found {kept!r}")
    return index


def snapshots(run_dir):
    """The names of the run's kept snapshots (pretrain --keep-every), oldest first."""
    index = read_index(run_dir)
    return [] if index is None else list(index.get("kept", []))


def check_version(obj, path):
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise FormatError(
            f"{path}: checkpoint format version {version}, this minigpt1 reads version "
            f"{FORMAT_VERSION}; use the minigpt1 release that wrote it, or start a new run"
        )


def load_checkpoint(run_dir, which="last"):
    """Load the `last` or `best` checkpoint of a run directory, or a kept snapshot by its
    folder name (e.g. "step-0001000").

    A run that is training meanwhile (generate and export read without its lock) may save a
    newer checkpoint and prune the one the index named between our reading the index and its
    files: then the index has moved on, and the checkpoint it names now is read instead.
    """
    for attempt in range(3):
        index = read_index(run_dir)
        try:
            return _load_named(run_dir, index, which)
        except (OSError, FormatError):
            if attempt == 2 or read_index(run_dir) == index:  # nothing moved: really broken
                raise


def _load_named(run_dir, index, which):
    """The checkpoint `which` of `index`, the run's index as read just before."""
    if index is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir} (expected {run_dir}/checkpoints/)")
    names = {key: index[key] for key in ("last", "best") if key in index}
    names.update((name, name) for name in index.get("kept", []))
    if which not in names:
        raise ValueError(f"{run_dir} has no '{which}' checkpoint (it has: {', '.join(names)})")
    folder = checkpoints_dir(run_dir) / names[which]
    if not folder.is_dir():
        raise FormatError(f"{checkpoints_dir(run_dir) / 'index.json'}: names {names[which]}, "
                          f"which is not in {checkpoints_dir(run_dir)}")
    state = read_json(folder / "state.json", what="checkpoint state")
    check_version(state, folder / "state.json")
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise FormatError(f"{folder / 'state.json'}: 'step' must be a whole number >= 0, "
                          f"found {step!r}")
    params = _load_npz(folder / "params.npz")
    optimizer = _load_npz(folder / "optimizer.npz")
    config = _check_params(params, state, folder)
    _check_optimizer(optimizer, params, folder / "optimizer.npz")
    return Checkpoint(step, params, optimizer, state, folder, config)


def _load_npz(path):
    """{name: array} from an .npz; object arrays are refused (allow_pickle=False)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError as err:
        raise FormatError(f"{path}: missing from its checkpoint folder") from err
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError,
            RuntimeError, MemoryError) as err:
        raise FormatError(f"{path}: unreadable checkpoint file ({err})") from err


def _check_params(params, state, folder):
    """Finite floating-point tensors with the names and shapes of the state's config, which
    it returns (None when the state records none)."""
    path = folder / "params.npz"
    for name, value in params.items():
        if value.dtype.kind != "f" or not np.isfinite(value).all():
            raise FormatError(f"{path}: tensor {name} must hold finite floats, found "
                              f"{value.dtype} {'values' if value.dtype.kind != 'f' else 'NaN/inf'}")
    if "config" not in state:
        return None
    cfg = section(state, "config", GPTConfig.from_dict, folder / "state.json")
    body = {name: value for name, value in params.items() if name not in TASK_HEAD}
    try:
        check_params(cfg, body, source=str(path))
    except ValueError as err:
        raise FormatError(str(err)) from err
    return cfg


def _check_optimizer(optimizer, params, path):
    """AdamW's state: an integer step and one m and one v per parameter, of its shape."""
    step = optimizer.get("step")
    if step is None or step.shape != () or step.dtype.kind not in "iu":
        raise FormatError(f"{path}: 'step' must be an integer scalar")
    expected = {"step"} | {f"{moment}.{name}" for name in params for moment in "mv"}
    unexpected = sorted(set(optimizer) - expected)
    if unexpected:
        raise FormatError(f"{path}: unexpected arrays {unexpected[:5]}")
    for name, value in params.items():
        for key in (f"m.{name}", f"v.{name}"):
            moment = optimizer.get(key)
            if moment is None or moment.shape != value.shape or moment.dtype.kind != "f":
                raise FormatError(f"{path}: {key} must be a float array of shape {value.shape}")
            if not np.isfinite(moment).all():
                raise FormatError(f"{path}: {key} holds NaN or infinity")
