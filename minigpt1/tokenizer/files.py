"""Tokenizer files on disk: HuggingFace's vocab.json and merges.txt, plus our own small JSON.

    vocab.json          {"token": id, ...}; the ids run from 0 to vocab_size - 1, each once
    merges.txt          "#version: 0.2", then one merge per line, "left right", in merge order
    minigpt1_bpe.json   {"format": "minigpt1-bpe", "version": 1, "mode": "gpt1",
                         "special_tokens": {"_start_": 40478, ...}}
    tokenizer_config.json   for transformers' AutoTokenizer, written by save_pretrained
                        (export): the class that reads the folder (OpenAIGPTTokenizer for
                        gpt1, GPT2Tokenizer for bytes), the special tokens, the model's n_ctx

The first two are exactly the files of HuggingFace's openai-gpt (and GPT-2), so transformers
reads ours and we read theirs. The 2018 release of GPT-1 holds the same two files under
other names, encoder_bpe_40000.json (the vocabulary) and vocab_40000.bpe (the merges), and
they load too (gpt1 mode). merges.txt separates tokens with a space and merges with a
newline, so a token must contain neither. Ours never do: in gpt1 mode whitespace never reaches
a word, and in bytes mode every byte is written as one printable character, with GPT-2's
byte-to-unicode table (space is written "Ġ", newline "Ċ").

Every file is first written under a temporary name in the same directory and then renamed over
the old one, so an interrupted save leaves each file either old or new, never half-written.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import FormatError
from ..fileio import write_json_atomic, write_text_atomic
from .pretokenization import read_text

FORMAT = "minigpt1-bpe"
VERSION = 1
META_FILE = "minigpt1_bpe.json"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
RELEASE_FILES = ("encoder_bpe_40000.json", "vocab_40000.bpe")  # (vocab, merges) of 2018
TRANSFORMERS_CONFIG = "tokenizer_config.json"
# the transformers class that cuts words and applies merges exactly as each mode does
TRANSFORMERS_CLASSES = {"gpt1": "OpenAIGPTTokenizer", "bytes": "GPT2Tokenizer"}
MERGES_HEADER = "#version: 0.2"
MODES = ("gpt1", "bytes")


class TokenizerFileError(FormatError):
    """A tokenizer directory that cannot be read; the message names the file and the fix."""


def _bytes_to_unicode() -> list[str]:
    """GPT-2's table: byte b is written as the character BYTE_CHARS[b].

    Printable Latin-1 bytes stand for themselves; the other 68 (controls, space, ...) are moved
    to the code points from 256 up, in byte order, so that none of them is whitespace.

    >>> _bytes_to_unicode()[ord("a")], _bytes_to_unicode()[ord(" ")], _bytes_to_unicode()[10]
    ('a', 'Ġ', 'Ċ')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, moved = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + moved))
            moved += 1
    return chars


BYTE_CHARS = _bytes_to_unicode()
CHAR_BYTES = {c: b for b, c in enumerate(BYTE_CHARS)}


@dataclass
class TokenizerFiles:
    """What a tokenizer directory holds, checked for consistency."""

    mode: str
    vocab: dict[str, int]  # token -> id, special tokens included
    merges: list[tuple[str, str]]  # in merge order
    special_tokens: dict[str, int]  # name -> id


def save_files(directory, files: TokenizerFiles) -> None:
    """Write vocab.json, merges.txt and minigpt1_bpe.json into `directory` (created if needed)."""
    directory = Path(directory)
    by_id = dict(sorted(files.vocab.items(), key=lambda item: item[1]))
    meta = {"format": FORMAT, "version": VERSION, "mode": files.mode,
            "special_tokens": files.special_tokens}
    # Our JSON goes last, so an interrupted first save leaves a directory that won't load.
    vocab = json.dumps(by_id, ensure_ascii=False, indent=0)
    write_text_atomic(directory / VOCAB_FILE, vocab + "\n")
    merges = "".join(f"{a} {b}\n" for a, b in files.merges)
    write_text_atomic(directory / MERGES_FILE, f"{MERGES_HEADER}\n{merges}")
    write_json_atomic(directory / META_FILE, meta)


