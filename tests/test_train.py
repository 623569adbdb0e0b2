"""Pre-training end to end on the sample corpus: it learns, it resumes bit for bit, it stops
cleanly on Ctrl-C, and it refuses what it must refuse."""

import json
import os
import signal

import numpy as np
import pytest

from minigpt1 import GPT
from minigpt1.corpus.text_folders import SAMPLE_DIR
from minigpt1.jobs.pretrain import PretrainPlan, run_pretraining
from minigpt1.training import lm_objective as train
from minigpt1.training import loop
from minigpt1.training.checkpoint import load_checkpoint
from minigpt1.training.lm_objective import TrainConfig
from minigpt1.training.update import Diverged

SMALL = dict(batch_size=4, micro_batch_size=2, warmup_steps=4, eval_every=4, eval_windows=4,
             log_every=1, lr=3e-3)


def run(out, tokenizer=None, **overrides):
    """The tiny preset with short windows on the sample corpus: a second or two per run."""
    kw = dict(preset="tiny", n_ctx=32, vocab_size=300, bpe_mode="bytes",
              cache_dir=out.parent / "cache", train=TrainConfig(max_steps=12, **SMALL))
    kw.update(overrides)
    plan = PretrainPlan(SAMPLE_DIR, out, tokenizer_dir=tokenizer, **kw)
    return run_pretraining(plan, progress=False)


def metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    keys = ("step", "loss", "lr", "grad_norm", "val_loss")  # everything but timings
    return [{k: v for k, v in json.loads(line).items() if k in keys} for line in lines]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """Train the sample corpus's tokenizer once; the runs below reuse it."""
    out = tmp_path_factory.mktemp("first")
    run(out, train=TrainConfig(max_steps=1, **SMALL))
    return out / "tokenizer"


def test_training_lowers_validation_loss(tmp_path, tokenizer_dir):
    tcfg = TrainConfig(max_steps=200, **{**SMALL, "eval_every": 200, "warmup_steps": 10,
                                         "lr": 1e-3})
    result = run(tmp_path, tokenizer_dir, train=tcfg)
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    vocab = result["tokenizer"].vocab_size
    assert abs(first["loss"] - np.log(vocab)) < 0.3  # starts as a uniform guess
    # measured: 5.70 -> 3.64 nats per token; demand a drop of at least 1.5
    assert result["val_loss"] < np.log(vocab) - 1.5, result["val_loss"]
    assert (tmp_path / "checkpoints" / "index.json").exists()
    assert result["val_bits_per_byte"] > 0
    assert (tmp_path / "loss.png").exists() and (tmp_path / "lr.png").exists()


def test_resume_is_bit_exact(tmp_path, tokenizer_dir, monkeypatch):
    straight = tmp_path / "straight"
    run(straight, tokenizer_dir)

    # the same run, interrupted by a real SIGINT after step 6, then resumed
    interrupted = tmp_path / "interrupted"
    real_step = train.train_step

    def step_then_interrupt(model, optimizer, ids, step, *args):
        out = real_step(model, optimizer, ids, step, *args)
        if step + 1 == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(train, "train_step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt, match="stopped at step 6"):
        run(interrupted, tokenizer_dir)
    monkeypatch.setattr(train, "train_step", real_step)
    assert load_checkpoint(interrupted).step == 6  # Ctrl-C saved a checkpoint first
    description = json.loads((interrupted / "run.json").read_text())
    assert description["plan"]["preset"] == "tiny"  # the plan that started the run
    assert description["plan"]["train"] == description["train"]
    del description["plan"]  # as in a run folder written before plans: it resumes the same
    (interrupted / "run.json").write_text(json.dumps(description))
    run(interrupted, resume=True)

    assert metrics(interrupted) == metrics(straight)  # every float, bit for bit
    a, b = load_checkpoint(straight), load_checkpoint(interrupted)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_divergence_stops_with_the_tensor_named(tmp_path, tokenizer_dir, monkeypatch):
    calls = []
    real = GPT.lm_loss_and_grads

    def poisoned(self, *args, **kwargs):  # a NaN appears in one gradient at step 6
        loss, grads = real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 21:  # 4 shards per step (2 micro-batches in halves): one of step 6
            grads["h.1.mlp.c_fc.weight"][0, 0] = np.nan
        return loss, grads

    monkeypatch.setattr(GPT, "lm_loss_and_grads", poisoned)
    with pytest.raises(Diverged, match="step 6: gradient h.1.mlp.c_fc.weight is not finite"):
        run(tmp_path, tokenizer_dir)
    assert load_checkpoint(tmp_path).step == 4  # the last good checkpoint is kept


def test_refuses_to_overwrite_or_resume_nothing(tmp_path, tokenizer_dir):
    out = tmp_path / "run"
    run(out, tokenizer_dir, train=TrainConfig(max_steps=4, **SMALL))
    with pytest.raises(FileExistsError, match="holds another run.*--resume.*--force"):
        run(out, tokenizer_dir)
    run(out, tokenizer_dir, force=True, train=TrainConfig(max_steps=4, **SMALL))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run(tmp_path / "missing", resume=True)


def test_resume_refuses_a_changed_tokenizer(tmp_path, tokenizer_dir):
    out = tmp_path / "run"
    run(out, tokenizer_dir, train=TrainConfig(max_steps=4, **SMALL))
    other = tmp_path / "other"
    run(other, train=TrainConfig(max_steps=1, **SMALL), vocab_size=280)
    for f in (other / "tokenizer").iterdir():  # swap in a tokenizer of another size
        (out / "tokenizer" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ValueError, match="tokenizer has 280 tokens but its model expects 300"):
        run(out, resume=True)
    # the two tokenizers encoded the same texts into two different cached arrays
    cached = sorted((tmp_path / "cache").glob("train-*.npz"))
    maxima = sorted(int(np.load(f, allow_pickle=False)["ids"].max()) for f in cached)
    assert len(cached) == 2 and maxima[0] < 280 <= maxima[1] < 300


def test_train_config_checks():
    with pytest.raises(ValueError, match="multiple of micro_batch_size"):
        TrainConfig(batch_size=6, micro_batch_size=4)


def test_resume_drops_a_half_written_metrics_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0, "lr": 0.1}) for s in (1, 2, 3)]
    path.write_text("\n".join(lines) + '\n{"step": 4, "lo', encoding="utf-8")
    loop.truncate_metrics(path, 2)
    assert path.read_text(encoding="utf-8") == lines[0] + "\n" + lines[1] + "\n"


