"""The files a run writes and the messages it gives when writing fails:

- pruning deletes only what the checkpoint index wrote: a backup or notes in checkpoints/
  stay, mentioned once;
- a checkpoint's files and folder are flushed to the disk (fsync) before the index names it,
  so a power loss, not only kill -9, leaves the previous checkpoint;
- checkpoint folders, run files and exported weights follow the umask (mkdtemp made 0700
  folders, safetensors 0600 files);
- a full disk names the file it could not write and the fix, wherever it happens (metrics,
  run.json, tokenizer, plots, checkpoints);
- an error ends the progress bar first, then has a line of its own below it.
"""

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from minigpt1 import GPT, GPTConfig
from minigpt1.cli import _error_message, main
from minigpt1.fileio import write_json_atomic
from minigpt1.jobs.run_folder import hold_run_dir
from minigpt1.plots import plot_losses
from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.training import loop
from minigpt1.training.checkpoint import load_checkpoint, save_checkpoint

STATE = {"total_steps": 100}


def save(run, step):
    params = {"w": np.full(3, float(step), np.float32)}
    optimizer = {"step": np.array(step), "m.w": params["w"] / 10, "v.w": params["w"] / 100}
    return save_checkpoint(run, step, params, optimizer, STATE, val_loss=1.0 / step)


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---------------------------------------------------------------------------------------------
# pruning


def test_pruning_leaves_what_the_user_put_in_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    save(run, 1)
    root = run / "checkpoints"
    shutil.copytree(root / "step-0000001", root / "backup")  # a user's copy of a checkpoint
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("compare with the lr 1e-3 run")
    (root / "step-0000001-keep").mkdir()
    (root / ".step-0000002.x1y2").mkdir()  # what a save killed mid-write leaves: ours
    (root / ".index.json.x1y2.tmp").write_text("{")
    for step in range(2, 6):
        save(run, step)
    names = sorted(path.name for path in root.iterdir())
    assert names == ["backup", "index.json", "notes", "step-0000001-keep", "step-0000005"]
    assert (root / "notes" / "todo.txt").read_text() == "compare with the lr 1e-3 run"
    assert load_checkpoint(run).step == 5
    out = capsys.readouterr().out + capsys.readouterr().err
    for user in ("backup", "notes", "step-0000001-keep"):
        assert out.count(f"{root / user} is not a checkpoint") == 1, out  # mentioned once


# ---------------------------------------------------------------------------------------------
# fsync before the index names a checkpoint


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
def test_a_checkpoint_is_on_the_disk_before_the_index_names_it(tmp_path, monkeypatch):
    events = []
    fsync, rename, replace = os.fsync, os.rename, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), fsync(fd))[1])
    monkeypatch.setattr(os, "rename", lambda a, b: (
        events.append(("rename", str(a), str(b))), rename(a, b))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (
        events.append(("replace", str(a), str(b))), replace(a, b))[1])
    run = tmp_path.resolve() / "run"
    folder = save(run, 1)
    root = str(run / "checkpoints")

    def at(event):
        return events.index(event)

    moved = next(e for e in events if e[0] == "rename" and e[2] == str(folder))
    tmp = moved[1]
    indexed = next(e for e in events if e[0] == "replace" and e[2] == f"{root}/index.json")
    for name in ("params.npz", "optimizer.npz", "state.json"):
        assert at(("fsync", f"{tmp}/{name}")) < at(moved), name
    assert at(("fsync", tmp)) < at(moved)  # the folder's entries
    assert at(moved) < at(("fsync", root)) < at(indexed)  # the rename itself
    assert at(("fsync", indexed[1])) < at(indexed)  # the new index's bytes
    assert events[-1] == ("fsync", root)  # and the index's rename


# ---------------------------------------------------------------------------------------------
# permissions follow the umask


