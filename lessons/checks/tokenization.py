"""Lesson 01, tokenization: a byte-level BPE built by hand, from counting pairs to encoding
whole texts and decoding ids.

The exercises follow the tokenizer's own pipeline: count pairs, merge one pair, take one
training step, cut text into pre-tokens with GPT-2's pattern, encode one pre-token by the
ranks of its merges, encode a whole text, decode ids. Each check builds its own inputs (fixed
seeds, a small byte-level tokenizer trained on a Shakespeare paragraph and a line of unicode)
and compares the answer with the library (trainers.get_stats, merge and train_naive,
pretokenization.split_bytes, BPETokenizer.encode and decode), which is switched off while the
answer runs. A byte-level vocabulary is laid out as in the library: ids 0 to 255 are the
bytes, and merge i, a pair of ids (a, b), makes the id 256 + i.
"""

import random
from functools import cache
from itertools import pairwise

import regex

from minigpt1.tokenizer.bpe import BPETokenizer
from minigpt1.tokenizer.files import BYTE_CHARS, TokenizerFiles
from minigpt1.tokenizer.pretokenization import split_bytes, split_bytes_unicode
from minigpt1.tokenizer.trainers import get_stats, merge, train_fast, train_naive

from .base import SWITCHED_OFF, Exercise, Mistake

FIRST_MERGE_ID = 256  # ids 0-255 are the bytes

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
        f"in 'aaabdaaabac' the pair (a, a) = (0, 0) occurs 4 times: count every position, "
        f"overlapping ones included (a a a holds two pairs); you counted {got.get((0, 0))}")
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


def _pair_counts_from_the_library(words):
    counts = {}
    for word, n in words.items():
        get_stats(word, counts, weight=n)
    return counts


def _pair_counts_once_per_word(words):
    return pair_counts({word: 1 for word in words})  # forgets how often each word occurs


def _pair_counts_distinct_pairs(words):
    counts = {}
    for word, n in words.items():
        for pair in set(pairwise(word)):  # a repeated pair counted once
            counts[pair] = counts.get(pair, 0) + n
    return counts


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


def _merge_from_the_library(ids, pair, new_id):
    return merge(ids, pair, new_id)


def _merge_overlapping(ids, pair, new_id):
    # Every position where the pair starts is merged, so in 7 7 7 the middle 7 is used twice.
    starts = [i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == pair]
    out = list(ids)
    for i in reversed(starts):
        out[i:i + 2] = [new_id]
    return out


def _merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]  # changes the caller's list
        i += 1
    return ids


# -- 3. one training step -----------------------------------------------------------------


def train_step(words, new_id):
    """One step of BPE training: the most frequent pair (ties: the smallest pair) becomes
    `new_id` in every word. Returns (pair, the words after the merge).

    >>> train_step({(0, 0, 0, 1): 1}, 2)
    ((0, 0), {(2, 0, 1): 1})
    """
    counts = pair_counts(words)
    # min of (-count, pair): the highest count first, and among equal counts the smallest pair
    pair = min(counts, key=lambda p: (-counts[p], p))
    return pair, {tuple(merge_pair(list(word), pair, new_id)): n for word, n in words.items()}


def _step(answer, words, new_id):
    """answer(words, new_id), checked for shape and for leaving `words` alone."""
    before = dict(words)
    got = answer(words, new_id)
    assert isinstance(got, tuple) and len(got) == 2, "return a pair: (the pair, the new words)"
    pair, merged = got
    assert words == before, "leave the words unchanged: build a new dict"
    assert isinstance(merged, dict), f"return the new words as a dict, not {type(merged)}"
    return tuple(pair), {tuple(word): n for word, n in merged.items()}


