"""`--resume` continues the run its run.json records, and nothing else.

A bare `pretrain --out R --resume` (or `finetune`) reproduces the uninterrupted run bit for bit
(metrics and weights); a flag that differs from the record is refused with exit status 2 and
every difference listed, except a budget extension (a larger --max-steps or --epochs, a
--minutes budget); texts or a tokenizer changed since the run started are refused, named; a
--minutes budget survives a run stopped before the budget was fitted.
"""

import json
import shutil

import numpy as np
import pytest

from minigpt1.cli import main
from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.training import lm_objective, loop
from minigpt1.training.checkpoint import load_checkpoint

FLAGS = ["--preset", "tiny", "--n-ctx", "32", "--batch-size", "4", "--micro-batch-size", "2",
         "--warmup-steps", "4", "--eval-every", "4", "--eval-windows", "4", "--log-every", "1",
         "--lr", "3e-3"]
FINETUNE = ["--task", "word-order", "--epochs", "2", "--batch-size", "4",
            "--micro-batch-size", "2", "--max-train-examples", "16", "--log-every", "1",
            "--eval-every", "2", "--lr", "1e-3"]


@pytest.fixture
def texts(corpus, tmp_path):
    """A copy of the corpus this test may change (the token cache goes beside it)."""
    shutil.copytree(corpus[0], tmp_path / "texts")
    return tmp_path / "texts"


def pretrain(out, *args):
    return main(["pretrain", "--out", str(out), *map(str, args)])


def fresh(out, texts, tokenizer, *args):
    return pretrain(out, "--text-dir", texts, "--tokenizer", tokenizer, *FLAGS, *args)


def fail_at_update(monkeypatch, bad):
    """Make update `bad` (counted from 1) raise, as a crash would: the checkpoints before it
    stay, and the command exits 1."""
    real = lm_objective.train_step

    def crashing(model, optimizer, train_ids, step, *args, **kwargs):
        if step + 1 == bad:
            monkeypatch.setattr(lm_objective, "train_step", real)  # the resume runs normally
            raise RuntimeError("injected crash")
        return real(model, optimizer, train_ids, step, *args, **kwargs)

    monkeypatch.setattr(lm_objective, "train_step", crashing)


