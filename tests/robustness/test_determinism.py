"""Determinism: the same seed gives the same run bit for bit, a run killed (kill -9 or Ctrl-C)
and resumed ends exactly where the uninterrupted one does, and evaluation and greedy
generation never depend on a random state.

The runs are `python -m minigpt1 pretrain` in fresh processes, on CPU, with dropout on (the
tiny preset's 0.1), so that the dropout masks have to be reproduced too.
MINIGPT1_KILL_SEED replays the random kill moments of an earlier run (it is printed).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig
from minigpt1.jobs.pretrain import PretrainPlan, run_pretraining
from minigpt1.model.generate import generate
from minigpt1.training import lm_objective, loop
from minigpt1.training.checkpoint import load_checkpoint
from minigpt1.training.lm_objective import TrainConfig
from tests.conftest import SMALL, wait_for

ROOT = Path(__file__).resolve().parents[2]
KILL_SEED = int(os.environ.get("MINIGPT1_KILL_SEED", str(time.time_ns() % 2**32)))
STEPS = 24
FLAGS = ["--preset", "tiny", "--n-ctx", "32", "--batch-size", "4",  # the BPE is --tokenizer
         "--micro-batch-size", "2", "--warmup-steps", "4", "--eval-every", "4",
         "--eval-windows", "4", "--log-every", "1", "--lr", "3e-3", "--seed", "3",
         "--max-steps", str(STEPS)]


def start(corpus, out, *extra):
    """`python -m minigpt1 pretrain` into `out`, in a fresh process (not waited for)."""
    texts, tokenizer = corpus
    return subprocess.Popen([sys.executable, "-m", "minigpt1", "pretrain", "--text-dir",
                             str(texts), "--out", str(out), "--tokenizer", str(tokenizer),
                             *FLAGS, *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc, status=0):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    return out


def resume(corpus, out):
    texts, _ = corpus
    proc = subprocess.Popen([sys.executable, "-m", "minigpt1", "pretrain", "--text-dir",
                             str(texts), "--out", str(out), "--resume"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return finish(proc)


def assert_same_run(a, b):
    """Every metrics line (loss, lr, grad norm, validation loss) and every array of the final
    checkpoint (weights and AdamW moments), bit for bit."""
    lines_a = (a / "metrics.jsonl").read_text().splitlines()
    assert len(lines_a) == STEPS
    assert (b / "metrics.jsonl").read_text().splitlines() == lines_a
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.step == cb.step == STEPS
    for name in ca.params:
        assert np.array_equal(ca.params[name], cb.params[name]), name
    assert ca.optimizer.keys() == cb.optimizer.keys()
    for name in ca.optimizer:
        assert np.array_equal(ca.optimizer[name], cb.optimizer[name]), name


@pytest.fixture(scope="module")
def straight(corpus, tmp_path_factory):
    """The uninterrupted run every other run is compared with."""
    out = tmp_path_factory.mktemp("straight") / "run"
    finish(start(corpus, out))
    return out


def test_same_seed_gives_bit_identical_runs(corpus, straight, tmp_path):
    again = tmp_path / "again"
    finish(start(corpus, again))  # a second fresh process, same seed
    assert_same_run(straight, again)

    other = tmp_path / "other"  # and the comparison can tell runs apart: another seed differs
    finish(start(corpus, other, "--seed", "4"))
    a, b = ([json.loads(line)["loss"] for line in (run / "metrics.jsonl").open()]
            for run in (straight, other))
    assert a != b


def checkpoint_step(out):
    try:
        return load_checkpoint(out).step
    except (FileNotFoundError, ValueError):
        return None


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_interrupted_and_resumed_run_is_bit_identical(corpus, straight, tmp_path, how):
    rng = random.Random(KILL_SEED)
    trials = 3 if how == "SIGKILL" else 1
    for trial in range(trials):
        out = tmp_path / f"run-{trial}"
        proc = start(corpus, out)
        if how == "SIGKILL":  # at a random moment once a checkpoint exists
            wait_for(lambda out=out: checkpoint_step(out) is not None, proc)
            delay = rng.uniform(0.0, 0.5)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode in (-signal.SIGKILL, 0), err  # 0: it had already finished
        else:  # Ctrl-C in mid-run, between two checkpoints
            delay = None
            wait_for(lambda out=out: (out / "metrics.jsonl").exists() and len(
                (out / "metrics.jsonl").read_text().splitlines()) >= 3, proc)
            proc.send_signal(signal.SIGINT)
            finish(proc, status=130)
        stopped = load_checkpoint(out).step
        print(f"\n{how} trial {trial}: delay {delay}, resumed from step {stopped} of {STEPS} "
              f"(seed {KILL_SEED})")
        resume(corpus, out)
        assert_same_run(straight, out)


def test_killed_after_its_last_checkpoint_resumes_to_a_clean_end(corpus, straight, tmp_path):
    """Killed after the final checkpoint (while plotting, say): --resume has nothing left to
    train, and must still end normally (it used to crash printing a missing val_loss)."""
    out = tmp_path / "run"
    shutil.copytree(straight, out)
    printed = resume(corpus, out)
    assert f"resuming {out} at step {STEPS} of {STEPS}" in printed
    assert f"done: {STEPS} updates, validation loss" in printed
    assert_same_run(straight, out)


class Killed(BaseException):
    """Stands for a kill -9: nothing after it runs, no handler sees it."""


@pytest.mark.parametrize("moment", ["before", "after"])
def test_killed_next_to_a_checkpoint_resumes_bit_identical(corpus, tmp_path, monkeypatch,
                                                           moment):
    """A kill just before or just after the checkpoint of step 8 (an evaluation step): the
    resumed run must still log every step, its validation loss included, exactly once."""
    texts, tokenizer = corpus

    def run(out, **kw):
        plan = PretrainPlan(texts, out, "tiny", TrainConfig(max_steps=12, **SMALL),
                            tokenizer_dir=tokenizer, n_ctx=32, **kw)
        return run_pretraining(plan, progress=False)

    real = loop.save_checkpoint

    def save_then_die(run_dir, step, *args, **kwargs):
        if step == 8 and moment == "before":
            raise Killed
        real(run_dir, step, *args, **kwargs)
        if step == 8:
            raise Killed

    out = tmp_path / "run"
    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run(out)
    monkeypatch.setattr(loop, "save_checkpoint", real)
    assert load_checkpoint(out).step == (4 if moment == "before" else 8)
    run(out, resume=True)
    run(tmp_path / "straight")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 13))
    assert lines == (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()


# ---------------------------------------------------------------------------------------------
# evaluation and greedy generation

CFG = GPTConfig.preset("tiny", n_layer=2, n_embd=32, n_head=4, n_ctx=16, vocab_size=50,
                       embd_pdrop=0.3, attn_pdrop=0.3, resid_pdrop=0.3)


def test_evaluation_is_deterministic_and_dropout_free():
    model = GPT(CFG, seed=1)
    ids = np.random.default_rng(0).integers(0, CFG.vocab_size, size=(3, CFG.n_ctx + 1))
    first = model.lm_loss(ids)
    logits = model.forward(ids[:, :-1])
    assert model.lm_loss(ids) == first  # bit for bit

    # advance the model's own generator, the one dropout draws from when none is passed
    model.forward(ids[:, :-1], train=True)
    loss, _ = model.lm_loss_and_grads(ids, train=True)
    assert loss != first  # dropout was on there, and it changes the loss
    assert model.lm_loss(ids) == first
    assert np.array_equal(model.forward(ids[:, :-1]), logits)

    # the same weights with every dropout rate 0: the same numbers, so evaluation has none
    rates = dict(embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    no_dropout = GPT(replace(CFG, **rates), params=model.params)
    assert no_dropout.lm_loss(ids) == first
    assert np.array_equal(no_dropout.forward(ids[:, :-1]), logits)
    assert lm_objective.evaluate(model, ids, 2) == lm_objective.evaluate(no_dropout, ids, 2)


def test_greedy_generation_is_deterministic():
    model = GPT(CFG, seed=2)
    prompt = [[1, 2, 3], [4, 5, 6]]
    first = generate(model, prompt, 20, temperature=0, seed=0)  # past n_ctx: the window slides
    model.forward(np.array(prompt), train=True)  # move the model's generator on
    assert np.array_equal(generate(model, prompt, 20, temperature=0, seed=0), first)
    assert np.array_equal(generate(model, prompt, 20, temperature=0, seed=123), first)
    assert np.array_equal(generate(model, prompt, 20, temperature=0, use_cache=False), first)