def check_train_step(answer):
    aaabdaaabac = (0, 0, 0, 1, 3, 0, 0, 0, 1, 0, 2)  # a, b, c, d = 0, 1, 2, 3
    pair, words = _step(answer, {aaabdaaabac: 1}, 4)
    assert pair == (0, 0), (
        f"in aaabdaaabac the pair (a, a) = (0, 0) occurs 4 times, more than any other: "
        f"the step merges it; yours merged {pair}")
    zabdzabac = (4, 0, 1, 3, 4, 0, 1, 0, 2)
    assert words == {zabdzabac: 1}, (
        f"after merging (0, 0) into 4, the word is {zabdzabac} (left to right, never "
        f"overlapping), with its count; you returned {words}")
    pair, _ = _step(answer, {zabdzabac: 1}, 5)
    assert pair == (0, 1), (
        f"in {zabdzabac}, (4, 0) and (0, 1) both occur twice: on a tie take the smallest "
        f"pair (compare a first, then b), not the first one found; yours took {pair}")
    pair, _ = _step(answer, {(5, 6): 3, (1, 2, 9): 1, (1, 2, 8): 1}, 10)
    assert pair == (5, 6), (
        f"weight each word's pairs by how often the word occurs: (5, 6) occurs 3 times, "
        f"(1, 2) twice; yours took {pair}")
    rng = random.Random(2)
    for _ in range(30):
        words = _random_words(rng, how_many=12, alphabet=5, longest=8)
        if all(len(word) == 1 for word in words):
            continue  # nothing to merge
        (expected,) = train_naive(words, 1, first_id=5)
        new_words = {tuple(merge(word, expected, 5)): n for word, n in words.items()}
        got = _step(answer, words, 5)
        assert got == (expected, new_words), (
            f"on {words} the step should give {(expected, new_words)} (as "
            f"trainers.train_naive), got {got}")


def _train_step_from_the_library(words, new_id):
    (pair,) = train_naive(words, 1, first_id=new_id)
    return pair, {tuple(merge_pair(list(w), pair, new_id)): n for w, n in words.items()}


def _train_step_first_found(words, new_id):
    counts = pair_counts(words)
    pair = max(counts, key=counts.get)  # a tie goes to the pair seen first
    return pair, {tuple(merge_pair(list(w), pair, new_id)): n for w, n in words.items()}


def _train_step_unweighted(words, new_id):
    pair, _ = train_step({word: 1 for word in words}, new_id)  # every word counted once
    return pair, {tuple(merge_pair(list(w), pair, new_id)): n for w, n in words.items()}


# -- 4. pre-tokenisation ------------------------------------------------------------------

# GPT-2's pattern, tried alternative by alternative at each position of the text.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def pretokenize(text):
    """GPT-2's pre-tokens of `text`; joined, they give the text back.

    >>> pretokenize("I'll pay 100$  now\\n")
    ['I', "'ll", ' pay', ' 100', '$', ' ', ' now', '\\n']
    """
    return regex.findall(GPT2_PATTERN, text)


_HAMLET = (
    "To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer "
    "The slings and arrows of outrageous fortune, Or to take arms against a sea of troubles "
    "And by opposing end them. To die: to sleep; No more; and by a sleep to say we end "
    "The heart-ache and the thousand natural shocks That flesh is heir to, 'tis a "
    "consummation Devoutly to be wish'd."
)
_UNICODE = "Café, naïve, façade: déjà vu. Crème brûlée! 😀😀 🎭🎭 — ½ ∞"
_ASCII_TEXTS = [_HAMLET, "aaaa aaaaaaa", "aaabdaaabac", "I'll pay 100$ to  the\n\nplayers\t."]
_UNICODE_TEXTS = [_UNICODE, "🎭 Ὅμηρος, 東京 and naïveté\n\ttabs", "😀", "naïve"]
_PIECES = ["a", "Zo", "é", "ß", "😀", "東", "7", "42", " ", "  ", "\n", "\t", "'s", "'ll",
           "'", ".", ",", "$", "—", "½"]


def _random_texts(seed, how_many):
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 15)))
            for _ in range(how_many)]


