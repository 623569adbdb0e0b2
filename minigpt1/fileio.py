"""Writing files so that a crash never leaves half of one behind: temp name, then rename.

os.replace is atomic on POSIX and Windows when source and target are on the same file
system, which a temporary file in the target's own folder guarantees. A reader therefore
sees either the old complete file or the new complete file, never a torn one. The temporary
file is flushed to the disk (fsync) before the rename, and the folder after it: otherwise a
power loss, unlike a killed process, can leave the new name pointing at blocks never written.
"""

import errno
import json
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import FormatError


def current_umask():
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def usual_mode(folder=False):
    """The permissions open() and mkdir() would give under this process's umask."""
    return (0o777 if folder else 0o666) & ~current_umask()


def fsync_path(path):
    """Flush a file's bytes, or a folder's entries (a rename in it), to the disk."""
    if Path(path).is_dir():
        if os.name == "nt":  # Windows cannot open a folder; NTFS journals its renames itself
            return
        fd = os.open(path, os.O_RDONLY)
    else:
        fd = os.open(path, os.O_RDWR)  # Windows flushes only a file opened for writing
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full(path):
    """The error for a write to `path` that found no space left: it names the file (the
    operating system's own message does not) and the fix."""
    return OSError(errno.ENOSPC, "no space left on the disk to write this file; free some "
                   "space there (or choose a folder on another disk), then run the command "
                   "again", str(path))


@contextmanager
def naming_errors(path):
    """Re-raise an OSError of the block that names no file (a failed write, a full disk) as
    one about `path`, so that the message says which file could not be written."""
    try:
        yield
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise disk_full(path) from err
        if err.filename is None and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; on success rename it to `path`, else delete it."""
    path = Path(path)
    with naming_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            # mkstemp makes 0600, and some writers (safetensors) put their own 0600 file in
            # its place: the finished file gets the usual permissions
            os.chmod(tmp, usual_mode())
            fsync_path(tmp)
            os.replace(tmp, path)
            fsync_path(path.parent)
        except BaseException:
            with suppress(OSError):  # a failed clean-up must not hide the error that caused it
                Path(tmp).unlink(missing_ok=True)
            raise


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path, what="file"):
    """Parse a JSON file holding one object; a malformed one raises FormatError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: not valid JSON ({err})") from err
    except RecursionError as err:  # thousands of nested brackets
        raise FormatError(f"{path}: JSON nested too deeply to be a {what}") from err
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: a {what} must be a JSON object, found {type(obj).__name__}")
    return obj


def section(obj, key, build, path):
    """build(obj[key]) for one section of a JSON file read from `path` (run.json's "config",
    "train", ...); a section that is missing or of the wrong shape is a FormatError naming
    the file and the key, not a KeyError or TypeError from deep inside."""
    if key not in obj:
        raise FormatError(f"{path}: no '{key}' section")
    try:
        return build(obj[key])
    except (TypeError, ValueError, AttributeError) as err:
        raise FormatError(f"{path}: bad '{key}' section ({err})") from err
