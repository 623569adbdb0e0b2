"""Nothing is written before every check passes, and a run folder a failure left half made is
resumed or restarted by the command its message advises, never a circle.

A bad flag or data a run cannot use is refused before the run folder exists. A failure after
it (a MemoryError in the first update, a full disk at the first checkpoint) leaves run.json,
written last: `--resume` continues from step 0 and ends as the uninterrupted run. A folder
without run.json holds no run: the messages point to --force, not to --resume.
"""

import errno
import json

import numpy as np
import pytest

from minigpt1.cli import main
from minigpt1.training import checkpoint, lm_objective
from minigpt1.training.checkpoint import load_checkpoint

FLAGS = ["--preset", "tiny", "--n-ctx", "32", "--batch-size", "4", "--micro-batch-size", "2",
         "--warmup-steps", "4", "--eval-every", "4", "--eval-windows", "4", "--log-every", "1",
         "--lr", "3e-3", "--max-steps", "8"]


def pretrain(corpus, out, *args):
    texts, tokenizer = corpus
    return main(["pretrain", "--text-dir", str(texts), "--tokenizer", str(tokenizer), "--out",
                 str(out), *FLAGS, *map(str, args)])


def error(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err  # one message
    return err


@pytest.mark.parametrize("args, status, message", [
    (["--eval-windows", "0"], 2, "--eval-windows"),
    (["--minutes", "inf"], 2, "--minutes"),
    (["--n-ctx", "32", "--eval-windows", "4", "--micro-batch-size", "3"], 2,
     "--micro-batch-size"),
])  # fmt: skip
def test_a_bad_flag_is_refused_before_the_folder_exists(corpus, tmp_path, capsys, args, status,
                                                         message):
    assert pretrain(corpus, tmp_path / "run", *args) == status
    assert message in error(capsys)
    assert not (tmp_path / "run").exists()


def test_windows_longer_than_the_validation_text_are_refused_before_the_folder(corpus,
                                                                               tmp_path, capsys):
    texts = tmp_path / "texts"
    texts.mkdir()
    for name in ("a", "b", "c"):  # the validation text is a slice of these few lines
        (texts / f"{name}.txt").write_text(f"{name} little text, a few words\n" * 4)
    out = tmp_path / "run"
    assert pretrain((texts, corpus[1]), out) == 1
    assert "one window needs 33" in error(capsys)
    assert not out.exists()


def straight_run(corpus, tmp_path):
    assert pretrain(corpus, tmp_path / "straight") == 0
    return tmp_path / "straight"


def assert_same_run(a, b):
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    pa, pb = load_checkpoint(a).params, load_checkpoint(b).params
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_a_memory_error_in_the_first_update_leaves_a_resumable_folder(corpus, tmp_path,
                                                                      monkeypatch, capsys):
    real = lm_objective.train_step

    def out_of_memory(*args, **kwargs):
        monkeypatch.setattr(lm_objective, "train_step", real)
        raise MemoryError

    monkeypatch.setattr(lm_objective, "train_step", out_of_memory)
    out = tmp_path / "run"
    assert pretrain(corpus, out) == 1
    capsys.readouterr()
    assert pretrain(corpus, out) == 1  # the same command again: it points to --resume
    assert "holds another run; use --resume" in error(capsys)
    assert main(["pretrain", "--out", str(out), "--resume"]) == 0
    assert f"resuming {out} at step 0 of 8" in capsys.readouterr().out
    assert_same_run(out, straight_run(corpus, tmp_path))


def test_a_full_disk_at_the_first_checkpoint_then_the_advised_resume(corpus, tmp_path,
                                                                     monkeypatch, capsys):
    real = checkpoint.np.savez

    def disk_full(file, *args, **kwargs):
        monkeypatch.setattr(checkpoint.np, "savez", real)
        raise OSError(errno.ENOSPC, "No space left on device", str(file))

    monkeypatch.setattr(checkpoint.np, "savez", disk_full)
    out = tmp_path / "run"
    assert pretrain(corpus, out) == 1
    assert "then resume the run (--resume)" in error(capsys)
    assert not (out / "checkpoints" / "index.json").exists()
    assert main(["pretrain", "--out", str(out), "--resume"]) == 0
    assert_same_run(out, straight_run(corpus, tmp_path))


def test_a_folder_without_run_json_points_to_force_not_resume(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "tokenizer").mkdir(parents=True)  # what a start killed before run.json left
    assert pretrain(corpus, out) == 1
    err = error(capsys)
    assert "is not empty" in err and "--force" in err and "--resume" not in err
    assert main(["pretrain", "--out", str(out), "--resume"]) == 1
    err = error(capsys)
    assert "nothing to resume" in err and "--force" in err
    assert pretrain(corpus, out, "--force") == 0  # the advice works
    assert json.loads((out / "run.json").read_text())["kind"] == "pretrain"


def test_a_missing_folder_cannot_be_resumed_and_says_so(tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "none"), "--resume"]) == 1
    assert "holds no run; start a run there without --resume" in error(capsys)
    assert not (tmp_path / "none").exists()
