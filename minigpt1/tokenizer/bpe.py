"""Byte-pair encoding from scratch: BPETokenizer trains, encodes, decodes, saves and loads.

BPE starts from single symbols and learns merges: the most frequent pair of adjacent symbols
becomes a new symbol, again and again (trainers.py). Encoding a word replays the merges in
the order they were learned. Text is first cut into words (pretokenization.py) and no merge
crosses a word boundary. Two modes:

gpt1   GPT-1's tokenizer as HuggingFace ships it: lower-cased, accent-stripped words split on
       whitespace and punctuation; a word is its characters with "</w>" glued to the last one
       ("low" -> l o w</w>), so "er" inside a word and "er</w>" at its end are different
       tokens. A character never seen in training becomes <unk>. The vocabulary is laid out
       as in the 2018 release:

           0               <unk>
           1 .. n          the n base characters, in code point order
           n+1 .. 2n       the same characters + "</w>", same order
           2n+1 ...        one token per merge, in merge order
           then            special tokens, in the order they were added

bytes  lossless byte-level BPE as in GPT-2: words cut by GPT-2's regex, a word is its UTF-8
       bytes, ids 0..255 are the bytes, merges follow, then special tokens.
       decode(encode(s)) == s for every string s.

Special tokens, such as GPT-1's fine-tuning tokens _start_, _delimiter_ and _classify_, are
appended after training with add_special_tokens. Ordinary text never produces them: "_start_"
in a text is punctuation and letters. Task code asks for them by name with special_id(name),
or lets encode recognise them with allowed_special.

>>> tok = BPETokenizer.train(["low lower lowest"] * 3, vocab_size=19, progress=False)
>>> tok.merges
[('l', 'o'), ('w', 'e'), ('lo', 'we'), ('s', 't</w>')]
>>> tok.tokens("Slower, lowest")
['s', 'lowe', 'r</w>', '<unk>', 'lowe', 'st</w>']
>>> tok.decode(tok.encode("Slower, lowest"))
'slower <unk>lowest'
"""

import sys
from collections.abc import Iterable
from functools import partial
from itertools import pairwise

import regex

from .files import (
    BYTE_CHARS,
    CHAR_BYTES,
    MODES,
    TokenizerFiles,
    load_files,
    save_files,
    save_transformers_config,
)
from .pretokenization import SPLITTERS
from .trainers import EOW, UNK, count_words, initial_symbols, merge, train_fast, train_naive

GPT1_SPECIAL_TOKENS = ("_start_", "_delimiter_", "_classify_")
# Words repeat (Zipf), so encode remembers the ids of words it has seen. The cache is emptied
# when it holds this many words, which bounds its memory on an endless stream of new words.
CACHE_SIZE = 100_000