def test_a_time_budget_sets_the_number_of_updates(tmp_path, tokenizer_dir):
    tcfg = TrainConfig(max_steps=10**6, minutes=0.05, **SMALL)  # 3 seconds
    result = run(tmp_path, tokenizer_dir, train=tcfg)
    assert 10 <= result["steps"] < 10**6
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == result["steps"] and "val_loss" in last  # evaluated at the end
    assert load_checkpoint(tmp_path).state["total_steps"] == result["steps"]


def test_a_budget_smaller_than_the_timed_updates_still_ends_evaluated(tmp_path, tokenizer_dir):
    # the 10 updates that time the step are done before the budget is known: a budget that
    # fits fewer must end right there, evaluated, not skip its final evaluation
    tcfg = TrainConfig(max_steps=10**6, minutes=1e-5, **{**SMALL, "eval_every": 10**6})
    result = run(tmp_path, tokenizer_dir, train=tcfg)
    assert result["steps"] == loop.MEASURED_STEPS + 2 and result["val_loss"] is not None
    assert load_checkpoint(tmp_path).step == result["steps"]


def test_a_budget_is_fitted_at_the_end_of_warm_up_and_halfway_from_there(tmp_path,
                                                                        monkeypatch):
    """Three fits, each timed since the one before: after 10 updates, at the warm-up's end
    (20) and halfway from there. A fake clock: 1 s per update up to the 10th, 0.5 s up to the
    30th, then 0.25 s; each evaluation (every 15 updates) 2 s."""
    now = [0.0]
    monkeypatch.setattr(loop.time, "perf_counter", lambda: now[0])

    def update(step, total):
        now[0] += 1.0 if step < 10 else 0.5 if step < 30 else 0.25
        return {"loss": 1.0}

    def evaluate(step):
        now[0] += 2.0
        return {"val_loss": 1.0}

    fitted = []
    objective = loop.Objective("test", update, evaluate, lambda *args: None, 1, "ex")
    budget = loop.Budget(minutes=1.0, flops_per_update=1.0, fitted=fitted.append, warmup_end=20)
    done = loop.train(objective, loop.Schedule(0, 1000, eval_every=15, log_every=100,
                                               budget=budget), tmp_path, progress=False)
    # after 10: 8 s for updates 3-10, 10 s in all, 0.95 * 60 - 10 = 47 s left: 10 + 47
    # after 20: 10 x 0.5 s + an evaluation since, 17 s in all: 20 + int(40 / 0.7) = 77
    # after (20 + 77) // 2 = 48: 10 x 0.5 + 18 x 0.25 + two evaluations = 13.5 s since,
    # 30.5 s in all: 48 + int(26.5 / (13.5 / 28)) = 102
    assert fitted == [57, 77, 102]
    assert done.steps == 102


def test_a_budget_is_fitted_twice_when_warm_up_ends_before_the_timing(tmp_path):
    fitted = []
    objective = loop.Objective("test", lambda step, total: {"loss": 1.0},
                               lambda step: {"val_loss": 1.0}, lambda *args: None, 1, "ex")
    budget = loop.Budget(minutes=None, flops_per_update=1.0, fitted=fitted.append, warmup_end=5)
    loop.train(objective, loop.Schedule(0, 30, eval_every=100, log_every=100, budget=budget),
               tmp_path, progress=False)
    assert fitted == [30, 30]  # after 10 updates and halfway from there, at 20


def test_a_run_that_cannot_fit_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    from minigpt1.training import estimate

    monkeypatch.setattr(estimate, "memory_limits", lambda: {"a test's limit": 2**20})  # 1 MiB
    with pytest.raises(ValueError, match="micro-batch"):
        run(tmp_path / "run")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_the_loop_evaluates_logs_and_then_saves(tmp_path):
    """The loop's contract with its callbacks, without a model: evaluations every eval_every
    updates and after the last, each written to metrics.jsonl before its checkpoint."""
    saved = []

    def save(step, total, val_loss):
        logged = (tmp_path / "metrics.jsonl").read_text().splitlines()
        saved.append((step, total, val_loss, json.loads(logged[-1])["step"]))

    objective = loop.Objective("test", lambda step, total: {"loss": float(step)},
                               lambda step: {"val_loss": step / 10}, save, 1, "ex")
    done = loop.train(objective, loop.Schedule(0, 5, eval_every=2, log_every=10), tmp_path,
                      progress=False)
    assert saved == [(2, 5, 0.2, 2), (4, 5, 0.4, 4), (5, 5, 0.5, 5)]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [{"step": s, "loss": s - 1.0, "val_loss": s / 10} for s in (2, 4, 5)]
    assert done.steps == 5 and done.validation == {"val_loss": 0.5}
