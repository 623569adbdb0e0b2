"""Text before BPE: normalisation and pre-tokenisation (cutting text into words).

BPE never merges across a word boundary, so every tokenizer first cuts text into "words".
minigpt1 has two ways of doing it, one per tokenizer mode.

gpt1 mode is what HuggingFace's OpenAIGPTTokenizer does in transformers 5.x, which is
tokenizers' BertNormalizer(lowercase=True) followed by BertPreTokenizer:

    normalize_gpt1   drop NUL, U+FFFD and control/format/private-use characters (Cc, Cf, Co,
                     but keep tab, newline and carriage return); turn every whitespace
                     character into a space; put spaces around CJK ideographs; strip accents
                     (NFD, then drop the non-spacing marks, Mn); lower-case character by
                     character (so a final capital sigma becomes an ordinary sigma)
    split_gpt1       split on whitespace, and make every punctuation character a word of its
                     own: Unicode categories P* plus every ASCII symbol, !"#$%&'()*+,-./
                     :;<=>?@ [\\]^_` {|}~ (codes 33-47, 58-64, 91-96, 123-126)

    >>> split_gpt1(normalize_gpt1("Café au lait, s'il vous plaît!"))
    ['cafe', 'au', 'lait', ',', 's', "'", 'il', 'vous', 'plait', '!']

This is not the pipeline of the 2018 release, which ran ftfy.fix_text, a text_standardize
step and the spaCy English tokenizer before lower-casing. That pipeline kept newlines as tokens
(`\\n</w>`), split contractions the spaCy way ("don't" -> "do", "n't"), did not split every
punctuation character ("u.s." stayed one word), and kept accents ("café" stays "café"); ftfy
also repaired mojibake. HuggingFace dropped it because spaCy and ftfy are heavy and their
output changes between versions; we follow HuggingFace so that our ids can be checked against
a maintained library.

One more, smaller difference: tokenizers classifies characters with Unicode 8.0 (2015)
tables, while we use the tables of the installed `regex` package (Unicode 15 or later).
Punctuation, marks and format characters added to Unicode since 2015 (about 650 code points,
mostly Quranic annotation marks and historic scripts) are split or dropped by us but kept as
letters by tokenizers, and four older characters changed category since (U+166D, U+1734,
U+1885, U+1886). Everything in Latin, Greek, Cyrillic, CJK and emoji is treated identically.

bytes mode is GPT-2's: no normalisation at all, words cut by GPT-2's regular expression below
(contractions, letters with an optional leading space, numbers, other symbols, whitespace).
Every character lands in exactly one word, so joining the words gives back the text and the
tokenizer can be lossless.

    >>> split_bytes("Hello world's  end")
    ['Hello', ' world', "'s", ' ', ' end']

Most English text is pure ASCII (all of Shakespeare is), and for it both modes take a
shortcut to the same words. normalize_gpt1 becomes one str.translate table, computed from
normalize_gpt1_unicode one character at a time (an ASCII character's normal form never depends
on its neighbours): some 40 times faster. split_bytes runs GPT-2's expression with its classes
written out for ASCII in the standard library's `re`, about twice as fast as `regex` on it. The
tests hold each shortcut equal to the general code.
"""

import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

import regex

# Characters BertNormalizer deletes: NUL, the replacement character, and "other" characters
# (control, format, private use; surrogates cannot reach Rust but can sit in a Python str).
# Tab, newline and carriage return are controls too, but they count as whitespace.
_DROP = regex.compile(r"[\x00\ufffd\p{Cc}\p{Cf}\p{Co}\p{Cs}--[\t\n\r]]+", regex.VERSION1)
# Whitespace that is not already a plain space; all of it becomes one space each.
_SPACE = regex.compile(r"[\p{White_Space}--[ ]]", regex.VERSION1)
# The CJK ideograph blocks BERT spaces out, so each ideograph becomes a word of its own.
_CJK = regex.compile(
    "[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002b73f"
    "\U0002b740-\U0002b81f\U0002b920-\U0002ceaf\U0002f800-\U0002fa1f]"
)
_NONSPACING_MARK = regex.compile(r"\p{Mn}+")
# Punctuation as BertPreTokenizer sees it: Unicode P* plus the four ASCII symbol ranges
# (33-47, 58-64, 91-96, 123-126), which also catches $ + < = > ^ ` | ~ (categories S*).
_PUNCT = r"\p{P}!-/:-@\[-`{-~"
_PAD_PUNCT = regex.compile(f"[{_PUNCT}]")