class BPETokenizer:
    """A trained BPE vocabulary. Make one with BPETokenizer.train or BPETokenizer.load."""

    def __init__(self, files: TokenizerFiles):
        self.mode = files.mode
        self._ids = dict(files.vocab)  # token -> id
        self._tokens = sorted(self._ids, key=self._ids.get)  # id -> token
        self._specials = dict(files.special_tokens)  # name -> id
        # Base symbols are looked up without the special tokens, so that no text reaches them.
        self._symbols = {t: i for t, i in self._ids.items() if t not in self._specials}
        self._merges = list(files.merges)
        self._rank, self._merged = {}, {}  # (id, id) -> merge rank / id of the merged token
        for rank, (a, b) in enumerate(self._merges):
            pair = (self._ids[a], self._ids[b])
            self._rank[pair], self._merged[pair] = rank, self._ids[a + b]
        self._split = SPLITTERS[self.mode]
        self._unk = self._ids.get(UNK)  # gpt1 mode only
        self._cache = {}  # word -> its ids
        if self.mode == "bytes":
            self._byte_ids = [self._ids[c] for c in BYTE_CHARS]
            self._bytes = [self._token_bytes(t) for t in self._tokens]

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        mode: str = "gpt1",
        *,
        special_tokens: Iterable[str] = (),
        trainer: str = "fast",
        progress: bool | None = None,
    ) -> "BPETokenizer":
        """Learn a vocabulary of `vocab_size` tokens (base symbols + merges + special tokens).

        texts: any iterable of strings, e.g. text.read_texts(paths), which reads one file at a
        time; only the distinct words and their counts are kept in memory.
        trainer: "fast" (incremental) or "naive" (the teaching loop): identical results.
        progress: tqdm bars on stderr; None shows them when stderr is a terminal.
        Training stops early, with a smaller vocabulary, once every word is a single token.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if trainer not in ("fast", "naive"):
            raise ValueError(f"trainer must be 'fast' or 'naive', not {trainer!r}")
        progress = sys.stderr.isatty() if progress is None else progress
        base, words = initial_symbols(count_words(texts, mode, progress), mode)
        special_tokens = list(dict.fromkeys(special_tokens))
        num_merges = vocab_size - len(base) - len(special_tokens)
        if num_merges < 0:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the base vocabulary: {len(base)} base "
                f"symbols + {len(special_tokens)} special tokens; use at least "
                f"{len(base) + len(special_tokens)}"
            )
        learn = partial(train_fast, progress=progress) if trainer == "fast" else train_naive
        merges = learn(words, num_merges, first_id=len(base))

        tokens = list(base)
        for a, b in merges:
            tokens.append(tokens[a] + tokens[b])
        vocab = {t: i for i, t in enumerate(tokens)}
        merged = [(tokens[a], tokens[b]) for a, b in merges]
        tokenizer = cls(TokenizerFiles(mode, vocab, merged, {}))
        tokenizer.add_special_tokens(special_tokens)
        return tokenizer

    # -- encoding -------------------------------------------------------------------------

    def encode(self, text: str, allowed_special: Iterable[str] | str = ()) -> list[int]:
        """Token ids of `text`.

        Special tokens are only recognised if named in allowed_special ("all" for every one);
        otherwise a special token's name in the text is encoded as ordinary text.
        """
        if allowed_special == "all":
            allowed = list(self._specials)
        elif isinstance(allowed_special, str):
            allowed = [allowed_special]
        else:
            allowed = list(allowed_special)
        if not allowed:
            return self._encode_ordinary(text)
        for name in allowed:
            self.special_id(name)  # raises for unknown names
        # Longest names first, so that one special token that prefixes another cannot win.
        names = sorted(allowed, key=len, reverse=True)
        parts = regex.split("(" + "|".join(map(regex.escape, names)) + ")", text)
        ids = []
        for i, part in enumerate(parts):  # split alternates text, special, text, ...
            if i % 2:
                ids.append(self._specials[part])
            else:
                ids.extend(self._encode_ordinary(part))
        return ids

    def tokens(self, text: str, allowed_special=()) -> list[str]:
        """The pieces `text` is cut into, as written in vocab.json (bytes mode: space is Ġ).

        >>> tok = BPETokenizer.train(["hug hug hug hugs"], vocab_size=11, progress=False)
        >>> tok.merges, tok.tokens("hug hugs")
        ([('h', 'u'), ('hu', 'g</w>')], ['hug</w>', 'hu', 'g', 's</w>'])
        """
        return [self._tokens[i] for i in self.encode(text, allowed_special)]

    def explain(self, text: str) -> list[list[tuple[int | None, list[str]]]]:
        """How each word of `text` is built, merge by merge (used by `bpe show`).

        One list per word: first (None, base pieces), then (rank, pieces) after each merge,
        where rank is the merge's line in merges.txt, counting from 0 after the header.
        """
        words = []
        for word in self._split(text):
            base = self._base_ids(word)
            history = [(None, base)]
            self._bpe(base, history)
            words.append([(rank, [self._tokens[i] for i in ids]) for rank, ids in history])
        return words

    def _encode_ordinary(self, text: str) -> list[int]:
        cache, ids = self._cache, []
        for word in self._split(text):
            word_ids = cache.get(word)
            if word_ids is None:
                word_ids = self._bpe(self._base_ids(word))
                if len(cache) >= CACHE_SIZE:
                    cache.clear()
                cache[word] = word_ids
            ids.extend(word_ids)
        return ids

    def _base_ids(self, word: str) -> list[int]:
        """The word as base symbols, before any merge."""
        if self.mode == "bytes":
            # surrogatepass lets even a lone surrogate (legal in a Python str) round-trip.
            return [self._byte_ids[b] for b in word.encode("utf-8", "surrogatepass")]
        ids = [self._symbols.get(c, self._unk) for c in word[:-1]]
        ids.append(self._symbols.get(word[-1] + EOW, self._unk))
        return ids

    def _bpe(self, ids: list[int], history: list | None = None) -> list[int]:
        """Merge the symbols of one word, applying the earliest-learned merge first.

        As in the original bpe(): find the adjacent pair with the lowest rank, merge all its
        occurrences, repeat until no adjacent pair is a known merge. `history`, if given,
        receives (rank, ids) after each merge.
        """
        while len(ids) > 1:
            pair = min(pairwise(ids), key=lambda p: self._rank.get(p, float("inf")))
            if pair not in self._rank:
                break
            ids = merge(ids, pair, self._merged[pair])
            if history is not None:
                history.append((self._rank[pair], ids))
        return ids

    # -- decoding -------------------------------------------------------------------------

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`.

        gpt1 mode, like HuggingFace's BPEDecoder: pieces joined, each "</w>" becomes a space
        except at the very end. Words come back lower-cased and separated by single spaces
        ("Hello, world" -> "hello , world"), and <unk> is written as "<unk>".
        bytes mode: the bytes joined and read as UTF-8; ids that cut a character in two give
        U+FFFD there.
        """
        ids = list(ids)
        n = len(self._tokens)
        if ids and not 0 <= min(ids) <= max(ids) < n:
            bad = next(i for i in ids if not 0 <= i < n)
            raise ValueError(f"token id {bad} is outside the vocabulary (0 to {n - 1})")
        if self.mode == "bytes":
            data = b"".join(self._bytes[i] for i in ids)
            try:
                return data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return data.decode("utf-8", "replace")
        text = "".join(self._tokens[i] for i in ids).replace(EOW, " ")
        return text[:-1] if ids and self._tokens[ids[-1]].endswith(EOW) else text

    def _token_bytes(self, token: str) -> bytes:
        if token in self._specials:
            return token.encode("utf-8")
        return bytes(CHAR_BYTES[c] for c in token)

    # -- vocabulary and special tokens ----------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included."""
        return len(self._tokens)

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The learned merges in order, as written in merges.txt."""
        return list(self._merges)

    @property
    def special_tokens(self) -> dict[str, int]:
        """name -> id of every special token."""
        return dict(self._specials)

    def id_to_token(self, i: int) -> str:
        return self._tokens[i]

    def token_to_id(self, token: str) -> int | None:
        return self._ids.get(token)

    def add_special_tokens(self, names: Iterable[str]) -> list[int]:
        """Append special tokens after the vocabulary; return their ids.

        GPT-1 did this for fine-tuning: add_special_tokens(GPT1_SPECIAL_TOKENS). A name that
        is already a special token keeps its id.
        """
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            if name in self._specials:
                continue
            if not isinstance(name, str) or not name:
                raise ValueError(f"a special token must be a non-empty string, not {name!r}")
            if name in self._ids:
                raise ValueError(
                    f"{name!r} is already an ordinary token (id {self._ids[name]}); pick a name "
                    "that text cannot produce, like GPT-1's '_start_'"
                )
            self._ids[name] = self._specials[name] = len(self._tokens)
            self._tokens.append(name)
            if self.mode == "bytes":
                self._bytes.append(self._token_bytes(name))
        return [self._specials[name] for name in names]

    def special_id(self, name: str) -> int:
        """The id of special token `name`, for task code that builds inputs by hand."""
        if name not in self._specials:
            raise ValueError(
                f"no special token {name!r}; this tokenizer has {sorted(self._specials)}; "
                "add it with add_special_tokens"
            )
        return self._specials[name]

    # -- files ----------------------------------------------------------------------------

    def save(self, directory) -> None:
        """Write vocab.json, merges.txt and minigpt1_bpe.json into `directory` (files.py)."""
        save_files(directory, TokenizerFiles(self.mode, self._ids, self._merges, self._specials))

    def save_pretrained(self, directory, model_max_length: int | None = None) -> None:
        """save, plus tokenizer_config.json: transformers.AutoTokenizer.from_pretrained(
        directory) then gives the ids encode gives. model_max_length: the model's n_ctx."""
        self.save(directory)
        save_transformers_config(directory, self.mode, self._specials, model_max_length)

    @classmethod
    def load(cls, directory, mode: str | None = None) -> "BPETokenizer":
        """Read a directory written by save, HuggingFace's openai-gpt files with mode="gpt1",
        or the 2018 release's encoder_bpe_40000.json and vocab_40000.bpe (gpt1 mode).

        Ids come from vocab.json exactly as written; nothing is renumbered.
        """
        return cls(load_files(directory, mode))

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(mode={self.mode!r}, vocab_size={self.vocab_size}, "
            f"merges={len(self._merges)}, special_tokens={list(self._specials)})"
        )
