"""BPETokenizer: hand-derived ids, vocabulary layout, round trips, special tokens, save/load."""

import doctest
import json
import unicodedata
from pathlib import Path

import pytest

from minigpt1.tokenizer import bpe, pretokenization
from minigpt1.tokenizer import files as bpe_files
from minigpt1.tokenizer import trainers as bpe_train
from minigpt1.tokenizer.bpe import GPT1_SPECIAL_TOKENS, BPETokenizer
from minigpt1.tokenizer.pretokenization import words_gpt1

ROOT = Path(__file__).resolve().parents[1]
CORPUS = [
    "The quick brown fox jumps over the lazy dog. THE DOG SLEEPS!",
    "Naïve café owners in Zürich paid 3.50 francs (or 4$?) for crème brûlée...\n",
    "Tabs\tand\nnewlines\r\nand   runs of spaces; emoji 🤗🚀, CJK 中文字符, Ελληνικά, кириллица.",
    "it's a dog's life -- isn't it? \"Yes\", she said: 'no'. e-mail: a_b@c.d #1 ~/x [y] {z} |w|",
]
EDGE_CASES = [
    "",
    "a",
    " ",
    "🤗",
    "中文字符",
    "e\u0301 and \u00e9",  # a combining accent, and the precomposed character
    "\t\n  \r\n   x  \n\n",
    "\x00\x7f\u200b\ufeff",  # NUL, DEL, zero-width space, byte-order mark
    "\ud800 lone surrogate",  # legal in a Python str, not in UTF-8
    (ROOT / "minigpt1" / "tokenizer" / "bpe.py").read_text(encoding="utf-8"),  # a whole file
]


def trained(mode, vocab_size=None, corpus=CORPUS, **kwargs):
    # The defaults leave merges to spare on CORPUS (it supports 110 in gpt1 mode, 202 in bytes)
    vocab_size = vocab_size or {"gpt1": 200, "bytes": 400}[mode]
    return BPETokenizer.train(corpus, vocab_size, mode, progress=False, **kwargs)


@pytest.mark.parametrize("module", [bpe, bpe_train, bpe_files, pretokenization])
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0


# -- Wikipedia's "aaabdaaabac", derived by hand ---------------------------------------------
#
# Bytes mode, a=97 b=98 c=99 d=100, one word. Pair counts: (a,a) 4, (a,b) 2, the rest 1.
#   merge 256 = (97, 97) "aa":  256 97 98 100 256 97 98 97 99
#   now (256, 97) and (97, 98) both occur twice; the tie goes to the smaller pair (97, 98):
#   merge 257 = (97, 98) "ab":  256 257 100 256 257 97 99
#   merge 258 = (256, 257) "aaab", twice:  258 100 258 97 99
# gpt1 mode: <unk> 0, a b c d = 1 2 3 4, a</w> b</w> c</w> d</w> = 5 6 7 8; the word ends in
# c</w> (7). The same three merges get ids 9, 10, 11:  11 4 11 1 7.

def test_wikipedia_example_bytes_mode():
    tok = trained("bytes", vocab_size=259, corpus=["aaabdaaabac"])
    assert tok.merges == [("a", "a"), ("a", "b"), ("aa", "ab")]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"


def test_wikipedia_example_gpt1_mode():
    tok = trained("gpt1", vocab_size=12, corpus=["aaabdaaabac"])
    assert tok.encode("AAABDAAABAC") == [11, 4, 11, 1, 7]
    assert tok.tokens("aaabdaaabac") == ["aaab", "d", "aaab", "a", "c</w>"]
    assert tok.tokens("dab") == ["d", "a", "b</w>"]  # (a, b</w>) was never merged
    assert tok.encode("aaabdaaabac!") == [11, 4, 11, 1, 7, 0]  # "!" was never seen: <unk>


