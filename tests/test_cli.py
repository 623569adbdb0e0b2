"""The command line's pre-training, generation and export paths, and its bad-input answers:
a clear message, a non-zero exit, nothing overwritten."""

import shutil
import subprocess
import sys

import pytest

from minigpt1.cli import main
from minigpt1.corpus.text_folders import SAMPLE_DIR

FAST = ["--preset", "tiny", "--n-ctx", "32", "--vocab-size", "300", "--batch-size", "4",
        "--micro-batch-size", "4", "--warmup-steps", "2", "--eval-every", "4",
        "--eval-windows", "2"]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """A copy of the sample corpus: pretrain caches token ids beside the texts it reads."""
    copy = tmp_path_factory.mktemp("corpus") / "sample"
    shutil.copytree(SAMPLE_DIR.parent, copy)
    return copy / "texts"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, texts):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["pretrain", "--text-dir", str(texts), "--out", str(out),
                 "--max-steps", "8", *FAST]) == 0
    return out


def test_pretrain_generate_export(run_dir, tmp_path, capsys):
    assert (run_dir / "metrics.jsonl").exists() and (run_dir / "tokenizer" / "vocab.json").exists()
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(run_dir), "--prompt", "KING.\n",
                 "--max-new-tokens", "10", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("KING.\n") and len(text) > len("KING.\n")
    out = tmp_path / "exported"
    assert main(["export", "--checkpoint", str(run_dir), "--out", str(out)]) == 0
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt"):
        assert (out / name).exists(), name
    # the exported folder generates the same text as the run's best checkpoint
    capsys.readouterr()
    args = ["--prompt", "KING.\n", "--max-new-tokens", "10", "--temperature", "0"]
    main(["generate", "--checkpoint", str(out), *args])
    from_export = capsys.readouterr().out
    main(["generate", "--checkpoint", str(run_dir), "--which", "best", *args])
    assert capsys.readouterr().out == from_export
    assert main(["export", "--checkpoint", str(run_dir), "--out", str(out)]) == 1
    assert "already holds a model" in capsys.readouterr().err


def error_of(args, capsys, status=1):
    """stderr of a refused command: status 1 for what it names, 2 for the command line."""
    assert main(args) == status
    return capsys.readouterr().err


def test_bad_inputs(run_dir, texts, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .txt" in error_of(["pretrain", "--text-dir", str(empty), "--out",
                                  str(tmp_path / "r1"), *FAST], capsys)
    (empty / "a.txt").write_text("  \n")
    assert "is empty" in error_of(["pretrain", "--text-dir", str(empty), "--out",
                                   str(tmp_path / "r1"), *FAST], capsys)
    missing = error_of(["pretrain", "--text-dir", str(tmp_path / "nope"), "--out",
                        str(tmp_path / "r2"), *FAST], capsys)
    assert "nope" in missing
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()  # nothing written
    assert "nothing to resume" in error_of(["pretrain", "--text-dir", str(texts), "--out",
                                            str(tmp_path / "r3"), "--resume", *FAST], capsys)
    before = (run_dir / "metrics.jsonl").read_bytes()
    assert "holds another run" in error_of(["pretrain", "--text-dir", str(texts), "--out",
                                            str(run_dir), *FAST], capsys)
    assert (run_dir / "metrics.jsonl").read_bytes() == before  # nothing overwritten
    too_long = ["pretrain", "--text-dir", str(texts), "--out", str(tmp_path / "r4"),
                *FAST, "--n-ctx", "512"]
    assert "--n-ctx 512 is outside 2..128" in error_of(too_long, capsys, status=2)
    assert "neither a run folder" in error_of(["generate", "--checkpoint", str(empty)], capsys)


def test_resume_with_another_architecture_is_refused(run_dir, texts, tmp_path, capsys):
    import json

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    run = json.loads((copy / "run.json").read_text())
    run["config"]["n_layer"] = 2  # the run now claims another architecture
    (copy / "run.json").write_text(json.dumps(run))
    err = error_of(["pretrain", "--text-dir", str(texts), "--out", str(copy), "--resume",
                    *FAST], capsys)
    assert "differs from run.json" in err


def test_long_prompt_is_cut_with_a_warning(run_dir):
    result = subprocess.run(
        [sys.executable, "-m", "minigpt1", "generate", "--checkpoint", str(run_dir),
         "--prompt", "word " * 200, "--max-new-tokens", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cut to its last 32" in result.stderr