def check_pretokenize(answer):
    for text in ["Hello world", "a  b", "I'll pay 100$", *_ASCII_TEXTS, *_UNICODE_TEXTS]:
        got = answer(text)
        assert isinstance(got, list) and all(isinstance(p, str) for p in got), (
            f"return a list of strings, not {type(got).__name__}")
        assert "".join(got) == text, (
            f"every character must land in exactly one pre-token, spaces included: joined, "
            f"the pre-tokens of {text!r} give {''.join(got)!r}")
    got = answer("Hello world")
    assert got == ["Hello", " world"], (
        f"a space goes to the front of the word after it: 'Hello world' -> ['Hello', "
        f"' world'], got {got}")
    got = answer("a  b")
    assert got == ["a", " ", " b"], (
        f"in a run of spaces before a word, the last space goes with the word and the rest "
        f"form a pre-token of their own: 'a  b' -> ['a', ' ', ' b'], got {got}")
    got = answer("I'll pay 100$")
    assert got == ["I", "'ll", " pay", " 100", "$"], (
        f"contractions ('s 't 're 've 'm 'll 'd) come first, and letters, numbers and other "
        f"symbols are separate runs: \"I'll pay 100$\" -> ['I', \"'ll\", ' pay', ' 100', '$'], "
        f"got {got}")
    for text in [*_ASCII_TEXTS, *_UNICODE_TEXTS, *_random_texts(seed=3, how_many=200)]:
        expected, got = split_bytes(text), answer(text)
        assert got == expected, (
            f"on {text!r} GPT-2's pre-tokenizer gives {expected}, yours {got}: check the "
            f"alternatives and their order")


def _pretokenize_with_the_library(text):
    return split_bytes(text)


def _pretokenize_on_whitespace(text):
    return text.split()


def _pretokenize_space_after(text):
    # letters, numbers and symbols take the space that follows them, not the one before
    return regex.findall(r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+ ?|\p{N}+ ?|[^\s\p{L}\p{N}]+ ?|\s+",
                         text)


def _pretokenize_whole_space_runs(text):
    return regex.findall(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+",
                         text)  # no (?!\S): a run of spaces keeps its last space


# -- 5. encoding one pre-token ------------------------------------------------------------


def encode_word(ids, merges):
    """Apply the merges to the byte ids of one pre-token: the learned pair of lowest rank
    first (merge i has rank i and makes id 256 + i), all its occurrences, then again, until
    no adjacent pair is a learned merge.

    >>> encode_word([116, 104, 101], [(104, 101), (116, 104)])  # t h e: 'he' is merge 0
    [116, 256]
    """
    rank = {pair: i for i, pair in enumerate(merges)}
    ids = list(ids)
    while len(ids) > 1:
        # the adjacent pair learned earliest, wherever it sits in the word
        pair = min(pairwise(ids), key=lambda p: rank.get(p, float("inf")))
        if pair not in rank:
            break  # no adjacent pair is a merge: done
        ids = merge_pair(ids, pair, FIRST_MERGE_ID + rank[pair])
    return ids


@cache
def _byte_tokenizer():
    """A small bytes-mode tokenizer, and its merges as id pairs (merge i makes 256 + i)."""
    texts = [_HAMLET, _UNICODE, "aaaa aaaaaaa  zzz\n\n"] * 3
    tok = BPETokenizer.train(texts, vocab_size=330, mode="bytes", progress=False)
    merges = tuple((tok.token_to_id(a), tok.token_to_id(b)) for a, b in tok.merges)
    assert [tok.token_to_id(a + b) for a, b in tok.merges] == list(
        range(FIRST_MERGE_ID, tok.vocab_size))
    return tok, merges


def _library_tokenizer(merges):
    """A BPETokenizer made from id merges: what a student could build to call the library."""
    tokens = [BYTE_CHARS[b] for b in range(FIRST_MERGE_ID)]
    for a, b in merges:
        tokens.append(tokens[a] + tokens[b])
    named = [(tokens[a], tokens[b]) for a, b in merges]
    return BPETokenizer(TokenizerFiles("bytes", {t: i for i, t in enumerate(tokens)}, named, {}))


