"""Lesson 01, tokenization: count pairs, apply a merge, decode byte-level ids.

Each check builds its own inputs from a fixed seed and compares the student's answer with the
library (trainers.get_stats and trainers.merge, BPETokenizer.decode), so an answer is right
exactly when it agrees with the code the tokenizer really runs.
"""

import random

from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.tokenizer.trainers import get_stats, merge

from .base import Exercise

# -- 1. pair counts over a corpus of words ------------------------------------------------


def pair_counts(words):
    """How often each adjacent pair occurs in a corpus of distinct words with their counts.

    >>> pair_counts({(1, 2, 3): 5, (2, 3): 7})
    {(1, 2): 5, (2, 3): 12}
    """
    counts = {}
    for word, n in words.items():
        # A word that occurs n times contributes each of its pairs n times.
        for i in range(len(word) - 1):
            pair = (word[i], word[i + 1])
            counts[pair] = counts.get(pair, 0) + n
    return counts


def _random_words(rng, how_many, alphabet, longest):
    words = {}
    while len(words) < how_many:
        word = tuple(rng.randrange(alphabet) for _ in range(rng.randint(1, longest)))
        words[word] = rng.randint(1, 50)
    return words


def check_pair_counts(answer):
    got = answer({(0, 0, 0, 1, 3, 0, 0, 0, 1, 0, 2): 1})
    assert isinstance(got, dict), f"return a dict {{(a, b): count}}, not {type(got).__name__}"
    # "aaabdaaabac": (a, a) occurs 4 times, overlapping runs included.
    assert got.get((0, 0)) == 4, (
        f"in 'aaabdaaabac' the pair (a, a) = (0, 0) occurs 4 times (a a a holds two "
        f"overlapping pairs), you counted {got.get((0, 0))}")
    assert answer({(5,): 3}) == {}, "a word of one symbol has no pairs: expect {}"
    got = answer({(1, 2, 3): 5, (2, 3): 7})
    assert got == {(1, 2): 5, (2, 3): 12}, (
        f"each word counts as many times as it occurs: {{(1, 2, 3): 5, (2, 3): 7}} gives "
        f"{{(1, 2): 5, (2, 3): 12}}, you returned {got}")
    rng = random.Random(0)
    for _ in range(20):
        words = _random_words(rng, how_many=30, alphabet=6, longest=9)
        expected = {}
        for word, n in words.items():
            get_stats(word, expected, weight=n)
        got = answer(dict(words))
        assert got == expected, (
            f"differs from trainers.get_stats summed over the words; on {words} expected "
            f"{expected}, got {got}")


# -- 2. one merge -------------------------------------------------------------------------


def merge_pair(ids, pair, new_id):
    """Replace each occurrence of `pair` in `ids` by `new_id`, left to right, never overlapping.

    >>> merge_pair([1, 2, 3, 1, 2], (1, 2), 9)
    [9, 3, 9]
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)  # the pair becomes one symbol: skip both of its halves
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _as_list(got):
    assert isinstance(got, list | tuple), f"return a list of ids, not {type(got).__name__}"
    return list(got)


def check_merge_pair(answer):
    got = _as_list(answer([1, 2, 3, 1, 2], (1, 2), 9))
    assert got == [9, 3, 9], (
        f"merge_pair([1, 2, 3, 1, 2], (1, 2), 9) should be [9, 3, 9], got {got}")
    got = _as_list(answer([7, 7, 7], (7, 7), 8))
    assert got == [8, 7], (
        f"occurrences never overlap: in [7, 7, 7] only the leftmost (7, 7) is merged, giving "
        f"[8, 7]; got {got}")
    assert _as_list(answer([], (1, 2), 3)) == [], "an empty sequence stays empty"
    assert _as_list(answer([1], (1, 2), 3)) == [1], "a lone 1 is not the pair (1, 2)"
    rng = random.Random(1)
    for _ in range(200):
        ids = [rng.randrange(3) for _ in range(rng.randint(0, 12))]
        pair = (rng.randrange(3), rng.randrange(3))
        before = list(ids)
        got = _as_list(answer(ids, pair, 3))
        assert ids == before, "leave the input list unchanged: build a new list"
        expected = merge(before, pair, 3)
        assert got == expected, (
            f"merge_pair({before}, {pair}, 3) should be {expected} (as trainers.merge), "
            f"got {got}")


# -- 3. decoding byte-level ids -----------------------------------------------------------


def decode_bytes(ids, merges):
    """Text of byte-level BPE ids; ids 0-255 are the bytes, merge i makes id 256 + i.

    >>> decode_bytes([104, 256, 111], [(101, 108), (108, 108)])
    'helo'
    """
    # Every token is a string of bytes: a byte, or the two tokens its merge joined.
    vocab = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[256 + i] = vocab[a] + vocab[b]
    # Join the bytes first and decode once: a character may be cut across two tokens.
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


_CORPUS = [
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
    "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles.",
    "Café, naïve, façade: déjà vu. Crème brûlée! 😀😀 🎭🎭 — ½ ∞",
]


def check_decode_bytes(answer):
    tok = BPETokenizer.train(_CORPUS * 3, vocab_size=330, mode="bytes", progress=False)
    # Merges as id pairs, in order: merge i made the token with id 256 + i.
    merges = [(tok.token_to_id(a), tok.token_to_id(b)) for a, b in tok.merges]
    assert [tok.token_to_id(a + b) for a, b in tok.merges] == list(range(256, tok.vocab_size))
    for text in ["", "a", "hello", "Hamlet: to be, or not to be.", *_CORPUS,
                 "🎭 Ὅμηρος, 東京 and naïveté\n\ttabs"]:
        ids = tok.encode(text)
        got = answer(ids, merges)
        assert isinstance(got, str), f"return a str, not {type(got).__name__}"
        assert got == tok.decode(ids) == text, (
            f"decoding the ids of {text!r} should give the text back, got {got!r}. Build "
            f"each token's bytes from its merge, join all the bytes, then decode as UTF-8")


EXERCISES = {
    "tokenization_pair_counts": Exercise(solution=pair_counts, check=check_pair_counts),
    "tokenization_merge": Exercise(solution=merge_pair, check=check_merge_pair),
    "tokenization_decode_bytes": Exercise(solution=decode_bytes, check=check_decode_bytes),
}
