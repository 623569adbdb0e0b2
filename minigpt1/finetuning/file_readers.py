"""Reading the files that fine-tuning datasets come in: UTF-8 lines, delimited rows, columns
picked by header name, labels, and the folder a dataset unpacks to. Every problem stops with a
FormatError (errors.py) that starts "path:line:" and says how to fix it.
"""

import csv
from pathlib import Path

from ..errors import FormatError
from .transformations import Example


def utf8_lines(path: Path):
    """A file's lines, endings kept, decoded one at a time; a bad byte, or a NUL (which no
    text holds, but UTF-16 puts beside every ASCII character), stops at its line.

    text.read_text names the byte offset of a bad byte, but an editor wants a line; and line
    by line, SNLI's training file (hundreds of MB with its parse trees) never sits in memory
    whole.
    """
    with open(path, "rb") as f:
        for number, data in enumerate(f, 1):
            if b"\0" in data:  # never in text; every other byte of ASCII written as UTF-16
                raise FormatError(
                    f"{path}:{number}: a NUL byte (byte {data.index(0) + 1} of the line); is the "
                    "file UTF-16? convert it to UTF-8, e.g. with iconv, or download it again")
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as err:
                raise FormatError(
                    f"{path}:{number}: not valid UTF-8 (byte 0x{data[err.start]:02x}); convert "
                    "the file to UTF-8, e.g. with iconv, or download it again") from None
            yield line.removeprefix("\ufeff") if number == 1 else line  # MRPC starts with a BOM


def numbered(path, reader):
    """(first line, fields) for each record of a csv reader; blank lines are skipped."""
    start = 1
    try:
        for fields in reader:
            if fields:
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as err:
        if "field limit" in str(err):  # csv's limit on one field: 131072 characters
            raise FormatError(f"{path}:{start}: a field longer than {csv.field_size_limit()} "
                              "characters; is a quote left open, or is this the wrong file?"
                              ) from None
        raise FormatError(f"{path}:{reader.line_num}: unreadable line ({err}); remove the stray "
                          "control character (a lone \\r) from it") from None


def delimited_rows(path, delimiter):
    lines = utf8_lines(path)
    if delimiter == ",":  # Story Cloze: quoted CSV, where a quoted field may span lines
        return numbered(path, csv.reader(lines))
    # GLUE sentences hold stray quote characters: no quoting at all, one line per record
    lines = (line.removesuffix("\n").removesuffix("\r") for line in lines)
    return numbered(path, csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def shown(value, limit=80):
    """repr of a value read from a file, cut short so that one huge field cannot flood a
    message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def listed(names, most=20):
    """Column names for a message: odd ones (a BOM, a control character, a long one) as repr,
    so that what is wrong with them shows."""
    shown_names = [n if n.isprintable() and len(n) <= 40 else shown(n, 40) for n in names[:most]]
    return ", ".join(shown_names) + (f", ... ({len(names)} in all)" if len(names) > most else "")


def table(path, columns, names=None, delimiter="\t"):
    """(line, [value of each of `columns`]) for every data row of a delimited file.

    The first line names the columns, unless `names` does so for a file without a header
    (CoLA). A row may stop after the last column I read (some copies of SNLI lose the empty
    annotator columns at the end of a line), but never hold more fields than the header: a
    surplus means a tab inside a text, which would shift every column after it.
    """
    rows = delimited_rows(path, delimiter)
    first_row = 1 if names else 2
    if names is None:
        _, names = next(rows, (1, None))
        if names is None:
            raise FormatError(f"{path}:1: the file is empty; download it again")
    missing = [column for column in columns if column not in names]
    if missing:
        raise FormatError(f"{path}:1: no column {', '.join(missing)} (the header has "
                          f"{listed(names)}); is this the right file for the task?")
    where = [names.index(column) for column in columns]
    count = 0
    for line, fields in rows:
        if not max(where) < len(fields) <= len(names):
            raise FormatError(f"{path}:{line}: {len(fields)} fields, expected {len(names)} "
                              f"({listed(names)}); fix the row or remove it")
        count += 1
        yield line, [fields[i] for i in where]
    if count == 0:
        raise FormatError(f"{path}:{first_row}: no data rows; download the file again")


def parse_label(where, raw, column, values):
    """A label's index in `values` (the file's spelling of each class), or for values = () a
    similarity score, a number from 0 to 5."""
    raw = raw.strip()
    if values:
        if raw not in values:
            raise FormatError(f"{where}: {column} is {shown(raw)}, not one of {', '.join(values)}; "
                              "fix the label or remove the row")
        return values.index(raw)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 5:  # NaN fails this too
        raise FormatError(f"{where}: {column} is {shown(raw)}, not a number from 0 to 5; "
                          "fix the score or remove the row")
    return value


def table_examples(path, texts, label, values, names=None, delimiter="\t",
                   skip_labels=(), skip_empty=False):
    """One Example per row: segments from the `texts` columns, the label from `label`."""
    found = []
    for line, (*segments, raw) in table(path, (*texts, label), names, delimiter):
        where = f"{path}:{line}"
        empty = [column for column, text in zip(texts, segments, strict=True) if not text.strip()]
        if raw.strip() in skip_labels or (empty and skip_empty):
            continue
        if empty:
            raise FormatError(f"{where}: the {empty[0]} column is empty; "
                              "write the text in or remove the row")
        found.append(Example(tuple(segments), parse_label(where, raw, label, values), where))
    return found


def task_folder(folder, what, names=()):
    """The folder as a Path, checked to hold `names`; else a FileNotFoundError saying where to
    get it. `what` describes the folder and where it comes from."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; give {what}")
    missing = [name for name in names if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"{folder}: no {', '.join(missing)} here; give {what}")
    return folder
