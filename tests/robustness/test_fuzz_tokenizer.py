"""Tokenizer directories broken every way hypothesis finds: BPETokenizer.load returns a
tokenizer that encodes and decodes, or raises FormatError (TokenizerFileError) whose message
starts with the folder or one of its files.

Attacked: each of minigpt1_bpe.json, vocab.json and merges.txt damaged byte by byte; any JSON
value in place of either JSON file or of a field of minigpt1_bpe.json; merges.txt with its
lines replaced by random text (any Unicode, tabs, carriage returns, very long lines) and its
header dropped or changed; vocab.json with ids that are negative, duplicated, huge, floats,
strings, and tokens renamed, dropped or added (lone surrogates and characters outside the
byte alphabet included). Both modes, and HuggingFace-style directories without
minigpt1_bpe.json loaded with mode="gpt1" or "bytes".

Accepted: success, after which encoding and decoding a short text must work too; or a
FormatError naming the folder. Anything else fails the test.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt1.tokenizer.bpe import GPT1_SPECIAL_TOKENS, BPETokenizer
from minigpt1.tokenizer.files import MERGES_FILE, META_FILE, VOCAB_FILE
from tests.robustness import fuzz
from tests.robustness.fuzz import (
    FUZZ,
    broken_bytes,
    copy_of,
    json_values,
    loads_or_fails_cleanly,
    write_json,
)

CORPUS = ["the cat sat on the mat", "the dog ate the hat", "Café crème, naïve façade!"]
TEXT = "The cat ate 3 hats: café, _start_ 中文\tand\r\nmore \ud800 \x00 "
MODES = ["gpt1", "bytes"]
FILES = [META_FILE, VOCAB_FILE, MERGES_FILE]

# texts a token or a line may become: anything, plus the characters that matter to the format
odd_texts = st.text(max_size=10) | st.sampled_from(
    ["", " ", "\t", "\r", "\n", "a b", "a  b", "\ud800", "x\udfff", "<unk>", "</w>", "Ġ", "Ċ",
     "中", "\ufeff", "\x00", "_start_", "#version: 0.2", "x" * 200_000])


@pytest.fixture(scope="module")
def good_dirs(tmp_path_factory):
    """{mode: a saved tokenizer directory}; bytes mode gets a few merges past its 256 bytes."""
    dirs = {}
    for mode, size in (("gpt1", 80), ("bytes", 290)):
        path = tmp_path_factory.mktemp(mode) / "tokenizer"
        tok = BPETokenizer.train(CORPUS, size, mode, special_tokens=GPT1_SPECIAL_TOKENS,
                                 progress=False)
        tok.save(path)
        dirs[mode] = path
    return dirs


def load_and_use(folder, mode=None):
    """Load, then encode and decode: a tokenizer that loads must also work."""
    tok = BPETokenizer.load(folder, mode)
    for allowed in ((), "all"):
        ids = tok.encode(TEXT, allowed)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert isinstance(tok.decode(ids), str)
    tok.tokens(TEXT)
    tok.explain(TEXT)
    if tok.mode == "bytes":
        assert tok.decode(tok.encode(TEXT)) == TEXT  # lossless whatever the files say


def check(folder, mode=None):
    """Success, or FormatError whose message starts with the folder."""
    err = loads_or_fails_cleanly(lambda: load_and_use(folder, mode), folder)
    if err is not None:
        assert str(err).startswith(str(folder)), f"the message does not start with a path: {err}"
    return err


@pytest.mark.parametrize("mode", MODES)
def test_the_good_directories_load(good_dirs, mode):
    tok = BPETokenizer.load(good_dirs[mode])
    assert tok.mode == mode and tok.merges and tok.special_id("_classify_") > 0
    load_and_use(good_dirs[mode])
    with copy_of(good_dirs[mode]) as folder:  # HuggingFace's layout: no minigpt1_bpe.json
        (folder / META_FILE).unlink()
        load_and_use(folder, mode)


@FUZZ
@given(data=st.data(), mode=st.sampled_from(MODES), name=st.sampled_from(FILES))
def test_damaged_file(good_dirs, data, mode, name):
    with copy_of(good_dirs[mode]) as folder:
        path = folder / name
        path.write_bytes(data.draw(broken_bytes(path.read_bytes())))
        check(folder)


@FUZZ
@given(value=json_values, mode=st.sampled_from(MODES), name=st.sampled_from(FILES[:2]))
def test_any_json_in_place_of_a_json_file(good_dirs, value, mode, name):
    with copy_of(good_dirs[mode]) as folder:
        write_json(folder / name, value)
        check(folder)


@FUZZ
@given(data=st.data(), mode=st.sampled_from(MODES))
def test_bad_meta_fields(good_dirs, data, mode):
    """format, version, mode or special_tokens set to any value; special tokens renamed,
    renumbered or added."""
    with copy_of(good_dirs[mode]) as folder:
        path = folder / META_FILE
        meta = json.loads(path.read_text(encoding="utf-8"))
        for key in data.draw(st.lists(st.sampled_from(sorted(meta) + ["junk"]), min_size=1,
                                      max_size=2)):
            meta[key] = data.draw(json_values)
        if data.draw(st.booleans()) and isinstance(meta.get("special_tokens"), dict):
            specials = meta["special_tokens"]
            vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
            if data.draw(st.booleans()):  # an ordinary token, a base one even, made special
                token = data.draw(st.sampled_from(sorted(vocab)))
                specials[token] = vocab[token]
            else:
                specials[data.draw(odd_texts)] = data.draw(st.integers(-2, 300) | json_values)
        write_json(path, meta)
        check(folder)


@st.composite
def broken_merges(draw, good):
    """merges.txt with its header dropped or changed and lines replaced, swapped, repeated or
    added: random text (tabs, carriage returns, any Unicode, a line of 200,000 characters)."""
    header, *lines = good.split("\n")
    header = draw(st.sampled_from([header, "", "#version: 9.9", "#version", "#"]) | odd_texts)
    lines = lines[:-1]  # the empty string after the last newline
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["replace", "insert", "delete", "swap", "repeat"]))
        at = draw(st.integers(0, max(0, len(lines) - 1)))
        if how == "replace" and lines:
            lines[at] = draw(odd_texts)
        elif how == "insert":
            lines.insert(at, draw(odd_texts))
        elif how == "delete" and lines:
            del lines[at]
        elif how == "swap" and len(lines) > 1:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif how == "repeat" and lines:
            lines.insert(draw(st.integers(0, len(lines))), lines[at])
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return ending.join([header, *lines]) + draw(st.sampled_from(["", ending, ending * 2]))


@FUZZ
@given(data=st.data(), mode=st.sampled_from(MODES))
def test_merges_lines_replaced(good_dirs, data, mode):
    with copy_of(good_dirs[mode]) as folder:
        path = folder / MERGES_FILE
        path.write_bytes(data.draw(broken_merges(path.read_text(encoding="utf-8")))
                         .encode("utf-8", "surrogatepass"))
        check(folder)


BAD_IDS = (st.integers(-3, -1) | st.just(2**62) | st.integers(2**63, 2**70)
           | st.floats() | st.text(max_size=4) | st.none() | st.booleans() | json_values)


@FUZZ
@given(data=st.data(), mode=st.sampled_from(MODES), hf=st.booleans())
def test_bad_vocab_entries(good_dirs, data, mode, hf):
    """Ids negative, duplicated, huge, floats, strings; tokens renamed, dropped or added. With
    hf, the directory has no minigpt1_bpe.json and is loaded with either mode."""
    with copy_of(good_dirs[mode]) as folder:
        path = folder / VOCAB_FILE
        vocab = json.loads(path.read_text(encoding="utf-8"))
        tokens = sorted(vocab)
        for _ in range(data.draw(st.integers(1, 3))):
            token = data.draw(st.sampled_from(tokens))
            how = data.draw(st.sampled_from(["bad id", "duplicate id", "rename", "drop", "add"]))
            if how == "bad id":
                vocab[token] = data.draw(BAD_IDS)
            elif how == "duplicate id" and vocab:
                vocab[token] = vocab[data.draw(st.sampled_from(sorted(vocab)))]
            elif how == "rename" and token in vocab:
                vocab[data.draw(odd_texts)] = vocab.pop(token)
            elif how == "drop":
                vocab.pop(token, None)
            else:  # a new token with the next free id: a well-formed vocabulary, if odd
                new = data.draw(odd_texts)
                vocab[new] = len(vocab)
                if data.draw(st.booleans()):  # and a special token
                    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
                    meta["special_tokens"][new] = vocab[new]
                    write_json(folder / META_FILE, meta)
        write_json(path, vocab)
        load_mode = None
        if hf:
            (folder / META_FILE).unlink()
            load_mode = data.draw(st.sampled_from(MODES))
        check(folder, load_mode)


@FUZZ
@given(data=st.data(), mode=st.sampled_from(MODES), name=st.sampled_from(FILES[1:]))
def test_damaged_huggingface_directory(good_dirs, data, mode, name):
    """No minigpt1_bpe.json, a damaged vocab.json or merges.txt, read with either mode."""
    with copy_of(good_dirs[mode]) as folder:
        (folder / META_FILE).unlink()
        path = folder / name
        path.write_bytes(data.draw(broken_bytes(path.read_bytes())))
        check(folder, data.draw(st.sampled_from(MODES)))


HOSTILE_JSON = {
    **fuzz.HOSTILE_JSON,
    "a byte-order mark": "\ufeff{}",
    "a lone surrogate key": '{"\\ud800": 0}',
}


@pytest.mark.parametrize("name", FILES[:2])
@pytest.mark.parametrize("text", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_json_that_python_cannot_read(good_dirs, name, text):
    """JSON the json module refuses with something other than JSONDecodeError, or reads
    into something no tokenizer can hold."""
    with copy_of(good_dirs["bytes"]) as folder:
        (folder / name).write_text(text, encoding="utf-8")
        assert check(folder) is not None