@pytest.mark.parametrize("trainer", ["naive", "fast"])
def test_both_trainers_learn_the_wikipedia_merges(trainer):
    tok = trained("bytes", vocab_size=259, corpus=["aaabdaaabac"], trainer=trainer)
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_gpt1_vocabulary_layout_follows_the_2018_release():
    tok = trained("gpt1")
    chars = sorted(set("".join(w for t in CORPUS for w in words_gpt1(t))))
    n = len(chars)
    assert tok.id_to_token(0) == "<unk>"
    assert [tok.id_to_token(i) for i in range(1, n + 1)] == chars
    assert [tok.id_to_token(i) for i in range(n + 1, 2 * n + 1)] == [c + "</w>" for c in chars]
    for rank, (a, b) in enumerate(tok.merges):
        assert tok.token_to_id(a + b) == 2 * n + 1 + rank
    assert tok.vocab_size == 200 == 2 * n + 1 + len(tok.merges)


def test_bytes_vocabulary_layout():
    tok = trained("bytes", vocab_size=300, special_tokens=["<|endoftext|>"])
    assert [tok.id_to_token(i) for i in range(256)] == bpe_files.BYTE_CHARS
    assert tok.decode(list(range(65, 70))) == "ABCDE"
    assert tok.special_tokens == {"<|endoftext|>": 299}
    assert len(tok.merges) == 300 - 256 - 1


