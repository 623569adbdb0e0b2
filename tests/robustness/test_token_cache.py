"""The token-id cache lives in a per-user folder, never in --text-dir, and is checked on read.

Before: pre-training wrote `.minigpt1-cache/` into the user's text folder (a read-only one
failed the run); a truncated cache file ended the run with an error from inside NumPy, and a
cache copied over another's name was used without a word, training on the wrong ids; a cache
folder that could not be written stopped the run. After: the cache goes to $MINIGPT1_CACHE or
platformdirs' user cache folder; a file that is not exactly what was written for its name is
named on stderr and rebuilt; one that cannot be written is named and skipped.
"""

import shutil
from pathlib import Path

import numpy as np
import platformdirs
import pytest

from minigpt1.corpus.text_folders import (
    CACHE_ENV,
    SAMPLE_DIR,
    cache_file,
    default_cache_dir,
    encode_texts,
    ids_checksum,
)
from minigpt1.jobs.pretrain import PretrainPlan, run_pretraining
from minigpt1.training.lm_objective import TrainConfig
from tests.conftest import SMALL

TEXTS = ["first text\n", "second text, a little longer\n"]


class ByteTokenizer:
    """One id per UTF-8 byte."""

    vocab_size = 256

    def encode(self, text):
        return list(text.encode("utf-8"))


class UnusableTokenizer(ByteTokenizer):
    def encode(self, text):
        raise AssertionError("a good cache should have been used")


def expected():
    return encode_texts(TEXTS, ByteTokenizer())


def test_pretraining_leaves_the_text_folder_alone(tmp_path, monkeypatch, corpus):
    texts = tmp_path / "texts"
    shutil.copytree(SAMPLE_DIR, texts)
    before = sorted(p.relative_to(texts) for p in texts.rglob("*"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    run_pretraining(PretrainPlan(texts, tmp_path / "run", "tiny", TrainConfig(
        max_steps=1, **SMALL), n_ctx=32, tokenizer_dir=corpus[1]), progress=False)
    assert sorted(p.relative_to(texts) for p in texts.rglob("*")) == before
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "ids").iterdir())
    assert cached == ["train", "val"]


def test_the_cache_folder_is_per_user_unless_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path / "ids"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().parent == Path(platformdirs.user_cache_dir("minigpt1"))
    assert cache_file(None, "train", TEXTS, "fp").parent == default_cache_dir()


def rewrite(path, ids, checksum):
    with open(path, "wb") as f:
        np.savez(f, ids=ids, checksum=np.array(checksum))


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the ids
    path.write_bytes(bytes(data))


def damage(kind, path, other):
    """Spoil the good cache at `path`; `other` is a good cache written for other texts."""
    good = np.load(path)["ids"]
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "flipped byte":
        flip_a_byte(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "old .npy format":
        np.save(path.with_suffix(".npy"), good)
        path.with_suffix(".npy").replace(path)
    elif kind == "foreign":  # another corpus's cache copied over this name
        shutil.copyfile(other, path)
    elif kind == "ids changed, checksum kept":
        rewrite(path, good[::-1].copy(), str(np.load(path)["checksum"]))
    elif kind == "wrong dtype":
        rewrite(path, good.astype(np.int64), ids_checksum(good.astype(np.int64), path.name))
    elif kind == "id beyond the vocabulary":
        bad = good.copy()
        bad[0] = 300
        rewrite(path, bad, ids_checksum(bad, path.name))
    elif kind == "object array":  # would need unpickling: refused, never run
        rewrite(path, np.array([1, "x"], dtype=object), "")


@pytest.mark.parametrize("kind", [
    "truncated", "flipped byte", "empty", "old .npy format", "foreign",
    "ids changed, checksum kept", "wrong dtype", "id beyond the vocabulary", "object array",
])  # fmt: skip
def test_a_bad_cache_is_named_and_rebuilt(tmp_path, capsys, kind):
    path = cache_file(tmp_path, "train", TEXTS, "fp")
    other = cache_file(tmp_path, "train", TEXTS[:1], "fp")
    encode_texts(TEXTS, ByteTokenizer(), path)
    encode_texts(TEXTS[:1], ByteTokenizer(), other)
    damage(kind, path, other)
    ids = encode_texts(TEXTS, ByteTokenizer(), path)
    assert ids.dtype == np.uint16 and np.array_equal(ids, expected())
    err = capsys.readouterr().err
    assert f"token cache {path} " in err and "rebuilding it" in err
    again = encode_texts(TEXTS, UnusableTokenizer(), path)  # the rebuilt cache is good
    assert np.array_equal(again, expected())
    assert capsys.readouterr().err == ""


def test_a_cache_folder_that_cannot_be_written_is_named_and_skipped(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")  # stops root too
    path = cache_file(blocker, "train", TEXTS, "fp")
    assert np.array_equal(encode_texts(TEXTS, ByteTokenizer(), path), expected())
    err = capsys.readouterr().err
    assert f"cannot write the token cache {path}" in err and CACHE_ENV in err
    assert blocker.read_text().startswith("a file")
