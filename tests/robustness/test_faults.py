"""Faults a long run meets: the process killed (kill -9) while it writes a checkpoint, a full
disk or a refused permission at each stage of a save, Ctrl-C during training, and a NaN in a
gradient. Each must leave the last good checkpoint loadable and the run resumable.

MINIGPT1_KILL_TRIALS sets how many writers are killed (CI: 25, about 20 s);
`MINIGPT1_KILL_TRIALS=500 python -m pytest -s tests/robustness/test_faults.py` is the long
local run. MINIGPT1_KILL_SEED replays the random delays of an earlier run (it is printed).
"""

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from minigpt1.jobs.pretrain import PretrainPlan, run_pretraining
from minigpt1.training import lm_objective
from minigpt1.training.checkpoint import load_checkpoint, read_index, save_checkpoint
from minigpt1.training.lm_objective import TrainConfig
from minigpt1.training.update import Diverged
from tests.conftest import SMALL, start_minigpt1, wait_for

ROOT = Path(__file__).resolve().parents[2]
KILL_TRIALS = int(os.environ.get("MINIGPT1_KILL_TRIALS", "25"))
KILL_SEED = int(os.environ.get("MINIGPT1_KILL_SEED", str(time.time_ns() % 2**32)))

# ---------------------------------------------------------------------------------------------
# kill -9 while checkpoints are written

# The shapes of a small GPT (vocabulary 300, 4 layers of 128): ~1 MB of weights, ~3 MB per
# save with AdamW's two moments, so that a save takes a few tens of milliseconds.
SHAPES = {"tokens_embed.weight": (300, 128), "positions_embed.weight": (32, 128)}
for _i in range(4):
    SHAPES.update({f"h.{_i}.attn.c_attn.weight": (128, 384), f"h.{_i}.attn.c_attn.bias": (384,),
                   f"h.{_i}.mlp.c_fc.weight": (128, 512), f"h.{_i}.mlp.c_proj.weight": (512, 128)})


def weights(step, shapes=SHAPES):
    """Step `step`'s tensors: every value is a function of the step, so a checkpoint mixing
    two steps, or holding a torn array, is caught by comparing with weights(ckpt.step)."""
    return {name: np.full(shape, float(step), dtype=np.float32) for name, shape in shapes.items()}


def adamw_state(step, shapes=SHAPES):
    """What AdamW.state_dict() holds: the step, and one m and one v per tensor."""
    state = {"step": np.array(step, dtype=np.int64)}
    for name, value in weights(step, shapes).items():
        state[f"m.{name}"], state[f"v.{name}"] = value / 10, value / 100
    return state


WRITER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from minigpt1.training.checkpoint import save_checkpoint
    shapes = json.loads(sys.argv[2])
    step = 0
    while True:  # the same tensors as weights() and adamw_state() below
        step += 1
        params = {name: np.full(shape, float(step), dtype=np.float32)
                  for name, shape in shapes.items()}
        optimizer = {"step": np.array(step, dtype=np.int64)}
        for name, value in params.items():
            optimizer[f"m.{name}"], optimizer[f"v.{name}"] = value / 10, value / 100
        save_checkpoint(sys.argv[1], step, params, optimizer, {"total_steps": 10**6},
                        val_loss=1.0 / step)
        print(step, flush=True)  # step is complete
""")


def assert_is_step(ckpt, step):
    assert ckpt.step == step and ckpt.state["step"] == step
    assert ckpt.params.keys() == SHAPES.keys()
    for name, value in weights(step).items():
        assert np.array_equal(ckpt.params[name], value), name
    expected = adamw_state(step)
    assert ckpt.optimizer.keys() == expected.keys()
    for name, value in expected.items():
        assert np.array_equal(ckpt.optimizer[name], value), name


def leftovers(run_dir):
    """What a killed write left in checkpoints/ beyond index.json and the folders it names."""
    root = run_dir / "checkpoints"
    index = read_index(run_dir)
    named = {"index.json", index["last"], index.get("best")}
    return sorted(p.name for p in root.iterdir() if p.name not in named)


def kill_one_writer(run_dir, delay):
    """Start a writer, wait for its first complete checkpoint, SIGKILL it `delay` s later;
    returns the last step it reported complete."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir), json.dumps(SHAPES)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.strip() == "1", proc.stderr.read()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return int(([first] + rest.split())[-1])


