"""Merge order: encoding a word applies the earliest-learned merge first, in both modes.

A word where two known merges overlap is the only place the order shows: in "abc" with the
merges (b, c) then (a, b), whichever merge runs first takes the b away from the other. The
other tokenizer tests never build such a word, so they pass with the order reversed.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.tokenizer.files import BYTE_CHARS, TokenizerFiles
from minigpt1.tokenizer.trainers import EOW, UNK, merge

# -- "abc" with the merges (b, c) then (a, b), derived by hand --------------------------------
#
# bytes mode: a b c = 97 98 99; merge 0 = (b, c) -> 256 "bc", merge 1 = (a, b) -> 257 "ab".
#   Both pairs are in a b c. The lower rank goes first: b c -> bc, leaving a bc, and no merge
#   joins (a, bc): [97, 256], a + bc. Highest rank first would give ab + c, [257, 99].
# gpt1 mode: <unk> 0, a b c = 1 2 3, a</w> b</w> c</w> = 4 5 6; the word is a b c</w>, so
#   merge 0 = (b, c</w>) -> 7 "bc</w>", merge 1 = (a, b) -> 8 "ab". The same reasoning gives
#   [1, 7], a + bc</w> (not ab + c</w>, [8, 6]).
HAND_MADE = {
    "bytes": ([("b", "c"), ("a", "b")], ["a", "bc"], [97, 256]),
    "gpt1": ([("b", "c" + EOW), ("a", "b")], ["a", "bc" + EOW], [1, 7]),
}


def tokenizer_with(mode, merges):
    """The tokenizer that training would lay out, for the alphabet a, b, c and these merges."""
    if mode == "bytes":
        base = list(BYTE_CHARS)
    else:
        base = [UNK, "a", "b", "c", "a" + EOW, "b" + EOW, "c" + EOW]
    tokens = base + [a + b for a, b in merges]
    vocab = {token: i for i, token in enumerate(tokens)}
    return BPETokenizer(TokenizerFiles(mode, vocab, merges, {}))


@pytest.mark.parametrize("mode", ["bytes", "gpt1"])
def test_the_earliest_merge_wins_where_two_overlap(mode):
    merges, pieces, ids = HAND_MADE[mode]
    tok = tokenizer_with(mode, merges)
    assert tok.tokens("abc") == pieces
    assert tok.encode("abc") == ids
    assert tok.decode(ids) == "abc"


# -- any word: encoding == replaying every merge, in rank order ----------------------------
#
# The definition BPE starts from: take the word's base symbols and apply each learned merge in
# turn, every occurrence at once (the trainer's own `merge`). The encoder's loop (lowest rank
# present first) must give the same ids. A three-letter alphabet makes overlapping merges
# common, so a wrong order shows within a few examples.
LETTERS = "abc"
ALPHABET = " ".join(LETTERS)  # one-letter words: every letter is known, no pair is added
CORPORA = st.lists(st.text(LETTERS, min_size=1, max_size=8), min_size=1, max_size=12)


def base_ids(tok, word):
    """The word's symbols before any merge, looked up by name in the vocabulary."""
    if tok.mode == "bytes":
        symbols = [BYTE_CHARS[b] for b in word.encode("utf-8")]
    else:
        symbols = [*word[:-1], word[-1] + EOW]
    return [tok.token_to_id(s) for s in symbols]


def replay(tok, word):
    ids = base_ids(tok, word)
    for a, b in tok.merges:
        ids = merge(ids, (tok.token_to_id(a), tok.token_to_id(b)), tok.token_to_id(a + b))
    return ids


@settings(max_examples=200, deadline=None)
@given(CORPORA, st.text(LETTERS, min_size=1, max_size=12), st.sampled_from(["bytes", "gpt1"]))
def test_encoding_a_word_replays_every_merge_in_rank_order(corpus, word, mode):
    base = 256 if mode == "bytes" else 1 + 2 * len(LETTERS)
    tok = BPETokenizer.train([*corpus, ALPHABET], base + 40, mode, progress=False)
    assert tok.encode(word) == replay(tok, word)
