"""Checkpoints: round trip, last and best, pruning, and a writer killed mid-save."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from minigpt1.training.checkpoint import load_checkpoint, read_index, save_checkpoint, snapshots
from minigpt1.training.lm_objective import TrainConfig


def arrays(step):
    return {"w": np.full((3, 4), float(step), dtype=np.float32), "b": np.arange(4.0) + step}


def moments(step):
    """An AdamW state for arrays(step): the step and one m and one v per tensor."""
    state = {"step": np.array(step)}
    for name, value in arrays(step).items():
        state[f"m.{name}"], state[f"v.{name}"] = value / 10, value / 100
    return state


def test_round_trip_last_and_best(tmp_path):
    save_checkpoint(tmp_path, 10, arrays(10), moments(10), {"note": "a"}, val_loss=2.0)
    save_checkpoint(tmp_path, 20, arrays(20), moments(20), {"note": "b"}, val_loss=2.5)
    last, best = load_checkpoint(tmp_path), load_checkpoint(tmp_path, "best")
    assert last.step == 20 and best.step == 10  # 2.5 is worse than 2.0
    assert np.array_equal(last.params["w"], arrays(20)["w"])
    assert last.params["w"].dtype == np.float32
    assert last.state["note"] == "b" and int(last.optimizer["step"]) == 20
    save_checkpoint(tmp_path, 30, arrays(30), moments(30), {}, val_loss=1.0)
    folders = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert folders == ["step-0000030"]  # last == best; the others were pruned
    assert read_index(tmp_path)["best_val_loss"] == 1.0


def test_kept_snapshots_survive_pruning_and_load_by_name(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, arrays(step), moments(step), {}, val_loss=5.0 - step / 10,
                        keep=step % 20 == 0)
    assert snapshots(tmp_path) == ["step-0000020", "step-0000040"]
    folders = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert folders == ["step-0000020", "step-0000040"]  # 10 and 30 pruned; 40 is last and best
    snapshot = load_checkpoint(tmp_path, "step-0000020")
    assert snapshot.step == 20 and np.array_equal(snapshot.params["w"], arrays(20)["w"])
    with pytest.raises(ValueError, match="has no 'step-0000030' checkpoint"):
        load_checkpoint(tmp_path, "step-0000030")


def test_keep_every_must_be_a_multiple_of_eval_every():
    assert TrainConfig(eval_every=250, keep_every=500).keep_every == 500
    with pytest.raises(ValueError, match="multiple of eval_every"):
        TrainConfig(eval_every=250, keep_every=300)


def test_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, 1, arrays(1), moments(1), {})
    with pytest.raises(ValueError, match="no 'best' checkpoint"):
        load_checkpoint(tmp_path, "best")
    index = tmp_path / "checkpoints" / "index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99"):
        load_checkpoint(tmp_path)


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from minigpt1.training.checkpoint import save_checkpoint
    step = 0
    while True:
        step += 1
        params = {f"w{i}": np.full((256, 1024), float(step), dtype=np.float32) for i in range(8)}
        optimizer = {"step": np.array(step)}
        optimizer.update({f"{m}.{name}": w for name, w in params.items() for m in "mv"})
        save_checkpoint(sys.argv[1], step, params, optimizer, {}, val_loss=1.0 / step)
        print(step, flush=True)
""")


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.7])
def test_killed_writer_leaves_a_loadable_checkpoint(tmp_path, delay):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    first = proc.stdout.readline()  # wait for one complete checkpoint
    assert first.strip() == "1"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: mid-write, most likely
    proc.wait()
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.step >= 1
    for value in ckpt.params.values():  # complete, and every array from the same step
        assert value.shape == (256, 1024) and np.all(value == ckpt.step)
    assert load_checkpoint(tmp_path, "best").step == ckpt.step


def test_a_reader_follows_a_writer_that_pruned_the_checkpoint_it_was_reading(tmp_path,
                                                                                monkeypatch):
    # generate and export read a run while it trains: between reading the index and the
    # files, the run saves step 30 and prunes step 20, which the index named a moment ago
    from minigpt1.training import checkpoint

    save_checkpoint(tmp_path, 10, arrays(10), moments(10), {}, val_loss=1.0)
    save_checkpoint(tmp_path, 20, arrays(20), moments(20), {}, val_loss=2.0)
    load_named, saves = checkpoint._load_named, []

    def a_save_in_between(run_dir, index, which):
        if not saves:
            saves.append(save_checkpoint(tmp_path, 30, arrays(30), moments(30), {}, 3.0))
        return load_named(run_dir, index, which)

    monkeypatch.setattr(checkpoint, "_load_named", a_save_in_between)
    assert load_checkpoint(tmp_path).step == 30 and saves
    # a folder that is broken with no writer moving on is still an error, not a loop
    (tmp_path / "checkpoints" / "step-0000030" / "optimizer.npz").unlink()
    with pytest.raises(Exception, match="optimizer.npz"):
        load_checkpoint(tmp_path)
