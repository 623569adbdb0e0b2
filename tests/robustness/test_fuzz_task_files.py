"""Task data files broken every way hypothesis finds: a loader returns sane examples, or raises
FormatError whose message starts "path:line: " with the broken file's path.

Attacked, for one loader of each family (GLUE TSV with one sentence: SST-2; with a sentence
pair: RTE, and STS-B for its numeric scores; SNLI; the Story Cloze CSV; RACE JSON): bytes
damaged; rows with fields dropped or added, or replaced by random text holding tabs, quotes,
carriage returns and newlines; labels that are text, numbers out of range, empty, huge; files
in the wrong encoding (Latin-1, UTF-16 with its BOM, cp1252), with a UTF-8 BOM, or with NUL
bytes; any JSON value in place of a RACE file or of any of its fields.

Accepted: success, where every example has the task's number of text segments, a label in
range and a source in the folder; or a FormatError naming the file and a line. Anything else,
FileNotFoundError included (the files are all there), fails the test.
"""

import csv
import io
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt1.errors import FormatError
from minigpt1.finetuning.file_tasks import load_task_files
from minigpt1.finetuning.multiple_choice import load_rocstories
from tests.robustness import fuzz
from tests.robustness.fuzz import FUZZ, broken_bytes, copy_of, json_values, write_json

# ---------------------------------------------------------------------------------------------
# Small good folders, one per task, in the layout of the real downloads

FIVE = ("label1", "label2", "label3", "label4", "label5")
SNLI_HEADER = ("gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
               "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "captionID",
               "pairID", *FIVE)
STSB_HEADER = ("index", "genre", "filename", "year", "old_index", "source1", "source2",
               "sentence1", "sentence2", "score")
ROC_HEADER = ("InputStoryid", "InputSentence1", "InputSentence2", "InputSentence3",
              "InputSentence4", "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2",
              "AnswerRightEnding")


def tsv(*rows):
    return "".join("\t".join(map(str, row)) + "\n" for row in rows)


def roc_csv(first, n):
    text = io.StringIO()
    csv.writer(text).writerows([ROC_HEADER, *(
        (f"id-{i}", f'Karen said, "story {i}."', f"Two of {i}.", f"Three of {i}.",
         f"Four of {i}.", f"Good end {i}.", f"Bad end {i}.", 1 + i % 2)
        for i in range(first, first + n))])
    return text.getvalue()


def race(article, answer):
    return json.dumps({"answers": [answer, "A"], "options": [list("abcd"), ["w", "x", "y", "z"]],
                       "questions": ["Which?", "Why _ ?"], "article": article, "id": "x.txt"})


FOLDERS = {  # task -> {file: text}
    "sst2": {"train.tsv": tsv(("sentence", "label"), ("a charming film ", 1), ("dull ", 0)),
             "dev.tsv": tsv(("sentence", "label"), ('it \'s a "journey" . ', 1))},
    "rte": {name: tsv(("index", "sentence1", "sentence2", "label"),
                      (0, "Dana Reeve died of cancer.", "Dana Reeve died.", "entailment"),
                      (1, "No weapons found.", "Weapons found.", "not_entailment"))
            for name in ("train.tsv", "dev.tsv")},
    "stsb": {name: tsv(STSB_HEADER, (0, "main", "MSRvid", "2012", "0001", "none", "none",
                                     "A plane takes off.", "An air plane takes off.", "5.000"),
                       (1, "main", "MSRvid", "2012", "0002", "none", "none",
                        "A man dances.", "A man sings.", "0.800"))
             for name in ("train.tsv", "dev.tsv")},
    "snli": {f"snli_1.0_{split}.txt": tsv(
        SNLI_HEADER,
        ("neutral", "( a )", "( b )", "(ROOT a)", "(ROOT b)", "A horse jumps.", "A person.",
         "1.jpg#4", "1.jpg#4r1n", "neutral", "", "", "", ""),
        ("-", "( a )", "( b )", "(ROOT a)", "(ROOT b)", "Two women.", "Sisters.", "2", "2r",
         *"NNENC"),
        ("contradiction", "( a )", "( b )", "(ROOT a)", "(ROOT b)", "A man.", "A diner.",
         "3", "3r", "contradiction"))
        for split in ("train", "dev", "test")},
    "rocstories": {"cloze_test_val__spring2016 - cloze_test_ALL_val.csv": roc_csv(0, 4),
                   "cloze_test_test__spring2016 - cloze_test_ALL_test.csv": roc_csv(100, 2)},
    "race": {f"{split}/{level}/{n}.txt": race(f"Text {split} {level}.", "ABCD"[n % 4])
             for n, (split, level) in enumerate((s, v) for s in ("train", "dev", "test")
                                                for v in ("high", "middle"))},
}
LINE_TASKS = ["sst2", "rte", "stsb", "snli", "rocstories"]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """{task: its good folder}."""
    folders = {}
    for task, files in FOLDERS.items():
        folder = tmp_path_factory.mktemp(task) / task
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(text.encode())
        folders[task] = folder
    return folders