def save_transformers_config(directory, mode: str, special_tokens: dict[str, int],
                             model_max_length: int | None = None) -> None:
    """Write tokenizer_config.json, with which transformers.AutoTokenizer.from_pretrained(
    directory) builds the mode's class from vocab.json and merges.txt and gives our ids."""
    config = {
        "tokenizer_class": TRANSFORMERS_CLASSES[mode],
        # gpt1 mode turns unknown characters into <unk>; bytes mode has no unknown, and
        # neither has a BOS or EOS token (GPT2Tokenizer would default all three to
        # "<|endoftext|>", which our vocabulary lacks)
        "unk_token": "<unk>" if mode == "gpt1" else None,
        "bos_token": None,
        "eos_token": None,
        "pad_token": None,
        "additional_special_tokens": sorted(special_tokens, key=special_tokens.get),
        # as our encode does unless asked: "_start_" in a text is text, not the special token
        "split_special_tokens": True,
        "clean_up_tokenization_spaces": False,  # decode as ours does: "hello , world"
    }
    if mode == "bytes":
        config["add_prefix_space"] = False  # GPT-2's words carry their own leading space
    if model_max_length is not None:
        config["model_max_length"] = model_max_length  # the model's n_ctx
    write_json_atomic(Path(directory) / TRANSFORMERS_CONFIG, config)


def load_files(directory, mode: str | None = None) -> TokenizerFiles:
    """Read and check a tokenizer directory written by save_files, by HuggingFace, or the
    2018 release's (always gpt1 mode).

    HuggingFace directories have no minigpt1_bpe.json; `mode` then says how to read them
    ("gpt1" for openai-gpt). Every problem raises TokenizerFileError naming file and line.
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise TokenizerFileError(f"{directory}: no such tokenizer directory")
    names = file_names(directory)
    if names is None:
        missing = next(n for n in (VOCAB_FILE, MERGES_FILE) if not (directory / n).is_file())
        raise TokenizerFileError(
            f"{directory}: missing {missing}; a tokenizer directory holds {VOCAB_FILE}, "
            f"{MERGES_FILE} and {META_FILE}, as written by BPETokenizer.save (or the 2018 "
            f"release's {RELEASE_FILES[0]} and {RELEASE_FILES[1]})"
        )
    vocab_path, merges_path = (directory / name for name in names)
    meta_path = directory / META_FILE
    if meta_path.is_file():
        meta = _read_meta(meta_path)
        if mode is not None and mode != meta["mode"]:
            raise TokenizerFileError(f"{meta_path}: mode is {meta['mode']!r}, not {mode!r}")
        mode, specials = meta["mode"], meta["special_tokens"]
    elif mode is None and names == RELEASE_FILES:
        mode, specials = "gpt1", {}  # the 2018 release is GPT-1's own tokenizer
    elif mode is None:
        raise TokenizerFileError(
            f"{directory}: no {META_FILE}, so the mode is unknown; for HuggingFace "
            "openai-gpt files use BPETokenizer.load(directory, mode='gpt1') (--mode gpt1)"
        )
    else:
        specials = {}
    vocab = _read_vocab(vocab_path)
    merges = _read_merges(merges_path, vocab, vocab_path.name)
    needed = ["<unk>"] if mode == "gpt1" else BYTE_CHARS
    ordinary = {*needed, *(t for a, b in merges for t in (a, b, a + b))}
    for name, i in specials.items():
        if vocab.get(name) != i:
            raise TokenizerFileError(
                f"{meta_path}: special token {_clip(name)} has id {i} there but "
                f"{vocab.get(name)} in {vocab_path.name}; the files come from different saves"
            )
        if name in ordinary:  # text would reach it, and decode would spell it wrong
            raise TokenizerFileError(
                f"{meta_path}: special token {_clip(name)} is also an ordinary token (a base "
                f"symbol, or part of a merge in {merges_path.name}); special tokens come after "
                "the vocabulary, as add_special_tokens puts them"
            )
    missing = [t for t in needed if t not in vocab]
    if missing:
        raise TokenizerFileError(
            f"{vocab_path}: a {mode}-mode vocabulary needs {missing[0]!r} "
            f"({len(missing)} base token(s) missing); is this the right mode?"
        )
    if mode == "bytes":
        # every ordinary token is bytes written with BYTE_CHARS; decode reads them back
        for token, i in vocab.items():
            if token not in specials and not all(c in CHAR_BYTES for c in token):
                raise TokenizerFileError(
                    f"{vocab_path}: token {_clip(token)} (id {i}) is not written with "
                    "the byte alphabet of bytes mode (GPT-2's byte-to-unicode table); is this "
                    "the right mode?"
                )
    return TokenizerFiles(mode, vocab, merges, specials)


def file_names(directory) -> tuple[str, str] | None:
    """(vocabulary, merges) file names of a tokenizer folder: HuggingFace's (and ours), else
    the 2018 release's; None if it holds neither pair."""
    for names in ((VOCAB_FILE, MERGES_FILE), RELEASE_FILES):
        if all((Path(directory) / name).is_file() for name in names):
            return names
    return None