@pytest.fixture(params=[0o022, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_run_files_and_exported_weights_follow_the_umask(tmp_path, umask):
    run = tmp_path / "run"
    with hold_run_dir(run):
        write_json_atomic(run / "run.json", {})
        folder = save(run, 1)
        lock_files = [run / ".lock", run / ".lock.json"]
        modes = {p: p.stat().st_mode & 0o777 for p in lock_files}
    GPT(GPTConfig.preset("tiny", vocab_size=50, n_ctx=8)).save_pretrained(tmp_path / "hf")
    files = [run / "run.json", folder / "params.npz", folder / "state.json",
             run / "checkpoints" / "index.json", tmp_path / "hf" / "model.safetensors",
             tmp_path / "hf" / "config.json"]
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert modes[run / ".lock"] == 0o666 & ~umask  # the holder note was removed on release
    for path in (folder, run / "checkpoints"):
        assert path.stat().st_mode & 0o777 == 0o777 & ~umask, path


# ---------------------------------------------------------------------------------------------
# a full disk names the file and the fix


def metrics(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "open", lambda *a, **k: FullFile(), raising=False)
    return lambda: loop.append_metrics(tmp_path / "metrics.jsonl", {"step": 1}), "metrics.jsonl"


class FullFile:
    """An open file on a full disk: every write fails."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    write = staticmethod(disk_full)


def run_json(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "write_text", disk_full)
    return lambda: write_json_atomic(tmp_path / "run.json", {}), "run.json"


def tokenizer(tmp_path, monkeypatch):
    bpe = BPETokenizer.train(["a small text to learn from"], 260)
    monkeypatch.setattr(Path, "write_text", disk_full)
    return lambda: bpe.save(tmp_path / "tokenizer"), "vocab.json"


def plot(tmp_path, monkeypatch):
    monkeypatch.setattr(Figure, "savefig", disk_full)
    records = [{"step": 1, "loss": 2.0, "lr": 0.1}]
    return lambda: plot_losses(records, tmp_path / "loss.png"), "loss.png"


def checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", disk_full)
    return lambda: save(tmp_path, 1), "params.npz"


@pytest.mark.parametrize("site", [metrics, run_json, tokenizer, plot, checkpoint])
def test_a_full_disk_names_the_file_and_the_fix(tmp_path, monkeypatch, site):
    write, name = site(tmp_path, monkeypatch)
    with pytest.raises(OSError) as caught:
        write()
    status, message = _error_message(caught.value, None, "minigpt1")
    assert status == 1 and caught.value.errno == errno.ENOSPC
    assert name in message and "free some" in message, message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------------
# the error below the progress bar, on its own line


def test_an_error_during_training_is_printed_below_the_progress_bar(corpus, tmp_path,
                                                                    monkeypatch, capsys):
    texts, tokenizer_dir = corpus
    opened = []

    def third_line_fails(path, *args, **kwargs):  # the disk fills up at the third metrics line
        opened.append(path)
        return FullFile() if len(opened) == 3 else open(path, *args, **kwargs)

    monkeypatch.setattr(loop, "open", third_line_fails, raising=False)
    run = tmp_path / "run"
    code = main(["pretrain", "--text-dir", str(texts), "--out", str(run), "--tokenizer",
                 str(tokenizer_dir), "--preset", "tiny", "--n-ctx", "32", "--batch-size", "4",
                 "--micro-batch-size", "2", "--eval-windows", "4", "--log-every", "1",
                 "--max-steps", "20"])
    err = capsys.readouterr().err
    assert code == 1
    before, message = err.split("error:", 1)
    assert "pre-training" in before  # the bar was drawn...
    assert before.endswith("\n")  # ...and ended before the message began
    assert message.count("\n") == 1 and "\r" not in message  # nothing redrawn over it
    assert f"{run / 'metrics.jsonl'}: no space left" in message
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2
    assert "free some space" in message  # the fix


# ---------------------------------------------------------------------------------------------
# a path that cannot be used names itself and what to do (the system's words alone did not)


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "model"
    tokenizer = BPETokenizer.train(["to be or not to be"] * 5, vocab_size=270, mode="bytes",
                                   progress=False)
    GPT(GPTConfig.preset("tiny", vocab_size=tokenizer.vocab_size, n_ctx=8)).save_pretrained(folder)
    tokenizer.save(folder)
    return folder


@pytest.mark.parametrize("out, advice", [
    ("a-file", "a file is in the way where a folder must be made"),  # was "File exists"
    ("a-file/below", "a part of this path is a file, not a folder"),  # was "Not a directory"
])
def test_a_path_in_the_way_names_itself_and_the_fix(tmp_path, model_dir, capsys, out, advice):
    (tmp_path / "a-file").write_text("the user's\n")
    status = main(["export", "--checkpoint", str(model_dir), "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{tmp_path / out}:" in err and advice in err and "give another path" in err
    assert (tmp_path / "a-file").read_text() == "the user's\n"


@pytest.mark.parametrize("code", [errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES,
                                  errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP])
def test_every_file_system_error_of_a_path_gets_advice(code):
    err = OSError(code, os.strerror(code), "some/path")
    status, message = _error_message(err, None, "minigpt1")
    assert status == 1 and message.startswith(f"error: some/path: {os.strerror(code)}; ")


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_force_starts_over_in_a_run_folder_reached_through_a_symbolic_link(corpus, tmp_path):
    # rmtree on the link itself failed: "Cannot call rmtree on a symbolic link"
    texts, tokenizer_dir = corpus
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    (real / "old-run.txt").write_text("what --force may delete\n")
    link.symlink_to(real)
    code = main(["pretrain", "--text-dir", str(texts), "--out", str(link), "--force",
                 "--tokenizer", str(tokenizer_dir), "--preset", "tiny", "--n-ctx", "32",
                 "--batch-size", "2", "--micro-batch-size", "2", "--eval-windows", "2",
                 "--max-steps", "2"])
    assert code == 0 and link.is_symlink()
    assert (real / "run.json").exists() and not (real / "old-run.txt").exists()