def load(task, folder):
    if task == "rocstories":  # the real val file holds 1871 stories; this one 4
        return load_rocstories(folder, n_validation=1)
    return load_task_files(task, folder)


def check(task, folder, path):
    """Sane examples, or a FormatError starting "path:line: ". Returns the error, or None."""
    try:
        data = load(task, folder)
    except FormatError as err:
        assert re.match(re.escape(str(path)) + r":\d+: \S", str(err)), \
            f"the message does not start with {path}:line: {err}"
        return err
    spec = data.spec
    for examples in data.splits.values():
        for e in examples:
            assert len(e.segments) == spec.n_segments
            assert all(type(s) is str and s.strip() for s in e.segments)
            if spec.regression:
                assert type(e.label) is float and 0 <= e.label <= 5
            else:
                assert type(e.label) is int and 0 <= e.label < len(spec.labels)
            assert e.source.startswith(str(folder))
    return None


def target(data, task, folder):
    """One of the task's files, drawn."""
    return folder / data.draw(st.sampled_from(sorted(FOLDERS[task])))


# ---------------------------------------------------------------------------------------------
# Every format


def test_the_good_folders_load(good):
    for task, folder in good.items():
        assert check(task, folder, folder) is None
        assert all(load(task, folder).splits.values())


@FUZZ
@given(data=st.data(), task=st.sampled_from(sorted(FOLDERS)))
def test_damaged_bytes(good, data, task):
    with copy_of(good[task]) as folder:
        path = target(data, task, folder)
        path.write_bytes(data.draw(broken_bytes(path.read_bytes())))
        check(task, folder, path)


def bom(text):
    return b"\xef\xbb\xbf" + text.encode()


ENCODINGS = {
    "latin-1": lambda text: text.replace("a", "\u00e9").encode("latin-1"),
    "cp1252": lambda text: text.replace('"', "\u201c").replace("e", "\u00e8").encode("cp1252"),
    "utf-16": lambda text: text.encode("utf-16"),  # with its BOM
    "utf-16-be": lambda text: text.encode("utf-16-be"),
    "utf-8 BOM": bom,
    "utf-8 BOM, CRLF": lambda text: bom(text.replace("\n", "\r\n")),
    "utf-8 BOM twice": lambda text: bom("\ufeff" + text),
    "utf-8": lambda text: text.encode(),  # with NUL bytes inserted below
}


@FUZZ
@given(data=st.data(), task=st.sampled_from(sorted(FOLDERS)),
       encoding=st.sampled_from(sorted(ENCODINGS)), nuls=st.integers(0, 3))
def test_wrong_encodings_and_nul_bytes(good, data, task, encoding, nuls):
    with copy_of(good[task]) as folder:
        path = target(data, task, folder)
        blob = bytearray(ENCODINGS[encoding](path.read_text(encoding="utf-8")))
        for _ in range(nuls):
            blob.insert(data.draw(st.integers(0, len(blob))), 0)
        path.write_bytes(bytes(blob))
        err = check(task, folder, path)
        if encoding in ("latin-1", "utf-16", "utf-16-be"):  # never text read as mojibake
            assert err is not None and "UTF-8" in str(err)
        assert err is not None or not nuls


# ---------------------------------------------------------------------------------------------
# The line formats: rows and labels

# a field's text: anything, plus what a delimited format trips on
fields = st.text(max_size=12) | st.sampled_from(
    ["", " ", "\t", "a\tb", '"', 'x"y', '"open', "\r", "a\rb", "\n", "a\r\nb", "\x00", "\ufeff",
     "-", "x" * 200_000])