def _read(path: Path) -> str:
    """read_text, with a file that is not UTF-8 reported as a TokenizerFileError."""
    try:
        return read_text(path)
    except ValueError as err:  # read_text's message starts with the path
        raise TokenizerFileError(str(err)) from None


def _no_surrogates(path: Path, what: str, texts) -> None:
    """JSON may escape a lone surrogate ("\\ud800"), which is no character: refuse it, as it
    could neither be encoded as UTF-8 nor saved again."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise TokenizerFileError(
                f"{path}: {what} {_clip(text)} holds a lone surrogate, which is not a character"
            ) from None


def _read_json(path: Path):
    text = _read(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise TokenizerFileError(
            f"{path} line {err.lineno} column {err.colno}: not valid JSON ({err.msg})"
        ) from None
    except ValueError as err:  # an integer of more than 4300 digits
        raise TokenizerFileError(f"{path}: not a readable JSON file ({err})") from None
    except RecursionError:
        raise TokenizerFileError(f"{path}: JSON nested too deeply to read") from None


def _clip(text: str, limit: int = 80) -> str:
    """repr of a text from a file, cut short so that one long line cannot flood a message."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _read_meta(path: Path) -> dict:
    meta = _read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TokenizerFileError(f"{path}: not a minigpt1 tokenizer file (no format {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise TokenizerFileError(
            f"{path}: format version {meta.get('version')!r}, but this minigpt1 reads version "
            f"{VERSION}; install the minigpt1 that wrote it, or train and save the tokenizer again"
        )
    if meta.get("mode") not in MODES:
        raise TokenizerFileError(f"{path}: mode must be one of {MODES}, not {meta.get('mode')!r}")
    specials = meta.get("special_tokens")
    if not isinstance(specials, dict) or not all(type(i) is int for i in specials.values()):
        raise TokenizerFileError(f"{path}: special_tokens must map names to integer ids")
    _no_surrogates(path, "special token", specials)
    return meta


def _read_vocab(path: Path) -> dict[str, int]:
    vocab = _read_json(path)
    if not isinstance(vocab, dict) or not all(type(i) is int for i in vocab.values()):
        raise TokenizerFileError(f"{path}: expected a JSON object mapping tokens to integer ids")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise TokenizerFileError(
            f"{path}: the ids must be 0 to {len(vocab) - 1}, each used once "
            "(they index the rows of the embedding matrix)"
        )
    _no_surrogates(path, "token", vocab)
    return vocab


def _read_merges(path: Path, vocab: dict[str, int], vocab_name: str) -> list[tuple[str, str]]:
    lines = _read(path).split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    first = 1 if lines and lines[0].startswith("#version") else 0
    merges = []
    for number, line in enumerate(lines[first:], start=first + 1):
        pair = tuple(line.split(" "))
        if len(pair) != 2 or "" in pair:
            raise TokenizerFileError(
                f"{path} line {number}: expected two tokens separated by one space, "
                f"got {_clip(line)}"
            )
        for token in (*pair, pair[0] + pair[1]):
            if token not in vocab:
                raise TokenizerFileError(
                    f"{path} line {number}: {_clip(token)} is not in {vocab_name}; "
                    "the two files do not belong together"
                )
        merges.append(pair)
    return merges