def assert_same_run(a, b):
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    pa, pb = load_checkpoint(a).params, load_checkpoint(b).params
    assert pa.keys() == pb.keys()
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def run_json(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_a_bare_resume_is_the_uninterrupted_run(corpus, texts, tmp_path, monkeypatch, capsys):
    _, tokenizer = corpus
    assert fresh(tmp_path / "straight", texts, tokenizer, "--max-steps", 12) == 0
    fail_at_update(monkeypatch, 10)  # after the checkpoint of update 8
    assert fresh(tmp_path / "run", texts, tokenizer, "--max-steps", 12) == 1
    monkeypatch.chdir(tmp_path)  # wherever it is typed: nothing but the record counts
    assert pretrain(tmp_path / "run", "--resume") == 0
    assert f"resuming {tmp_path / 'run'} at step 8 of 12" in capsys.readouterr().out
    assert_same_run(tmp_path / "run", tmp_path / "straight")


def test_flags_that_differ_from_the_record_are_refused_all_listed(corpus, texts, tmp_path,
                                                                   capsys):
    _, tokenizer = corpus
    out = tmp_path / "run"
    assert fresh(out, texts, tokenizer, "--max-steps", 4) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    status = pretrain(out, "--resume", "--lr", "1e-3", "--preset", "small", "--seed", "3",
                      "--text-dir", tmp_path, "--max-steps", 2, "--micro-batch-size", "4")
    assert status == 2
    err = capsys.readouterr().err
    for flag in ("--lr 0.001", "--preset small", "--seed 3", f"--text-dir {tmp_path}",
                 "--max-steps 2", "--micro-batch-size 4"):
        assert flag in err, err
    assert "(the run's: 0.003)" in err and err.count("\n") == 1  # one paragraph
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # the values the run has, typed again, are no difference
    assert pretrain(out, "--resume", *FLAGS, "--text-dir", texts, "--tokenizer", tokenizer,
                    "--max-steps", 4) == 0


@pytest.mark.parametrize("change, named", [
    (lambda t: (t / "king_aldred.txt").write_text("another text\n" * 50), "king_aldred.txt "
                                                                          "changed"),
    (lambda t: (t / "new.txt").write_text("a text added later\n" * 50), "new.txt added"),
    (lambda t: (t / "king_aldred.txt").unlink(), "king_aldred.txt removed"),
])  # fmt: skip
def test_changed_texts_are_refused_naming_them(corpus, texts, tmp_path, capsys, change, named):
    _, tokenizer = corpus
    out = tmp_path / "run"
    assert fresh(out, texts, tokenizer, "--max-steps", 4) == 0
    change(texts)
    capsys.readouterr()
    assert pretrain(out, "--resume", "--max-steps", 8) == 1
    err = capsys.readouterr().err
    assert named in err and str(texts) in err, err
    assert load_checkpoint(out).step == 4


def test_a_swapped_tokenizer_of_the_same_size_is_refused(corpus, texts, tmp_path, capsys):
    _, tokenizer = corpus
    out = tmp_path / "run"
    assert fresh(out, texts, tokenizer, "--max-steps", 4) == 0
    one_text = sorted(texts.glob("*.txt"))[-1].read_text()  # other merges, the same size
    other = BPETokenizer.train([one_text], 300, mode="bytes")
    assert other.vocab_size == BPETokenizer.load(out / "tokenizer").vocab_size
    other.save(out / "tokenizer")
    capsys.readouterr()
    assert pretrain(out, "--resume", "--max-steps", 8) == 1
    assert f"{out / 'tokenizer'} is not the tokenizer the run started with" in \
        capsys.readouterr().err


def test_a_minutes_budget_survives_a_resume_before_it_was_fitted(corpus, texts, tmp_path,
                                                                 monkeypatch, capsys):
    _, tokenizer = corpus
    out = tmp_path / "run"
    fail_at_update(monkeypatch, 6)  # after the checkpoint of update 4; the fit is at update 10
    assert fresh(out, texts, tokenizer, "--minutes", "0.02", "--max-steps", 5000) == 1
    assert run_json(out)["total_steps"] is None  # not fitted yet
    assert pretrain(out, "--resume") == 0
    out_text = capsys.readouterr().out
    assert "of 5000" not in out_text and "updates planned" in out_text
    total = run_json(out)["total_steps"]  # recorded as soon as it was fitted
    assert load_checkpoint(out).step == total < 5000


def test_the_fitted_total_is_recorded_before_any_checkpoint(corpus, texts, tmp_path,
                                                            monkeypatch, capsys):
    _, tokenizer = corpus
    out = tmp_path / "run"
    fail_at_update(monkeypatch, 12)  # after the fit (update 10), before the first checkpoint
    # a budget that fits more than 12 updates even on a busy machine, capped to stay short
    assert fresh(out, texts, tokenizer, "--minutes", "0.5", "--max-steps", 30,
                 "--eval-every", 100) == 1
    total = run_json(out)["total_steps"]
    assert pretrain(out, "--resume") == 0  # from step 0 (no checkpoint), to the same total
    assert f"at step 0 of {total}" in capsys.readouterr().out
    assert load_checkpoint(out).step == total


def test_a_larger_max_steps_extends_the_run_and_is_recorded(corpus, texts, tmp_path, capsys):
    _, tokenizer = corpus
    out = tmp_path / "run"
    assert fresh(out, texts, tokenizer, "--max-steps", 8) == 0
    assert pretrain(out, "--resume", "--max-steps", 12) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))
    assert run_json(out)["plan"]["train"]["max_steps"] == 12
    capsys.readouterr()
    assert pretrain(out, "--resume") == 0  # the next bare resume knows the new end
    assert "at step 12 of 12" in capsys.readouterr().out


@pytest.mark.parametrize("field, value", [("text_dir", 3), ("cache_dir", ["x"]),
                                          ("vocab_size", "abc"), ("preset", "huge"),
                                          ("dropout", True), ("unknown", 1)])
def test_a_damaged_plan_in_run_json_is_named(corpus, texts, tmp_path, capsys, field, value):
    _, tokenizer = corpus
    out = tmp_path / "run"
    assert fresh(out, texts, tokenizer, "--max-steps", 4) == 0
    run = run_json(out)
    run["plan"][field] = value
    (out / "run.json").write_text(json.dumps(run))
    capsys.readouterr()
    assert pretrain(out, "--resume") == 1
    err = capsys.readouterr().err
    assert f"{out / 'run.json'}: bad 'plan' section" in err and "Traceback" not in err, err


# ---------------------------------------------------------------------------------------------
# fine-tuning


def finetune(out, *args):
    return main(["finetune", "--out", str(out), *map(str, args)])


def test_a_bare_finetune_resume_is_the_uninterrupted_run(corpus, tmp_path, monkeypatch,
                                                          capsys):
    texts, _ = corpus
    source = texts.parent / "first"  # the corpus fixture's one-update run
    assert finetune(tmp_path / "straight", "--checkpoint", source, *FINETUNE) == 0
    saved = loop.save_checkpoint

    def save_then_crash(run_dir, step, *args, **kwargs):
        saved(run_dir, step, *args, **kwargs)
        if step == 4:
            raise RuntimeError("injected crash")

    monkeypatch.setattr(loop, "save_checkpoint", save_then_crash)
    assert finetune(tmp_path / "run", "--checkpoint", source, *FINETUNE) == 1
    monkeypatch.setattr(loop, "save_checkpoint", saved)
    assert load_checkpoint(tmp_path / "run").step == 4
    assert finetune(tmp_path / "run", "--resume") == 0
    assert_same_run(tmp_path / "run", tmp_path / "straight")

    capsys.readouterr()
    assert finetune(tmp_path / "run", "--resume", "--lr", "1e-2", "--task", "genre") == 2
    err = capsys.readouterr().err
    assert "--lr 0.01" in err and "--task genre" in err, err