# GPT-2's pre-tokenizer (openai/gpt-2 encoder.py), as tokenizers' ByteLevel also uses it.
_GPT2_SPLIT = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
# The same for ASCII text: \p{L} is A-Z and a-z there, \p{N} is 0-9, and re.ASCII makes \s the
# six characters regex's \s matches among the first 128 (tab, newline, \v, \f, \r, space).
_GPT2_SPLIT_ASCII = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII
)


def normalize_gpt1(text: str) -> str:
    """BertNormalizer(lowercase=True): clean, space out CJK, strip accents, lower-case.

    >>> normalize_gpt1("  Ünïcode\\tTEXT\\u200b 中文 ΟΔΟΣ")
    '  unicode text  中  文  οδοσ'
    >>> normalize_gpt1("To be,\\r\\nOR NOT\\x00")
    'to be,  or not'
    """
    if text.isascii():  # a shortcut, the same result: see the module docstring
        return text.translate(_ASCII_GPT1)
    return normalize_gpt1_unicode(text)


def normalize_gpt1_unicode(text: str) -> str:
    """normalize_gpt1 for any text, step by step: the reference for the ASCII shortcut."""
    text = _DROP.sub("", text)
    text = _SPACE.sub(" ", text)
    text = _CJK.sub(r" \g<0> ", text)
    text = _NONSPACING_MARK.sub("", unicodedata.normalize("NFD", text))
    # Rust lower-cases one character at a time; Python's str.lower() alone would turn a
    # word-final capital sigma into the final form ς, so I pre-empt that single context rule.
    return text.replace("\u03a3", "\u03c3").lower()


# Each ASCII character's normal form, from the general code: controls vanish, tab, newline
# and carriage return become spaces, capitals become small letters.
_ASCII_GPT1 = str.maketrans({chr(c): normalize_gpt1_unicode(chr(c)) for c in range(128)})


def split_gpt1(text: str) -> list[str]:
    """BertPreTokenizer: words are runs of non-space, non-punctuation; punctuation stands alone.

    >>> split_gpt1("hello,world  (1.5)")
    ['hello', ',', 'world', '(', '1', '.', '5', ')']
    """
    # Padding each punctuation character with spaces and then splitting on whitespace is the
    # same as the two splits of the Rust code, and about twice as fast as regex.findall.
    return _PAD_PUNCT.sub(r" \g<0> ", text).split()


def split_bytes(text: str) -> list[str]:
    """GPT-2's pre-tokenisation; "".join(split_bytes(t)) == t for every string t.

    >>> split_bytes("I'll pay 100$\\n\\n")
    ['I', "'ll", ' pay', ' 100', '$', '\\n\\n']
    """
    if text.isascii():  # a shortcut, the same result: see the module docstring
        return _GPT2_SPLIT_ASCII.findall(text)
    return split_bytes_unicode(text)


def split_bytes_unicode(text: str) -> list[str]:
    """split_bytes for any text: the reference for the ASCII shortcut."""
    return _GPT2_SPLIT.findall(text)


def words_gpt1(text: str) -> list[str]:
    """The words gpt1 mode applies BPE to: split_gpt1(normalize_gpt1(text))."""
    return split_gpt1(normalize_gpt1(text))


# The word splitter of each tokenizer mode.
SPLITTERS = {"gpt1": words_gpt1, "bytes": split_bytes}


def read_text(path: str | Path) -> str:
    """The contents of a UTF-8 file; ValueError naming the file and the first bad byte if not."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not valid UTF-8 at byte offset {err.start} "
            f"(byte 0x{data[err.start]:02x}); convert the file to UTF-8, e.g. with iconv"
        ) from None


def read_texts(paths: Iterable[str | Path]) -> Iterator[str]:
    """Yield the contents of each file in turn, so a corpus is streamed one file at a time."""
    for path in paths:
        yield read_text(path)