def check_encode_word(answer):
    h, e, t = b"het"
    got = _as_list(answer([h, e], [(h, e)]))
    assert got == [256], f"merge 0, (h, e), makes the id 256 (merge i makes 256 + i); got {got}"
    got = _as_list(answer([t, h, e], [(h, e), (t, h)]))
    assert got == [t, 256], (
        f"the lowest rank first, wherever it sits: (h, e) was learned before (t, h), so t h e "
        f"becomes t + he = [{t}, 256], even though (t, h) comes first in the word; got {got}")
    a, b, c = b"abc"
    got = _as_list(answer([a, b, c], [(a, b), (256, c)]))
    assert got == [257], (
        f"repeat until no adjacent pair is a learned merge: a b c -> (ab) c -> (abc), so "
        f"[{a}, {b}, {c}] with merges [({a}, {b}), (256, {c})] gives [257]; got {got}")
    got = _as_list(answer([a, a, a], [(a, a)]))
    assert got == [256, a], f"occurrences never overlap: a a a -> (aa) a, got {got}"
    got = _as_list(answer([a] * 4, [(a, a), (256, 256)]))
    assert got == [257], f"a a a a -> (aa) (aa) -> (aaaa) = [257], got {got}"
    assert _as_list(answer([], [(a, a)])) == [], "an empty word has no tokens: return []"
    tok, merges = _byte_tokenizer()
    for text in [*_ASCII_TEXTS, *_UNICODE_TEXTS]:
        for piece in split_bytes(text):
            ids = list(piece.encode("utf-8"))
            expected = tok.encode(piece)
            got = _as_list(answer(ids, list(merges)))
            assert ids == list(piece.encode("utf-8")), "leave the input list unchanged"
            assert got == expected, (
                f"the pre-token {piece!r}, bytes {ids}, should become {expected} (as "
                f"BPETokenizer.encode), got {got}")


def _encode_word_with_the_library(ids, merges):
    return _library_tokenizer(merges)._bpe(list(ids))


def _encode_word_in_text_order(ids, merges):
    rank = {pair: i for i, pair in enumerate(merges)}
    ids = list(ids)
    while True:
        # merges the leftmost learned pair, whatever its rank
        at = next((i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) in rank), None)
        if at is None:
            return ids
        ids[at:at + 2] = [FIRST_MERGE_ID + rank[(ids[at], ids[at + 1])]]


def _encode_word_one_merge(ids, merges):
    for i, pair in enumerate(merges):
        if pair in pairwise(ids):
            return merge_pair(list(ids), pair, FIRST_MERGE_ID + i)  # and stops there
    return list(ids)


# -- 6. encoding a text -------------------------------------------------------------------


def encode_text(text, merges):
    """Byte-level BPE ids of `text`: pre-tokens, each one's UTF-8 bytes, merged by rank.

    >>> encode_text("aaa aa", [(97, 97)])  # 'aaa' and ' aa' are merged apart
    [256, 97, 32, 256]
    """
    ids = []
    for piece in pretokenize(text):  # merges never cross a pre-token boundary
        ids.extend(encode_word(list(piece.encode("utf-8")), merges))
    return ids


def _short(text, longest=60):
    """repr(text), cut to about `longest` characters for a hint."""
    return repr(text) if len(text) <= longest else repr(text[:longest]) + "..."


def _readable(ids, merges):
    """decode_bytes(ids, merges), or None if an id is no token of this vocabulary."""
    if any(not 0 <= i < FIRST_MERGE_ID + len(merges) for i in ids):
        return None
    return decode_bytes(ids, merges)


