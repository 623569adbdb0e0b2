"""The tokenizer's speed paths against the plain code they stand in for.

ASCII shortcuts (pretokenization.py): normalize_gpt1 and split_bytes take them for pure ASCII
text and must give exactly what normalize_gpt1_unicode and split_bytes_unicode give.
The fast trainer (trainers.py) spells words as strings, one character per symbol id, and
updates only a merge's neighbours: its merges must be the naive trainer's for any ids,
including ids whose characters are surrogates or lie beyond the 16-bit range.
"""

from collections import defaultdict
from itertools import product
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt1.tokenizer.pretokenization import (
    normalize_gpt1,
    normalize_gpt1_unicode,
    split_bytes,
    split_bytes_unicode,
)
from minigpt1.tokenizer.trainers import (
    count_words,
    initial_symbols,
    merge_everywhere,
    train_fast,
    train_naive,
)

ROOT = Path(__file__).resolve().parents[1]
ASCII = [chr(c) for c in range(128)]
# The characters GPT-2's expression treats differently: contraction letters, the apostrophe,
# spaces and other whitespace, a digit, symbols, and controls.
TRICKY = "'srtvmld \t\n\r\x0b\x0cA9$_-\x00\x7f"
ASCII_TEXT = st.text(st.sampled_from(ASCII), max_size=80)
TRICKY_TEXT = st.text(st.sampled_from(TRICKY), max_size=40)


# -- the ASCII shortcuts -----------------------------------------------------------------

def test_every_ascii_pair_normalises_as_the_general_code_does():
    # Pairs show that a character's normal form does not depend on its neighbour.
    for text in map("".join, product(ASCII, repeat=2)):
        assert text.isascii()
        assert normalize_gpt1(text) == normalize_gpt1_unicode(text), repr(text)


def test_every_ascii_pair_splits_as_the_general_code_does():
    for text in map("".join, product(ASCII, repeat=2)):
        assert split_bytes(text) == split_bytes_unicode(text), repr(text)


@settings(max_examples=400, deadline=None)
@given(st.one_of(ASCII_TEXT, TRICKY_TEXT))
def test_the_ascii_shortcuts_agree_on_any_ascii_text(text):
    assert normalize_gpt1(text) == normalize_gpt1_unicode(text)
    assert split_bytes(text) == split_bytes_unicode(text)


def test_the_shortcuts_agree_on_a_real_file_and_leave_other_text_alone():
    # Source code, made ASCII if it is not: long lines, indentation, every kind of symbol.
    source = (ROOT / "minigpt1" / "tokenizer" / "trainers.py").read_text(encoding="utf-8")
    text = source.encode("ascii", "ignore").decode("ascii")
    assert normalize_gpt1(text) == normalize_gpt1_unicode(text)
    assert split_bytes(text) == split_bytes_unicode(text)
    # One character beyond ASCII sends the whole text down the general path.
    assert split_bytes(text + " é")[-1] == " é"
    assert normalize_gpt1(text + " É").endswith(" e")


# -- the fast trainer ----------------------------------------------------------------------

def spelled(*words):
    return ["".join(map(chr, word)) for word in words]


def test_merge_everywhere_moves_counts_to_the_neighbours_by_hand():
    # Words (count): x a b y (3), a b a b (2), a b (5), x a (1); a b x y = 0 1 2 3, z = 9.
    # Before: (x,a) 3+1=4, (a,b) 3+2*2+5=12, (b,y) 3, (b,a) 2.
    # Merging (a, b) into z: x z y (3), z z (2), z (5), x a (1); after: (x,a) 1, (b,y) 0,
    # (b,a) 0, and the new pairs (x,z) 3, (z,y) 3, (z,z) 2.
    words = spelled((2, 0, 1, 3), (0, 1, 0, 1), (0, 1), (2, 0))
    counts = [3, 2, 5, 1]
    where, pair_counts = defaultdict(list), defaultdict(int)
    for i, word in enumerate(words):
        for left, right in zip(word, word[1:], strict=False):
            where[left + right].append(i)
            pair_counts[left + right] += counts[i]
    x, a, b, y, z = "\x02", "\x00", "\x01", "\x03", "\x09"
    new_pairs = merge_everywhere(a + b, z, words, counts, pair_counts, where)
    assert words == [x + z + y, z + z, z, x + a]
    assert sorted(new_pairs) == sorted([x + z, z + y, z + z])
    assert dict(pair_counts) == {x + a: 1, b + y: 0, b + a: 0, x + z: 3, z + y: 3, z + z: 2}
    assert where[x + z] == [0] and where[z + y] == [0] and where[z + z] == [1]
    assert a + b not in where and a + b not in pair_counts


# Ids from all over the code-point space: the spelled pairs must still compare as the ids do.
FAR_IDS = st.sampled_from([0, 1, 2, 0xD7FF, 0xD800, 0xDFFF, 0xFFFF, 0x10000, 0x10FFF0])
FAR_WORDS = st.dictionaries(
    keys=st.lists(FAR_IDS, min_size=1, max_size=8).map(tuple),
    values=st.integers(1, 4),
    min_size=1,
    max_size=15,
)


@settings(max_examples=200, deadline=None)
@given(FAR_WORDS, st.integers(0, 12), st.sampled_from([3, 0xD801, 0x10FFF1]))
def test_fast_trainer_matches_naive_for_ids_anywhere(words, num_merges, first_id):
    # New ids never collide with FAR_IDS; from 0xD801 they are surrogates, and from 0x10FFF1
    # they reach the last code points.
    assert train_fast(words, num_merges, first_id) == train_naive(words, num_merges, first_id)


def test_fast_trainer_says_when_ids_run_out_of_characters():
    with pytest.raises(ValueError, match="1,114,112 symbol ids"):
        train_fast({(0, 1): 1}, num_merges=20, first_id=0x10FFF0)


@pytest.mark.parametrize("mode", ["gpt1", "bytes"])
def test_fast_trainer_matches_naive_on_real_text(mode):
    # Source code has long words, repeated pairs (====, ----) and many ties.
    paths = sorted((ROOT / "minigpt1" / "tokenizer").glob("*.py"))
    texts = [path.read_text(encoding="utf-8") for path in paths]
    base, words = initial_symbols(count_words(texts, mode), mode)
    fast = train_fast(words, 80, len(base))
    assert len(fast) == 80
    assert fast == train_naive(words, 80, len(base))

