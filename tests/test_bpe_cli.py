"""`python -m minigpt1 bpe ...`: train, encode, decode, show, and failures with exit code 1
(what the command names cannot be used; a wrong command line is argparse's 2)."""

import io
import json
import subprocess
import sys

import pytest

from minigpt1.cli import main
from minigpt1.tokenizer.bpe import BPETokenizer

TEXT = "The cat sat on the mat.\nThe cats sat on the mats!\n" * 5


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "b.txt").write_text("A rat ate the hat; that cat ate the rat.", encoding="utf-8")
    return tmp_path


def run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_encode_decode_show(corpus, capsys, monkeypatch):
    out_dir = corpus / "tok"
    code, out, _ = run(capsys, "bpe", "train", "--input", str(corpus / "a.txt"),
                       str(corpus / "b.txt"), "--vocab-size", "40", "--mode", "gpt1",
                       "--special-tokens", "_start_", "--out", str(out_dir))
    assert code == 0 and "vocab_size=40" in out and "2 file(s)" in out
    tok = BPETokenizer.load(out_dir)
    assert tok.vocab_size == 40 and tok.special_tokens == {"_start_": 39}

    code, out, _ = run(capsys, "bpe", "encode", "--tokenizer", str(out_dir), "The cats.")
    assert code == 0 and out.split() == [str(i) for i in tok.encode("The cats.")]
    code, out, _ = run(capsys, "bpe", "encode", "--tokenizer", str(out_dir), "--tokens",
                       "--allow-special", "_start_ the cat")
    assert out.split() == ["_start_", *tok.tokens("the cat")]

    ids = tok.encode("the rat ate the mat")
    code, out, _ = run(capsys, "bpe", "decode", "--tokenizer", str(out_dir), *map(str, ids))
    assert code == 0 and out == "the rat ate the mat\n"
    code, out, _ = run(capsys, "bpe", "decode", "--tokenizer", str(out_dir),
                       stdin=" ".join(map(str, ids)) + "\n", monkeypatch=monkeypatch)
    assert out == "the rat ate the mat\n"
    code, out, _ = run(capsys, "bpe", "encode", "--tokenizer", str(out_dir),
                       stdin="The mat", monkeypatch=monkeypatch)
    assert out.split() == [str(i) for i in tok.encode("the mat")]

    code, out, _ = run(capsys, "bpe", "show", "--tokenizer", str(out_dir), "cats")
    lines = out.splitlines()  # base pieces, one line per merge, a blank line
    assert code == 0 and lines[0].split() == ["c", "a", "t", "s</w>"] and lines[-1] == ""
    assert all(" merge " in line for line in lines[1:-1])
    assert lines[-2].split(" merge ")[0].split() == tok.tokens("cats")


def test_bytes_mode_and_directories_as_input(corpus, capsys):
    out_dir = corpus / "tok"
    code, _, _ = run(capsys, "bpe", "train", "--input", str(corpus), "--vocab-size", "300",
                     "--mode", "bytes", "--out", str(out_dir))
    assert code == 0
    tok = BPETokenizer.load(out_dir)
    assert tok.mode == "bytes" and tok.decode(tok.encode(TEXT)) == TEXT


def test_module_entry_point(corpus):
    result = subprocess.run(
        [sys.executable, "-m", "minigpt1", "bpe", "train", "--input", str(corpus / "a.txt"),
         "--vocab-size", "3", "--out", str(corpus / "tok")],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: vocab_size=3 is smaller than the base vocabulary")
    assert not (corpus / "tok").exists()


def bad_input(directory, kind):
    """A path to pass to --input that training must refuse."""
    path = directory / kind
    if kind == "not_utf8.txt":
        path.write_bytes(b"ok\n\xff")
    elif kind == "blank.txt":
        path.write_text(" \n\t")
    elif kind == "no_texts":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing.txt", "missing.txt"),
        ("not_utf8.txt", "not_utf8.txt: not valid UTF-8 at byte offset 3"),
        ("blank.txt", "corpus is empty"),
        ("no_texts", "holds no *.txt files"),
    ],
)
def test_train_failures_exit_1_and_write_nothing(tmp_path, capsys, kind, message):
    out_dir = tmp_path / "tok"
    code, _, err = run(capsys, "bpe", "train", "--input", str(bad_input(tmp_path, kind)),
                       "--vocab-size", "60", "--out", str(out_dir))
    assert code == 1 and err.startswith("error: ") and message in err
    assert not out_dir.exists()


def test_not_utf8_after_good_files_writes_nothing(corpus, capsys):
    code, _, err = run(capsys, "bpe", "train", "--input", str(corpus / "a.txt"),
                       str(bad_input(corpus, "not_utf8.txt")), "--vocab-size", "60",
                       "--out", str(corpus / "tok"))
    assert code == 1 and "byte offset 3" in err and not (corpus / "tok").exists()


def test_load_and_input_failures_exit_1(corpus, capsys, monkeypatch):
    code, _, err = run(capsys, "bpe", "encode", "--tokenizer", str(corpus / "nowhere"), "x")
    assert code == 1 and "no such tokenizer directory" in err
    BPETokenizer.train([TEXT], 40, progress=False).save(corpus / "tok")
    code, _, err = run(capsys, "bpe", "decode", "--tokenizer", str(corpus / "tok"),
                       stdin="1 x", monkeypatch=monkeypatch)
    assert code == 1 and "token ids separated by spaces" in err
    meta = corpus / "tok" / "minigpt1_bpe.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": 2}))
    code, _, err = run(capsys, "bpe", "show", "--tokenizer", str(corpus / "tok"), "cat")
    assert code == 1 and "format version 2" in err