def _difference(expected, got):
    """Where two id lists part, in a few words."""
    at = next((i for i, (e, g) in enumerate(zip(expected, got, strict=False)) if e != g),
              min(len(expected), len(got)))
    return (f"from position {at} on, expected {expected[at:at + 6]}, got {got[at:at + 6]} "
            f"({len(expected)} ids expected, {len(got)} given)")


def _encoded_as_expected(answer, text, tok, merges):
    expected = tok.encode(text)
    got = _as_list(answer(text, list(merges)))
    if got == expected:
        return
    assert got != encode_word(list(text.encode("utf-8")), merges), (
        f"on {_short(text)}, merges crossed a pre-token boundary: cut the text into pre-tokens "
        f"first (pretokenize), then apply the merges inside each one")
    if not text.isascii():
        raise AssertionError(
            f"right on ASCII but not on {text!r}: a character beyond ASCII is 2 to 4 bytes in "
            f"UTF-8, so take each pre-token's bytes with str.encode('utf-8') and merge those; "
            f"{_difference(expected, got)}")
    back = _readable(got, merges)
    assert back == text, (
        f"the ids of {_short(text)} do not give the text back (they decode to "
        f"{'ids outside the vocabulary' if back is None else _short(back)}): every "
        f"character, spaces included, must be encoded, pre-token by pre-token")
    raise AssertionError(
        f"on {_short(text)} your ids differ from BPETokenizer.encode's, "
        f"{_difference(expected, got)}: within each pre-token, merge the pair of lowest rank "
        f"first, and repeat")


def check_encode_text(answer):
    tok, merges = _byte_tokenizer()
    assert _as_list(answer("", list(merges))) == [], "the empty string has no tokens: return []"
    for text in _ASCII_TEXTS:  # all ASCII first, so that unicode gets a hint of its own
        _encoded_as_expected(answer, text, tok, merges)
    for text in [*_UNICODE_TEXTS, *_random_texts(seed=4, how_many=50)]:
        _encoded_as_expected(answer, text, tok, merges)


def _encode_text_with_the_library(text, merges):
    return _library_tokenizer(merges).encode(text)


def _encode_text_unsplit(text, merges):
    return encode_word(list(text.encode("utf-8")), merges)  # the text as one long pre-token


def _encode_text_of_words(text, merges):
    ids = []
    for word in text.split():  # the spaces are lost
        ids.extend(encode_word(list(word.encode("utf-8")), merges))
    return ids


def _encode_text_code_points(text, merges):
    ids = []
    for piece in pretokenize(text):
        ids.extend(encode_word([ord(ch) for ch in piece], merges))  # code points, not bytes
    return ids


# -- 7. decoding byte-level ids -----------------------------------------------------------


def decode_bytes(ids, merges):
    """Text of byte-level BPE ids; ids 0-255 are the bytes, merge i makes id 256 + i.

    >>> decode_bytes([104, 256, 111], [(101, 108), (108, 108)])
    'helo'
    """
    # Every token is a string of bytes: a byte, or the two tokens its merge joined.
    vocab = {i: bytes([i]) for i in range(FIRST_MERGE_ID)}
    for i, (a, b) in enumerate(merges):
        vocab[FIRST_MERGE_ID + i] = vocab[a] + vocab[b]
    # Join the bytes first and decode once: a character may be cut across two tokens.
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def check_decode_bytes(answer):
    tok, merges = _byte_tokenizer()
    for text in ["", "a", "hello", *_ASCII_TEXTS]:
        got = answer(tok.encode(text), list(merges))
        assert isinstance(got, str), f"return a str, not {type(got).__name__}"
        assert got == text, (
            f"decoding the ids of {_short(text)} should give the text back, got "
            f"{_short(got)}. Build each token's bytes: a byte for an id below 256, and for id "
            f"256 + i the bytes of merge i's first token followed by those of its second")
    for text in _UNICODE_TEXTS:
        ids = tok.encode(text)
        got = answer(ids, list(merges))
        assert got == tok.decode(ids) == text, (
            f"right on ASCII, but the ids of {text!r} decode to {got!r}: a character beyond "
            f"ASCII is several bytes, which can be cut across two tokens. Join the bytes of "
            f"all the tokens, then decode them as UTF-8 once")