def test_kill_9_during_checkpoint_writes_leaves_the_last_complete_step(tmp_path, record_property):
    rng = random.Random(KILL_SEED)
    outcomes = {"loadable": 0, "mid_write": 0, "finished_unreported": 0}
    for trial in range(KILL_TRIALS):
        run_dir = tmp_path / f"trial-{trial}"
        delay = rng.uniform(0.0, 0.25)  # several saves: the kill lands at any point of one
        done = kill_one_writer(run_dir, delay)
        context = f"trial {trial}, delay {delay:.4f} s, seed {KILL_SEED}"
        ckpt = load_checkpoint(run_dir)
        # the last reported step, or the one being written if it got as far as index.json
        assert done <= ckpt.step <= done + 1, context
        assert_is_step(ckpt, ckpt.step)
        assert load_checkpoint(run_dir, "best").step == ckpt.step, context
        outcomes["loadable"] += 1
        outcomes["mid_write"] += bool(leftovers(run_dir))
        outcomes["finished_unreported"] += ckpt.step == done + 1
        # a later save (what --resume does next) works and clears every leftover
        save_checkpoint(run_dir, ckpt.step + 1, weights(ckpt.step + 1),
                        adamw_state(ckpt.step + 1), {}, val_loss=0.0)
        assert_is_step(load_checkpoint(run_dir), ckpt.step + 1)
        assert leftovers(run_dir) == [], context
        shutil.rmtree(run_dir)
    summary = (f"kill -9 trials: {KILL_TRIALS}, loadable last-good checkpoint: "
               f"{outcomes['loadable']}/{KILL_TRIALS} (killed mid-write, leftovers found: "
               f"{outcomes['mid_write']}; killed after index.json but before the writer "
               f"reported: {outcomes['finished_unreported']}); seed {KILL_SEED}")
    print("\n" + summary)
    for key, value in {"kill_trials": KILL_TRIALS, "kill_seed": KILL_SEED, **outcomes}.items():
        record_property(key, value)
    assert outcomes["loadable"] == KILL_TRIALS


# ---------------------------------------------------------------------------------------------
# disk full and permission refused, at each stage of a save

SMALL_SHAPES = {"w": (3, 4), "b": (4,)}
# (test id, what the error message must name, what is made to fail, on which file)
STAGES = [
    ("temp-folder", "creating a temporary folder", "mkdtemp", None),
    ("params.npz", "writing params.npz", "savez", "params.npz"),
    ("optimizer.npz", "writing optimizer.npz", "savez", "optimizer.npz"),
    ("state.json", "writing state.json", "write_text", "state.json"),
    ("state.json-rename", "writing state.json", "replace", "state.json"),
    ("folder-rename", "renaming the temporary folder to step-0000002", "rename", None),
    ("index.json", "writing index.json", "write_text", "index.json"),
    ("index.json-rename", "writing index.json", "replace", "index.json"),
]


def inject(monkeypatch, how, target, code):
    """Make one stage of the next save fail with OSError(code), as a full disk or a refused
    permission would; a write fails after writing part of its file."""
    failure = OSError(code, os.strerror(code))

    def partial_then_fail(path, data):
        Path(path).write_bytes(data[: len(data) // 2])
        raise failure

    if how == "mkdtemp":
        def mkdtemp(*args, **kwargs):
            raise failure
        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    elif how == "savez":  # np.savez
        real_savez = np.savez

        def savez(file, *args, **kwargs):
            real_savez(file, *args, **kwargs)
            if Path(file).name == target:
                partial_then_fail(file, Path(file).read_bytes())
        monkeypatch.setattr(np, "savez", savez)
    elif how == "write_text":  # the JSON writer (fileio.write_json_atomic) on its temp file
        real_write_text = Path.write_text

        def write_text(self, text, *args, **kwargs):
            if self.name.startswith(f".{target}."):
                partial_then_fail(self, text.encode())
            return real_write_text(self, text, *args, **kwargs)
        monkeypatch.setattr(Path, "write_text", write_text)
    elif how == "rename":  # Path.rename of the checkpoint's temporary folder
        real_rename = Path.rename

        def rename(self, target_path):
            if self.name.startswith(".step-"):
                raise failure
            return real_rename(self, target_path)
        monkeypatch.setattr(Path, "rename", rename)
    else:  # os.replace of an atomic write's temp file over its target
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if Path(dst).name == target:
                raise failure
            return real_replace(src, dst, *args, **kwargs)
        monkeypatch.setattr(os, "replace", replace)


def save(run_dir, step, val_loss):
    return save_checkpoint(run_dir, step, weights(step, SMALL_SHAPES),
                           adamw_state(step, SMALL_SHAPES), {"note": step}, val_loss)


def contents(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES], ids=["ENOSPC", "EACCES"])
@pytest.mark.parametrize("stage, named, how, target", STAGES, ids=[s[0] for s in STAGES])
def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, stage, named, how,
                                                     target, code):
    save(tmp_path, 1, val_loss=2.0)
    with monkeypatch.context() as patch:
        inject(patch, how, target, code)
        with pytest.raises(OSError) as info:
            save(tmp_path, 2, val_loss=1.0)
    err = info.value
    assert err.errno == code and isinstance(err, PermissionError) == (code == errno.EACCES)
    message = str(err)
    assert f"could not save checkpoint step-0000002 in {tmp_path / 'checkpoints'}" in message
    assert f"{named} failed ({os.strerror(code)})" in message, message
    assert "unchanged" in message and "--resume" in message, message
    assert ("free some disk space" if code == errno.ENOSPC else "writable") in message, message

    for which in ("last", "best"):  # the previous checkpoint, whole
        ckpt = load_checkpoint(tmp_path, which)
        assert ckpt.step == 1 and ckpt.state["note"] == 1
        assert all(np.array_equal(ckpt.params[k], v)
                   for k, v in weights(1, SMALL_SHAPES).items())
    assert contents(tmp_path) == ["index.json", "step-0000001"]  # no temporary leftovers

    save(tmp_path, 2, val_loss=1.0)  # the same save, once the disk has room again
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.step == 2 and np.array_equal(ckpt.params["w"], weights(2, SMALL_SHAPES)["w"])
    assert load_checkpoint(tmp_path, "best").step == 2
    assert contents(tmp_path) == ["index.json", "step-0000002"]


