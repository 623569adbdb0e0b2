"""Fine-tuning tasks read from the files their authors distribute, into TaskData.

    load_task_files("sst2", "glue_data/SST-2")
        -> TaskData(FILE_TASKS["sst2"], {"train": [Example, ...], "validation": [...]})

The path is the task's folder, as the download unpacks it; nothing here downloads anything.
Each format has a loader of a few lines, and all of them stand on one helper, `table`, which
reads a delimited file and picks its columns by header name (GLUE's files have up to sixteen
columns, and MNLI's train and dev files do not even agree on how many). The two multiple-choice
formats, the Story Cloze Test and RACE, live in task_files_mc.py.

Splits: GLUE's test.tsv files carry no labels (the answers stay on the GLUE server), so I do
not load them: GLUE tasks give "train" and "validation" (MNLI adds "validation_mismatched").
SNLI, the Story Cloze Test and RACE publish their test answers, so they also give "test".

Two kinds of rows are skipped. SNLI's gold_label "-" means the five annotators reached no
majority, so there is no answer to learn; every SNLI result leaves these out. And QQP's rows
with an empty question (two in GLUE's train.tsv) have nothing to compare. Anything else that
looks wrong stops the load with a FormatError (errors.py, a ValueError) that starts
"path:line:" (lines counted from 1, as an editor shows them) and says how to fix it.
"""

import csv
from pathlib import Path

from ..errors import FormatError
from .transformations import Example, TaskData, TaskSpec

GLUE = "from the GLUE benchmark download, https://gluebenchmark.com/tasks"
BINARY = ("0", "1")  # how GLUE's two-class files write their labels: 0 = the first class name
NLI = ("entailment", "neutral", "contradiction")
SNLI = "snli_1.0.zip from https://nlp.stanford.edu/projects/snli/"
TRAIN_DEV = {"train": "train.tsv", "validation": "dev.tsv"}

FILE_TASKS = {spec.name: spec for spec in (
    TaskSpec("sst2", "classification", ("negative", "positive"), "accuracy",
             "GLUE SST-2: is a sentence from a film review positive or negative?"),
    TaskSpec("cola", "classification", ("unacceptable", "acceptable"), "matthews",
             "GLUE CoLA: is a sentence grammatical English?"),
    TaskSpec("mrpc", "similarity", ("not_paraphrase", "paraphrase"), "f1",
             "GLUE MRPC: do two news sentences say the same thing?"),
    TaskSpec("qqp", "similarity", ("not_duplicate", "duplicate"), "f1",
             "GLUE QQP: do two Quora questions ask the same thing?"),
    TaskSpec("stsb", "similarity", (), "pearson",
             "GLUE STS-B: how similar are two sentences, from 0 to 5?"),
    TaskSpec("mnli", "entailment", NLI, "accuracy",
             "GLUE MNLI: does the premise entail, contradict or say nothing of the hypothesis?"),
    TaskSpec("qnli", "entailment", ("entailment", "not_entailment"), "accuracy",
             "GLUE QNLI: does the sentence answer the question?"),
    TaskSpec("rte", "entailment", ("entailment", "not_entailment"), "accuracy",
             "GLUE RTE: does the first text entail the second?"),
    TaskSpec("snli", "entailment", NLI, "accuracy",
             "SNLI 1.0: entailment between image captions and sentences written about them"),
    TaskSpec("rocstories", "multiple_choice", ("1", "2"), "accuracy",
             "Story Cloze Test: which of two endings finishes a four-sentence story?"),
    TaskSpec("race", "multiple_choice", ("A", "B", "C", "D"), "accuracy",
             "RACE: reading comprehension from English exams, four answers per question"),
)}


# ---------------------------------------------------------------------------------------------
# Reading: UTF-8 text, delimited rows, columns by name


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


def tsv_task(name, folder, dataset, files, texts, label, values=None, origin=GLUE, **options):
    """TaskData from one tab-separated file per split (every GLUE task, and SNLI).

    values: the labels as the file spells them, in the order of the spec's labels (by default
    the spec's labels themselves). `options` go on to table_examples.
    """
    spec = FILE_TASKS[name]
    values = spec.labels if values is None else values
    folder = task_folder(folder, f"{dataset} folder with {', '.join(files.values())} ({origin})",
                         files.values())
    return TaskData(spec, {split: table_examples(folder / file, texts, label, values, **options)
                           for split, file in files.items()})


# ---------------------------------------------------------------------------------------------
# GLUE and SNLI


def load_sst2(folder):
    return tsv_task("sst2", folder, "GLUE's SST-2", TRAIN_DEV, ("sentence",), "label", BINARY)


def load_cola(folder):
    """CoLA's files have no header: source, label, the original mark (* or ?), sentence."""
    names = ("source", "label", "mark", "sentence")
    return tsv_task("cola", folder, "GLUE's CoLA", TRAIN_DEV, ("sentence",), "label", BINARY,
                    names=names)


def load_mrpc(folder):
    return tsv_task("mrpc", folder, "GLUE's MRPC", TRAIN_DEV, ("#1 String", "#2 String"),
                    "Quality", BINARY)


def load_qqp(folder):
    return tsv_task("qqp", folder, "GLUE's QQP", TRAIN_DEV, ("question1", "question2"),
                    "is_duplicate", BINARY, skip_empty=True)


def load_stsb(folder):
    return tsv_task("stsb", folder, "GLUE's STS-B", TRAIN_DEV, ("sentence1", "sentence2"),
                    "score")


def load_mnli(folder):
    files = {"train": "train.tsv", "validation": "dev_matched.tsv",
             "validation_mismatched": "dev_mismatched.tsv"}
    return tsv_task("mnli", folder, "GLUE's MNLI", files, ("sentence1", "sentence2"),
                    "gold_label")


def load_qnli(folder):
    """The question is the premise and the candidate answer sentence the hypothesis."""
    return tsv_task("qnli", folder, "GLUE's QNLI", TRAIN_DEV, ("question", "sentence"), "label")


def load_rte(folder):
    return tsv_task("rte", folder, "GLUE's RTE", TRAIN_DEV, ("sentence1", "sentence2"), "label")


def load_snli(folder):
    """SNLI 1.0's tab-separated release; rows with gold_label "-" (no majority) are skipped."""
    files = {"train": "snli_1.0_train.txt", "validation": "snli_1.0_dev.txt",
             "test": "snli_1.0_test.txt"}
    return tsv_task("snli", folder, "the SNLI 1.0", files, ("sentence1", "sentence2"),
                    "gold_label", origin=SNLI, skip_labels=("-",))


# ---------------------------------------------------------------------------------------------
# The registry

LOADERS = {"sst2": load_sst2, "cola": load_cola, "mrpc": load_mrpc, "qqp": load_qqp,
           "stsb": load_stsb, "mnli": load_mnli, "qnli": load_qnli, "rte": load_rte,
           "snli": load_snli}


def load_task_files(name, path) -> TaskData:
    """Task `name` (a key of FILE_TASKS) from its folder `path`."""
    # task_files_mc builds on the helpers above, so I import it here, once this module exists
    from .multiple_choice import load_race, load_rocstories

    loaders = {**LOADERS, "rocstories": load_rocstories, "race": load_race}
    if name not in loaders:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(FILE_TASKS)}")
    return loaders[name](path)
