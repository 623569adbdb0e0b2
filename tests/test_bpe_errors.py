"""Bad input to the tokenizer: clear errors that name the problem, and nothing half-written."""

import json
from pathlib import Path

import pytest

from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.tokenizer.files import TokenizerFileError
from minigpt1.tokenizer.pretokenization import read_text, read_texts

CORPUS = ["the cat sat on the mat", "the dog ate the hat"]


@pytest.fixture
def saved(tmp_path):
    """A good tokenizer directory, to be damaged by each test."""
    BPETokenizer.train(CORPUS, 40, progress=False, special_tokens=["_start_"]).save(tmp_path)
    return tmp_path


def test_empty_corpus():
    for corpus in ([], ["", " \n\t ", "\x00\u200b"]):
        with pytest.raises(ValueError, match="corpus is empty"):
            BPETokenizer.train(corpus, 100, progress=False)


@pytest.mark.parametrize("mode", ["gpt1", "bytes"])
def test_vocab_smaller_than_the_base_alphabet(mode):
    # gpt1: <unk>, each distinct letter, and each letter + </w>; bytes: the 256 bytes.
    letters = set("".join(CORPUS).replace(" ", ""))
    base = 1 + 2 * len(letters) if mode == "gpt1" else 256
    with pytest.raises(ValueError, match=f"use at least {base + 1}"):
        BPETokenizer.train(CORPUS, base, mode, special_tokens=["_x_"], progress=False)
    tok = BPETokenizer.train(CORPUS, base + 1, mode, special_tokens=["_x_"], progress=False)
    assert tok.vocab_size == base + 1 and tok.merges == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be one of"):
        BPETokenizer.train(CORPUS, 100, "chars", progress=False)
    with pytest.raises(ValueError, match="trainer must be"):
        BPETokenizer.train(CORPUS, 100, trainer="quick", progress=False)
    tok = BPETokenizer.train(CORPUS, 40, progress=False)
    with pytest.raises(ValueError, match="token id 40 is outside the vocabulary"):
        tok.decode([1, 40])
    with pytest.raises(ValueError, match="token id -1"):
        tok.decode([-1])


def test_non_utf8_file_names_file_and_offset(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "latin1.txt"
    good.write_text("fine", encoding="utf-8")
    bad.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt: not valid UTF-8 at byte offset 3"):
        read_text(bad)
    with pytest.raises(ValueError, match="latin1.txt"):
        BPETokenizer.train(read_texts([good, bad]), 100, progress=False)


def test_missing_directory_and_files(tmp_path, saved):
    with pytest.raises(TokenizerFileError, match="no such tokenizer directory"):
        BPETokenizer.load(tmp_path / "nowhere")
    (saved / "merges.txt").unlink()
    with pytest.raises(TokenizerFileError, match="missing merges.txt"):
        BPETokenizer.load(saved)


def damage(directory: Path, name: str, edit):
    path = directory / name
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")


def set_version(text):
    meta = json.loads(text)
    meta["version"] = 99
    return json.dumps(meta)


@pytest.mark.parametrize(
    "name, edit, message",
    [
        ("vocab.json", lambda t: t.replace('"<unk>": 0,', '"<unk>": 0'),
         r"vocab\.json line 3 column \d+: not valid JSON"),
        ("vocab.json", lambda t: t.replace('"<unk>": 0', '"<unk>": 1000'),
         r"vocab\.json: the ids must be 0 to \d+, each used once"),
        ("vocab.json", lambda t: "[1, 2]", r"vocab\.json: expected a JSON object"),
        ("vocab.json", lambda t: t.replace('"<unk>"', '"<UNK>"'),
         r"vocab\.json: a gpt1-mode vocabulary needs '<unk>'"),
        ("vocab.json", lambda t: t.replace('"_start_"', '"_begin_"'),
         r"special token '_start_' has id \d+ there but None"),
        ("merges.txt", lambda t: t.replace("\n", "\nno_space_here\n", 1),
         r"merges\.txt line 2: expected two tokens separated by one space, got 'no_space_here'"),
        ("merges.txt", lambda t: t + "x y z\n", r"merges\.txt line \d+: expected two tokens"),
        ("merges.txt", lambda t: t + "q u\n", r"merges\.txt line \d+: 'q' is not in vocab\.json"),
        ("merges.txt", lambda t: t.replace("#version: 0.2\n", "#version: 0.2\n\n"),
         r"merges\.txt line 2: expected two tokens"),
        ("minigpt1_bpe.json", set_version,
         r"format version 99, but this minigpt1 reads version 1; install the minigpt1"),
        ("minigpt1_bpe.json", lambda t: "{}", "not a minigpt1 tokenizer file"),
        ("minigpt1_bpe.json", lambda t: t.replace('"gpt1"', '"chars"'), "mode must be one of"),
    ],
)
def test_malformed_files_name_file_and_line(saved, name, edit, message):
    damage(saved, name, edit)
    with pytest.raises(TokenizerFileError, match=message):
        BPETokenizer.load(saved)


def test_mode_mismatch(saved):
    with pytest.raises(TokenizerFileError, match="mode is 'gpt1', not 'bytes'"):
        BPETokenizer.load(saved, mode="bytes")


def test_a_failed_save_leaves_the_old_files_whole(saved, monkeypatch):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    other = BPETokenizer.train(["completely different words"], 40, progress=False)

    def write_half_then_fail(self, data, **kwargs):
        Path.write_bytes(self, data[: len(data) // 2].encode())
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        other.save(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before  # no temp files either