def read_rows(task, text):
    if task == "rocstories":
        return [row for row in csv.reader(io.StringIO(text, newline=""))]
    return [line.split("\t") for line in text.split("\n")[:-1]]


def write_rows(task, rows):
    if task == "rocstories":
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        return out.getvalue()
    return "".join("\t".join(row) + "\n" for row in rows)


@FUZZ
@given(data=st.data(), task=st.sampled_from(LINE_TASKS))
def test_rows_with_missing_extra_or_random_fields(good, data, task):
    with copy_of(good[task]) as folder:
        path = target(data, task, folder)
        rows = read_rows(task, path.read_text(encoding="utf-8"))
        for _ in range(data.draw(st.integers(1, 4))):
            row = rows[data.draw(st.integers(0, len(rows) - 1))]  # the header too
            how = data.draw(st.sampled_from(["drop", "add", "replace", "empty row"]))
            at = data.draw(st.integers(0, len(row)))
            if how == "drop" and row:
                del row[min(at, len(row) - 1)]
            elif how == "add":
                row.insert(at, data.draw(fields))
            elif how == "replace" and row:
                row[min(at, len(row) - 1)] = data.draw(fields)
            elif how == "empty row":
                row.clear()
        path.write_bytes(write_rows(task, rows).encode("utf-8"))
        check(task, folder, path)


LABEL_COLUMN = {"sst2": "label", "rte": "label", "stsb": "score", "snli": "gold_label",
                "rocstories": "AnswerRightEnding"}
bad_labels = fields | st.sampled_from(
    ["0", "1", "2", "-1", "5", "5.0001", "-0", "1e400", "nan", "inf", "-inf", "1_0", "٣",
     "entailment", "neutral", "Entailment", " entailment ", "1.0", "true", "A", "1" * 5000]
) | st.integers(-(2**70), 2**70).map(str) | st.floats().map(str)


@FUZZ
@given(data=st.data(), task=st.sampled_from(LINE_TASKS), label=bad_labels)
def test_bad_labels(good, data, task, label):
    with copy_of(good[task]) as folder:
        path = target(data, task, folder)
        header, *rows = read_rows(task, path.read_text(encoding="utf-8"))
        row = rows[data.draw(st.integers(0, len(rows) - 1))]
        row[header.index(LABEL_COLUMN[task])] = label
        path.write_bytes(write_rows(task, [header, *rows]).encode("utf-8"))
        check(task, folder, path)


# ---------------------------------------------------------------------------------------------
# RACE: JSON


@FUZZ
@given(data=st.data(), value=json_values)
def test_any_json_in_place_of_a_race_file(good, data, value):
    with copy_of(good["race"]) as folder:
        path = target(data, "race", folder)
        write_json(path, value)
        assert check("race", folder, path) is not None


@FUZZ
@given(data=st.data())
def test_race_fields_set_to_any_json(good, data):
    """A top-level field, a question, an option list, an option or an answer: any value."""
    with copy_of(good["race"]) as folder:
        path = target(data, "race", folder)
        item = json.loads(path.read_text(encoding="utf-8"))
        for _ in range(data.draw(st.integers(1, 3))):
            value = data.draw(json_values | fields)
            where = data.draw(st.sampled_from(["top", "questions", "options", "option",
                                               "answers", "delete"]))
            if where == "top":
                item[data.draw(st.sampled_from(sorted(item) + ["junk"]))] = value
            elif where == "delete" and item:
                del item[data.draw(st.sampled_from(sorted(item)))]
            elif where == "option" and isinstance(item.get("options"), list) and item["options"]:
                choices = data.draw(st.sampled_from(item["options"]))
                if isinstance(choices, list) and choices:
                    choices[data.draw(st.integers(0, len(choices) - 1))] = value
            elif isinstance(item.get(where), list) and item[where]:
                item[where][data.draw(st.integers(0, len(item[where]) - 1))] = value
        write_json(path, item)
        check("race", folder, path)


HOSTILE_JSON = {
    **fuzz.HOSTILE_JSON,
    "an empty file": "",
    "two objects": race("One.", "A") + "\n" + race("Two.", "B"),
}


@pytest.mark.parametrize("text", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_json_that_python_cannot_read(good, text):
    """JSON the json module refuses with something other than JSONDecodeError."""
    with copy_of(good["race"]) as folder:
        path = folder / "dev/high/2.txt"
        path.write_text(text, encoding="utf-8")
        assert check("race", folder, path) is not None
