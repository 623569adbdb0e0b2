"""Checkpoints: a run's weights, optimizer moments and position, safe to kill at any moment.

    RUN/checkpoints/
        index.json          {"last": "step-0000200", "best": "step-0000150", "best_val_loss": ...}
        step-0000150/       params.npz  optimizer.npz  state.json
        step-0000200/

A checkpoint is written into a temporary folder and renamed into place (a rename is atomic),
then index.json is replaced atomically to point at it, and only then are folders that the
index no longer names deleted. A process killed at any instant therefore leaves an index
that names complete checkpoints. Arrays are .npz (read with allow_pickle=False), everything
else JSON; every file carries a format version.
"""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .fileio import read_json, write_json_atomic

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    step: int
    params: dict  # name -> numpy array
    optimizer: dict  # AdamW.state_dict() as numpy arrays
    state: dict  # JSON: config, schedule, seeds, data position, losses


def checkpoints_dir(run_dir):
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir, step, params, optimizer_state, state, val_loss=None):
    """Write checkpoint `step`; it becomes `last`, and `best` if val_loss is the lowest yet."""
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        np.savez(tmp / "params.npz", **{k: to_numpy(v) for k, v in params.items()})
        np.savez(tmp / "optimizer.npz", **{k: to_numpy(v) for k, v in optimizer_state.items()})
        write_json_atomic(tmp / "state.json", {"format_version": FORMAT_VERSION, "step": step,
                                               "val_loss": val_loss, **state})
        if (root / name).exists():  # this step is already saved (Ctrl-C right after a save)
            shutil.rmtree(tmp)
        else:
            tmp.rename(root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index = read_index(run_dir) or {"format_version": FORMAT_VERSION}
    index["last"] = name
    if val_loss is not None and val_loss < index.get("best_val_loss", float("inf")):
        index["best"], index["best_val_loss"] = name, val_loss
    write_json_atomic(root / "index.json", index)
    _prune(root, keep={index["last"], index.get("best")})
    return root / name


def _prune(root, keep):
    """Delete checkpoint folders the index no longer names, and leftovers of killed writes."""
    for path in root.iterdir():
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def read_index(run_dir):
    """The run's checkpoint index, or None if it has no checkpoint yet."""
    path = checkpoints_dir(run_dir) / "index.json"
    if not path.exists():
        return None
    index = read_json(path, what="checkpoint index")
    check_version(index, path)
    return index


def check_version(obj, path):
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format version {version}, this minigpt1 reads version "
            f"{FORMAT_VERSION}; use the minigpt1 release that wrote it, or start a new run"
        )


def load_checkpoint(run_dir, which="last"):
    """Load the `last` or `best` checkpoint of a run directory."""
    index = read_index(run_dir)
    if index is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir} (expected {run_dir}/checkpoints/)")
    if which not in index:
        raise ValueError(f"{run_dir} has no '{which}' checkpoint (it has: last"
                         f"{', best' if 'best' in index else ''})")
    folder = checkpoints_dir(run_dir) / index[which]
    state = read_json(folder / "state.json", what="checkpoint state")
    check_version(state, folder / "state.json")
    return Checkpoint(
        step=state["step"],
        params=_load_npz(folder / "params.npz"),
        optimizer=_load_npz(folder / "optimizer.npz"),
        state=state,
    )


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable checkpoint file ({err})") from err