@pytest.mark.parametrize("case", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_bytes_mode_round_trips(case):
    tok = trained("bytes")
    assert tok.decode(tok.encode(case)) == case


@pytest.mark.parametrize("case", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_gpt1_mode_decodes_to_the_normalised_words(case):
    words = words_gpt1(case)
    if not words:
        assert trained("gpt1").encode(case) == []
        return
    tok = trained("gpt1", corpus=[case])  # every character is then in the vocabulary
    assert tok.decode(tok.encode(case)) == " ".join(words)


def test_gpt1_normalisation_examples():
    # Accents go (NFD, then drop the combining marks), case goes, CJK is spaced out,
    # punctuation stands alone, control and format characters vanish.
    assert words_gpt1("Crème BRÛLÉE") == ["creme", "brulee"]
    assert words_gpt1("e\u0301") == words_gpt1("\u00e9") == ["e"]
    assert words_gpt1("中文ab") == ["中", "文", "ab"]
    assert words_gpt1("don't stop--now") == ["don", "'", "t", "stop", "-", "-", "now"]
    assert words_gpt1("a\u200bb\x00c\u00a0d\te") == ["abc", "d", "e"]
    assert words_gpt1("ΣΟΦΟΣ") == ["σοφοσ"]  # one character at a time: no final ς
    assert words_gpt1("$5+x=<y>^`|~") == list("$5+x=<y>^`|~")  # ASCII symbols count too


def test_unknown_characters_become_unk_one_each():
    tok = trained("gpt1")
    unk = tok.token_to_id("<unk>")
    assert tok.encode("☃☃") == [unk, unk]
    pieces = tok.tokens("dog☃")
    assert pieces[-1] == "<unk>" and "".join(pieces[:-1]) == "dog"
    assert tok.decode(tok.encode("☃ dog")) == "<unk>dog"  # like HuggingFace's BPEDecoder


def test_the_word_cache_is_bounded_and_changes_no_id(monkeypatch):
    tok = trained("gpt1")
    monkeypatch.setattr(bpe, "CACHE_SIZE", 5)
    fresh = trained("gpt1")
    ids = fresh.encode(" ".join(CORPUS))
    assert len(fresh._cache) <= 5
    assert ids == tok.encode(" ".join(CORPUS))


def test_explain_replays_the_merges():
    tok = trained("gpt1", vocab_size=12, corpus=["aaabdaaabac"])
    (steps,) = tok.explain("aaab")
    assert steps == [
        (None, ["a", "a", "a", "b</w>"]),
        (0, ["aa", "a", "b</w>"]),  # only (a, a) applies: (a, b</w>) is no merge
    ]


def test_special_tokens_are_appended_and_never_come_from_text():
    tok = trained("gpt1")
    n = tok.vocab_size
    assert tok.add_special_tokens(GPT1_SPECIAL_TOKENS) == [n, n + 1, n + 2]
    assert tok.add_special_tokens(["_start_"]) == [n]  # adding again keeps the id
    assert tok.vocab_size == n + 3
    text_ = "_start_ the dog _delimiter_ a fox _classify_"
    assert not set(tok.encode(text_)) & {n, n + 1, n + 2}
    ids = tok.encode(text_, allowed_special="all")
    assert ids[0] == n and ids[-1] == n + 2 and n + 1 in ids
    assert ids[1:-1] == tok.encode("the dog") + [n + 1] + tok.encode("a fox")
    only_start = tok.encode(text_, allowed_special=["_start_"])
    assert only_start[0] == n and n + 1 not in only_start
    assert tok.special_id("_classify_") == n + 2
    assert tok.decode(ids) == "_start_the dog _delimiter_a fox _classify_"


def test_special_token_errors():
    tok = trained("gpt1")
    with pytest.raises(ValueError, match="already an ordinary token"):
        tok.add_special_tokens(["the</w>"])
    with pytest.raises(ValueError, match="no special token '_start_'"):
        tok.special_id("_start_")
    with pytest.raises(ValueError, match="no special token"):
        tok.encode("x", allowed_special=["_start_"])


@pytest.mark.parametrize("mode", ["gpt1", "bytes"])
def test_save_and_load_round_trip(tmp_path, mode):
    tok = trained(mode, special_tokens=["_start_"])
    tok.add_special_tokens(["_classify_"])
    tok.save(tmp_path / "tok")
    back = BPETokenizer.load(tmp_path / "tok")
    assert (back.mode, back.vocab_size, back.merges) == (mode, tok.vocab_size, tok.merges)
    assert back.special_tokens == tok.special_tokens
    for case in [*CORPUS, *EDGE_CASES]:
        assert back.encode(case) == tok.encode(case)
    assert back.encode("_start_", allowed_special="all") == [tok.special_id("_start_")]
    vocab = json.loads((tmp_path / "tok" / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["_classify_"] == tok.special_id("_classify_")
    assert not [p.name for p in (tmp_path / "tok").iterdir() if p.name.startswith(".")]


def test_merges_with_spaces_newlines_and_non_ascii_round_trip(tmp_path):
    corpus = ["  \n\n  \t\t  ééé ééé 中文 中文 \r\n\r\n" * 3]
    tok = trained("bytes", vocab_size=280, corpus=corpus)
    tok.save(tmp_path)
    merges_txt = (tmp_path / "merges.txt").read_text(encoding="utf-8")
    assert merges_txt.startswith("#version: 0.2\n")
    assert "Ġ" in merges_txt and "Ċ" in merges_txt  # space and newline, as GPT-2 writes them
    back = BPETokenizer.load(tmp_path)
    assert back.merges == tok.merges
    assert back.decode(back.encode(corpus[0])) == corpus[0]


def test_load_keeps_the_ids_of_huggingface_files(tmp_path):
    # An openai-gpt-style directory (no minigpt1_bpe.json) whose ids are deliberately not in
    # our layout: load must take them as written.
    vocab = {"<unk>": 0, "the</w>": 1, "t": 2, "h": 3, "e</w>": 4, "th": 5, "\n</w>": 6}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\nt h\nth e</w>\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mode='gpt1'"):
        BPETokenizer.load(tmp_path)
    tok = BPETokenizer.load(tmp_path, mode="gpt1")
    assert tok.encode("The THE the") == [1, 1, 1]
    assert tok.encode("thee") == [5, 0, 4]  # "e" alone (not at a word's end) is unknown
    assert tok.decode([1, 1]) == "the the"


def test_gpt1_mode_normalisation_matches_unicode_for_a_sample():
    # A cross-check of strip_accents independent of our regexes: NFD minus Mn, lower-cased.
    word = "ÀÉÎÕÜçñ"
    expected = "".join(
        c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn"
    ).lower()
    assert words_gpt1(word) == [expected] == ["aeioucn"]
