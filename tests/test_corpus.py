"""Corpus: loading folders of texts, the train/val split, cached token ids and training
windows."""

import collections
import csv

import numpy as np
import pytest

from minigpt1.corpus import (
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
    with pytest.raises(ValueError, match=r"blank.txt is not UTF-8: the byte at offset 15 \(0xff\)"):
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
    assert path.is_file() and path.name.startswith("train-") and path.suffix == ".npy"
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


def test_eval_windows_tile_the_ids_and_thin_out_evenly():
    windows = eval_windows(IDS, 64)
    assert windows.shape == (15, 64) and windows.dtype == np.int64  # 1000 // 64 = 15
    assert np.array_equal(windows.ravel(), IDS[: 15 * 64])
    thin = eval_windows(IDS, 64, max_windows=4)
    assert thin[:, 0].tolist() == [0, 3 * 64, 7 * 64, 11 * 64]  # windows 0, 3, 7, 11 of 15
    assert eval_windows(IDS, 64, max_windows=100).shape == (15, 64)


def test_windows_longer_than_the_ids_are_refused():
    with pytest.raises(ValueError, match="only 10 tokens, but one window needs 11"):
        random_windows(IDS[:10], 2, 11, np.random.default_rng(0))
    with pytest.raises(ValueError, match="only 10 tokens, but one window needs 11"):
        eval_windows(IDS[:10], 11)