def _decode_with_the_library(ids, merges):
    return _library_tokenizer(merges).decode(ids)


def _decode_token_by_token(ids, merges):
    vocab = {i: bytes([i]) for i in range(FIRST_MERGE_ID)}
    for i, (a, b) in enumerate(merges):
        vocab[FIRST_MERGE_ID + i] = vocab[a] + vocab[b]
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


def _decode_halves_swapped(ids, merges):
    vocab = {i: bytes([i]) for i in range(FIRST_MERGE_ID)}
    for i, (a, b) in enumerate(merges):
        vocab[FIRST_MERGE_ID + i] = vocab[b] + vocab[a]
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


# The library's encoders: any of them answers exercises 5 and 6.
_ENCODERS = (BPETokenizer.encode, BPETokenizer.tokens, BPETokenizer.explain,
             BPETokenizer._encode_ordinary, BPETokenizer._bpe)

EXERCISES = {
    "tokenization_pair_counts": Exercise(
        solution=pair_counts, check=check_pair_counts, library=(get_stats,),
        mistakes=(Mistake(_pair_counts_from_the_library, SWITCHED_OFF),
                  Mistake(_pair_counts_once_per_word, "as many times as it occurs"),
                  Mistake(_pair_counts_distinct_pairs, "count every position"))),
    "tokenization_merge": Exercise(
        solution=merge_pair, check=check_merge_pair, library=(merge,),
        mistakes=(Mistake(_merge_from_the_library, SWITCHED_OFF),
                  Mistake(_merge_overlapping, "occurrences never overlap"),
                  Mistake(_merge_in_place, "leave the input list unchanged"))),
    "tokenization_train_step": Exercise(
        solution=train_step, check=check_train_step,
        library=(train_naive, train_fast, get_stats, merge),
        mistakes=(Mistake(_train_step_from_the_library, SWITCHED_OFF),
                  Mistake(_train_step_first_found, "on a tie take the smallest pair"),
                  Mistake(_train_step_unweighted, "weight each word's pairs"))),
    "tokenization_pretokenize": Exercise(
        solution=pretokenize, check=check_pretokenize, library=(split_bytes, split_bytes_unicode),
        mistakes=(Mistake(_pretokenize_with_the_library, SWITCHED_OFF),
                  Mistake(_pretokenize_on_whitespace, "every character must land in exactly"),
                  Mistake(_pretokenize_space_after, "a space goes to the front of the word"),
                  Mistake(_pretokenize_whole_space_runs, "the last space goes with the word"))),
    "tokenization_encode_word": Exercise(
        solution=encode_word, check=check_encode_word, library=_ENCODERS,
        mistakes=(Mistake(_encode_word_with_the_library, SWITCHED_OFF),
                  Mistake(_encode_word_in_text_order, "the lowest rank first"),
                  Mistake(_encode_word_one_merge, "repeat until no adjacent pair"))),
    "tokenization_encode_text": Exercise(
        solution=encode_text, check=check_encode_text,
        library=(*_ENCODERS, split_bytes, split_bytes_unicode),
        mistakes=(Mistake(_encode_text_with_the_library, SWITCHED_OFF),
                  Mistake(_encode_text_unsplit, "merges crossed a pre-token boundary"),
                  Mistake(_encode_text_of_words, "do not give the text back"),
                  Mistake(_encode_text_code_points, "2 to 4 bytes in UTF-8"))),
    "tokenization_decode_bytes": Exercise(
        solution=decode_bytes, check=check_decode_bytes, library=(BPETokenizer.decode,),
        mistakes=(Mistake(_decode_with_the_library, SWITCHED_OFF),
                  Mistake(_decode_token_by_token, "cut across two tokens"),
                  Mistake(_decode_halves_swapped, "followed by those of its second"))),
}
