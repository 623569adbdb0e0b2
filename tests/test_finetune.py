"""Fine-tuning end to end: a small model learns a fixture task well above chance, through
the job (run folder, checkpoints, results) and the command line."""

import json

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig
from minigpt1.cli import main
from minigpt1.finetuning.transformations import Example, TaskData, TaskSpec
from minigpt1.jobs.finetune import FinetunePlan, run_finetuning
from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.training.task_objective import FinetuneConfig, batch_indices, schedule_warning

POSITIVE = ["good", "great", "happy", "lovely", "bright"]
NEGATIVE = ["bad", "awful", "sad", "grim", "dark"]
FILLER = ["the", "day", "was", "a", "very", "quite", "and", "then", "it", "so"]
SPEC = TaskSpec("mood", "classification", ("negative", "positive"), "accuracy")


def mood_sentence(rng):
    """4-7 filler words with one mood word somewhere: the label is that word's mood."""
    words = list(rng.choice(FILLER, size=rng.integers(4, 8)))
    label = int(rng.integers(2))
    words.insert(int(rng.integers(len(words) + 1)), rng.choice([NEGATIVE, POSITIVE][label]))
    return " ".join(words), label


def mood_task(sizes=(256, 64, 64), seed=0):
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in zip(("train", "validation", "test"), sizes, strict=True):
        splits[split] = [Example((text,), label, f"{split}:{i}")
                         for i, (text, label) in enumerate(mood_sentence(rng) for _ in range(n))]
    return TaskData(SPEC, splits)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small untrained GPT saved as a model folder with its tokenizer."""
    folder = tmp_path_factory.mktemp("model")
    text = " ".join(POSITIVE + NEGATIVE + FILLER)
    tokenizer = BPETokenizer.train([text] * 5, vocab_size=300, mode="bytes", progress=False)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_ctx=32, n_embd=32, n_layer=2, n_head=2)
    GPT(cfg, seed=0).save_pretrained(folder)
    tokenizer.save(folder)
    return folder


FAST = FinetuneConfig(epochs=8, batch_size=16, micro_batch_size=8, lr=3e-3, warmup=0.1,
                      log_every=4)


def fine_tune(model_dir, name, out, task, fcfg=FAST, **plan):
    """The fine-tuning job on TaskData built here, without a progress bar."""
    plan = FinetunePlan(model_dir, name, out, finetune=fcfg, **plan)
    return run_finetuning(plan, task, progress=False)


def test_fine_tuning_beats_chance(model_dir, tmp_path):
    result = fine_tune(model_dir, "mood", tmp_path / "run", mood_task())
    # chance is 50%; a keyword task this plain must be learned almost perfectly
    assert result["scores"]["test"] >= 0.9, result["scores"]
    assert result["steps"] == 8 * 256 // 16
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved == {"task": "mood", "metric": "accuracy", **result["scores"],
                     "metrics": {split: {"accuracy": value}
                                 for split, value in result["scores"].items()}}
    for name in ("run.json", "metrics.jsonl", "loss.png", "tokenizer/vocab.json"):
        assert (tmp_path / "run" / name).exists(), name
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")
             if x]
    assert any("val_accuracy" in x for x in lines) and all(x["l1"] is not None for x in lines)


def test_l2_only_logs_no_l1(model_dir, tmp_path):
    fcfg = FinetuneConfig(epochs=1, batch_size=16, lm_coef=0.0, log_every=1)
    fine_tune(model_dir, "mood", tmp_path / "run", mood_task((32, 8, 8)), fcfg)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert lines and all(json.loads(x)["l1"] is None for x in lines)


def test_batches_cover_each_epoch_once():
    fcfg = FinetuneConfig(batch_size=4, seed=3)
    epoch = np.concatenate([batch_indices(10, fcfg, step) for step in range(2)])
    assert len(set(epoch.tolist())) == 8  # two whole batches; the last 2 examples wait
    assert not np.array_equal(batch_indices(10, fcfg, 0), batch_indices(10, fcfg, 2))


def write_sst2(folder, rows_by_split):
    folder.mkdir()
    for name, rows in rows_by_split.items():
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in rows]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_cli_finetune_on_glue_files(model_dir, tmp_path, capsys):
    task = mood_task((64, 16, 0))
    rows = {f"{name}.tsv": [(e.segments[0], e.label) for e in task.splits[split]]
            for name, split in (("train", "train"), ("dev", "validation"))}
    write_sst2(tmp_path / "SST-2", rows)
    code = main(["finetune", "--checkpoint", str(model_dir), "--task", "sst2", "--data",
                 str(tmp_path / "SST-2"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "16", "--lr", "1e-3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "[_start_]" in out and "[_classify_]" in out  # the layout of a first example
    assert "validation" in json.loads((tmp_path / "run" / "results.json").read_text())


@pytest.mark.parametrize("args, status, message", [
    (["--task", "nope"], 2, "unknown task 'nope'"),  # 2: the command line is wrong
    (["--task", "sst2"], 2, "give --data"),
    (["--task", "sst2", "--data", "missing-folder"], 1, "missing-folder"),  # 1: what it names
    (["--task", "genre", "--lm-coef", "-1"], 2, "--lm-coef: must be a finite number >= 0"),
])  # fmt: skip
def test_cli_finetune_errors(model_dir, tmp_path, capsys, args, status, message):
    code = main(["finetune", "--checkpoint", str(model_dir), "--out", str(tmp_path / "r"), *args])
    assert code == status
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_cli_no_truncation_names_the_line(model_dir, tmp_path, capsys):
    long = " ".join(["the day was very good"] * 20)  # far more than the model's 32 positions
    write_sst2(tmp_path / "SST-2", {"train.tsv": [("a good day", 1), (long, 0)],
                                    "dev.tsv": [("a sad day", 0)]})
    args = ["finetune", "--checkpoint", str(model_dir), "--task", "sst2", "--data",
            str(tmp_path / "SST-2"), "--out", str(tmp_path / "r")]
    assert main([*args, "--no-truncation"]) == 1
    err = capsys.readouterr().err
    assert "train.tsv:3:" in err and "n_ctx=32" in err
    assert not (tmp_path / "r").exists()
    assert main([*args, "--epochs", "1"]) == 0  # by default the text is cut, and it says so
    assert "train: 1 of 2 examples were cut to fit n_ctx=32" in capsys.readouterr().out


def test_checkpoint_without_tokenizer(model_dir, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((model_dir / name).read_bytes())
    code = main(["finetune", "--checkpoint", str(bare), "--task", "genre", "--out",
                 str(tmp_path / "r")])
    assert code == 1 and "has no tokenizer" in capsys.readouterr().err


def test_resume_is_bit_exact(model_dir, tmp_path, monkeypatch):
    import os
    import signal

    from minigpt1.training import task_objective
    from minigpt1.training.checkpoint import load_checkpoint

    fcfg = FinetuneConfig(epochs=2, batch_size=16, micro_batch_size=8, lr=1e-3, log_every=1)
    task = mood_task((64, 16, 16))
    straight = fine_tune(model_dir, "mood", tmp_path / "a", task, fcfg)
    real_step = task_objective.finetune_step

    def step_then_interrupt(model, optimizer, train, step, *args):
        out = real_step(model, optimizer, train, step, *args)
        if step + 1 == 3:  # in the middle of the first epoch
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(task_objective, "finetune_step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt, match="stopped at step 3"):
        fine_tune(model_dir, "mood", tmp_path / "b", task, fcfg)
    monkeypatch.setattr(task_objective, "finetune_step", real_step)
    description = json.loads((tmp_path / "b" / "run.json").read_text())
    assert description["plan"]["finetune"] == description["finetune"]  # the plan is recorded
    del description["plan"]  # as in a run folder written before plans: it resumes the same
    (tmp_path / "b" / "run.json").write_text(json.dumps(description))
    resumed = fine_tune(model_dir, "mood", tmp_path / "b", task, resume=True)
    assert resumed["scores"] == straight["scores"]
    read = [(tmp_path / run / "metrics.jsonl").read_text() for run in ("a", "b")]
    assert read[0] == read[1]  # every logged float, bit for bit
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert set(a.params) == set(b.params) and "clf.weight" in a.params
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_regression_and_multiple_choice_run_end_to_end(model_dir, tmp_path):
    # one short run per remaining head: a score in [0, 5] (STS-B-like) and 3 answers
    rng = np.random.default_rng(1)
    reg = TaskSpec("score", "similarity", (), "pearson")
    pairs = [(mood_sentence(rng), mood_sentence(rng)) for _ in range(48)]
    examples = [Example((a[0], b[0]), 2.5 * (a[1] + b[1]), f"pair:{i}")
                for i, (a, b) in enumerate(pairs)]
    task = TaskData(reg, {"train": examples[:32], "validation": examples[32:]})
    fcfg = FinetuneConfig(epochs=2, batch_size=8, lr=1e-3)
    result = fine_tune(model_dir, "score", tmp_path / "reg", task, fcfg)
    assert -1.0 <= result["scores"]["validation"] <= 1.0
    # Pearson is STS-B's metric, and GLUE reports Spearman beside it: both, everywhere
    values = result["metrics"]["validation"]
    assert list(values) == ["pearson", "spearman"] and -1.0 <= values["spearman"] <= 1.0
    assert values["pearson"] == result["scores"]["validation"]
    saved = json.loads((tmp_path / "reg" / "results.json").read_text())
    assert saved["metrics"] == result["metrics"]
    logged = json.loads((tmp_path / "reg" / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged["val_spearman"] == values["spearman"]  # the last evaluation is the final
    mc = TaskSpec("pick", "multiple_choice", ("A", "B", "C"), "accuracy")
    examples = [Example(("the day was", *(mood_sentence(rng)[0] for _ in range(3))), i % 3)
                for i in range(24)]
    task = TaskData(mc, {"train": examples[:16], "validation": examples[16:]})
    result = fine_tune(model_dir, "pick", tmp_path / "mc", task, fcfg)
    assert result["scores"]["validation"] in {i / 8 for i in range(9)}


def test_a_run_that_cannot_fit_is_refused_before_anything_is_written(model_dir, tmp_path,
                                                                      monkeypatch):
    from minigpt1.training import estimate

    monkeypatch.setattr(estimate, "memory_limits", lambda: {"a test's limit": 2**20})  # 1 MiB
    with pytest.raises(ValueError, match="micro-batch"):
        fine_tune(model_dir, "mood", tmp_path / "run", mood_task())
    assert not (tmp_path / "run").exists()


def test_a_short_last_micro_batch_gives_the_update_of_the_whole_batch(tmp_path):
    """10 examples (a task smaller than the batch of 32) in micro-batches of 4, 4 and 2 give
    the update of one micro-batch of 10 (dropout off)."""
    text = " ".join(POSITIVE + NEGATIVE + FILLER)
    tokenizer = BPETokenizer.train([text] * 5, vocab_size=300, mode="bytes", progress=False)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_ctx=32, n_embd=32, n_layer=2, n_head=2,
                    embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    GPT(cfg, seed=0).save_pretrained(tmp_path / "model")
    tokenizer.save(tmp_path / "model")
    params = {}
    for micro in (4, 10):
        fcfg = FinetuneConfig(epochs=2, batch_size=32, micro_batch_size=micro, lr=1e-2,
                              clf_pdrop=0.0, max_train_examples=10, log_every=1)
        result = fine_tune(tmp_path / "model", "mood", tmp_path / f"micro{micro}", mood_task(),
                           fcfg)
        assert result["steps"] == 2
        params[micro] = result["model"].params
    for name, value in params[10].items():
        np.testing.assert_allclose(params[4][name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_schedule_that_cannot_learn_is_named_with_its_numbers_and_its_fix():
    # 32 examples, batch 32, 1 epoch: one update, the warm-up's first, at lr 0
    warning = schedule_warning(32, FinetuneConfig(epochs=1))
    assert "every update runs at learning rate 0" in warning
    assert "32 training examples in batches of 32 make 1 update(s) per epoch" in warning
    assert "warm-up (0.2% of them, rounded up) takes 1" in warning
    assert "--warmup 0" in warning and "--max-train-examples" in warning
    # 3 epochs of one update each: two learn, but all of the first epoch is warm-up
    assert "the whole first epoch is warm-up" in schedule_warning(32, FinetuneConfig())
    assert schedule_warning(20, FinetuneConfig(epochs=1, batch_size=32, warmup=0.0)) is None
    assert schedule_warning(2000, FinetuneConfig()) is None  # the ablation's: 62 per epoch
    assert schedule_warning(64, FinetuneConfig(batch_size=32, epochs=1)) is None  # 2 updates


def test_the_warning_is_printed_and_true(model_dir, tmp_path, capsys):
    from minigpt1.jobs.run_folder import load_model

    fcfg = FinetuneConfig(epochs=1, batch_size=32, lr=1e-2)  # 16 examples: one update, lr 0
    result = fine_tune(model_dir, "mood", tmp_path / "run", mood_task((16, 8, 8)), fcfg)
    assert "WARNING: every update runs at learning rate 0" in capsys.readouterr().out
    before = load_model(model_dir)[0].params
    for name in ("h.0.attn.c_attn.weight", "h.1.mlp.c_fc.bias", "positions_embed.weight"):
        np.testing.assert_array_equal(result["model"].params[name], before[name])  # unchanged
    fine_tune(model_dir, "mood", tmp_path / "ok", mood_task((32, 8, 8)),
              FinetuneConfig(epochs=1, batch_size=16))
    assert "WARNING" not in capsys.readouterr().out


def write_story_cloze(folder, n_val, n_test=2):
    """A Story Cloze folder: a val and a test CSV of n_val and n_test made-up stories."""
    import csv

    header = ["InputStoryid", *(f"InputSentence{i}" for i in range(1, 5)),
              "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2", "AnswerRightEnding"]
    folder.mkdir()
    for name, n in (("cloze_test_val.csv", n_val), ("cloze_test_test.csv", n_test)):
        with open(folder / name, "w", newline="", encoding="utf-8") as f:
            rows = [[f"id{i}", *(f"Line {k} of {i}." for k in range(4)), "Good.", "Bad.", "1"]
                    for i in range(n)]
            csv.writer(f).writerows([header, *rows])


def test_n_validation_sets_the_stories_rocstories_holds_out(tmp_path):
    from minigpt1.jobs.finetune import plan_task

    write_story_cloze(tmp_path / "roc", n_val=10)
    plan = FinetunePlan("unused", "rocstories", tmp_path / "run", data=tmp_path / "roc",
                        n_validation=3)
    task = plan_task(plan)
    assert (len(task.splits["train"]), len(task.splits["validation"])) == (7, 3)
    with pytest.raises(ValueError, match="only 10 stories, too few to hold out 374"):  # default
        plan_task(FinetunePlan("unused", "rocstories", tmp_path / "r", tmp_path / "roc"))
    write_sst2(tmp_path / "SST-2", {"train.tsv": [("good", 1)], "dev.tsv": [("bad", 0)]})
    with pytest.raises(ValueError, match="for rocstories only"):
        plan_task(FinetunePlan("unused", "sst2", tmp_path / "r", tmp_path / "SST-2",
                               n_validation=3))