def test_a_folder_left_by_a_killed_save_is_replaced(tmp_path):
    """Killed after the rename of step 2, before index.json: step-0000002 exists, unnamed.
    Saving step 2 again (a resumed run reaching it) must write it afresh, not keep it."""
    save(tmp_path, 1, val_loss=None)
    stale = tmp_path / "checkpoints" / "step-0000002"
    shutil.copytree(tmp_path / "checkpoints" / "step-0000001", stale)  # wrong content
    save(tmp_path, 2, val_loss=None)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.step == 2 and ckpt.state["note"] == 2
    assert np.array_equal(ckpt.params["w"], weights(2, SMALL_SHAPES)["w"])


# ---------------------------------------------------------------------------------------------
# training: Ctrl-C from the command line, a NaN in a gradient

FLAGS = ["--preset", "tiny", "--n-ctx", "32", "--batch-size", "4",  # the BPE is --tokenizer
         "--micro-batch-size", "2", "--warmup-steps", "4", "--eval-every", "4",
         "--eval-windows", "4", "--log-every", "1", "--lr", "3e-3"]



def metric_steps(run_dir):
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]


def test_ctrl_c_during_training_saves_and_resume_continues(tmp_path, corpus):
    texts, tokenizer = corpus
    out = tmp_path / "run"
    proc = start_minigpt1("pretrain", "--text-dir", texts, "--out", out, "--tokenizer",
                          tokenizer, "--max-steps", 60, *FLAGS)
    wait_for(lambda: len(metric_steps(out)) >= 2, proc)  # it is updating
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr  # cli.main's status for KeyboardInterrupt
    assert "Traceback" not in stderr, stderr
    stopped = load_checkpoint(out).step
    assert 2 <= stopped < 60, stderr
    assert f"interrupted: stopped at step {stopped}; continue with --resume" in stderr
    assert metric_steps(out)[-1] == stopped  # the update in flight was finished and logged

    resumed = start_minigpt1("pretrain", "--text-dir", texts, "--out", out, "--resume", *FLAGS)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert f"resuming {out} at step {stopped} of 60" in stdout
    assert "done: 60 updates" in stdout
    assert metric_steps(out) == list(range(1, 61))  # every step once, none lost or repeated
    assert load_checkpoint(out).step == 60


@pytest.mark.parametrize("tensor, bad_step", [("h.2.attn.c_attn.weight", 7),
                                              ("tokens_embed.weight", 8)])
def test_nan_gradient_stops_naming_it_and_the_run_resumes(tmp_path, corpus, monkeypatch,
                                                          tensor, bad_step):
    texts, tokenizer = corpus

    def run(out, **kw):
        plan = PretrainPlan(texts, out, "tiny", TrainConfig(max_steps=12, **SMALL),
                            tokenizer_dir=tokenizer, n_ctx=32, **kw)
        return run_pretraining(plan, progress=False)

    real = lm_objective.clip_and_check

    def poisoned(grads, loss, max_norm, step):  # step counts from 0: update step + 1
        if step + 1 == bad_step:
            grads[tensor].reshape(-1)[3] = np.nan
        return real(grads, loss, max_norm, step)

    out = tmp_path / "run"
    monkeypatch.setattr(lm_objective, "clip_and_check", poisoned)  # the one train_step calls
    with pytest.raises(Diverged, match=f"step {bad_step}: gradient {tensor} is not finite"):
        run(out)
    monkeypatch.setattr(lm_objective, "clip_and_check", real)

    good = load_checkpoint(out)  # the evaluation checkpoint before the NaN: step 4
    assert good.step == 4 and all(np.isfinite(p).all() for p in good.params.values())
    result = run(out, resume=True)  # the injection removed
    assert result["steps"] == 12 and np.isfinite(result["val_loss"])
    assert metric_steps(out) == list(range(1, 13))

    straight = run(tmp_path / "straight")  # and it is the run that never saw a NaN
    metrics = (out / "metrics.jsonl").read_text()
    assert metrics == (tmp_path / "straight" / "metrics.jsonl").read_text()
    assert result["val_loss"] == straight["val_loss"]
