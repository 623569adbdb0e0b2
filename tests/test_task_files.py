"""Task files: every format, written here in its real layout (headers, column order, quoting),
parsed to exact examples; and every kind of bad input answered with the file and the line."""

import csv
import io
import json
import re

import numpy as np
import pytest

from minigpt1.finetuning.file_tasks import FILE_TASKS, load_task_files
from minigpt1.finetuning.multiple_choice import ROC_SEED, load_rocstories

# ---------------------------------------------------------------------------------------------
# Fixture writers: small folders in the layout each download unpacks to


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())  # bytes: no newline translation on any system


def write_rows(path, rows, end="\n", prefix=""):
    """Rows (header first, when the format has one) as tab-separated lines, unquoted, as GLUE."""
    write(path, prefix + "".join("\t".join(map(str, row)) + end for row in rows))


def glue(folder, header, train, dev, **options):
    write_rows(folder / "train.tsv", [header, *train] if header else train, **options)
    write_rows(folder / "dev.tsv", [header, *dev] if header else dev, **options)


def make_sst2(folder):
    glue(folder, ("sentence", "label"),
         [("hide new secretions from the parental units ", 0), ('a "charming" film ', 1)],
         [("it 's a charming and often affecting journey . ", 1)])


def make_cola(folder):
    glue(folder, None, [("gj04", 1, "", "Our friends won't buy this analysis."),
                        ("gj04", 0, "*", "They drank the pub.")],
         [("gj04", 1, "", "The sailors rode the breeze clear of the rocks.")])


def make_mrpc(folder):
    # the real files start with a byte-order mark; here with Windows line ends as well
    glue(folder, ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
         [(1, 702876, 702977, 'Amrozi accused his brother , whom he called " the witness " .',
           'Referring to him as only " the witness " , Amrozi accused his brother .')],
         [(0, 1089874, 1089925, "PCCW 's chief will leave .", "The chief is staying .")],
         end="\r\n", prefix="\ufeff")


def make_qqp(folder):
    glue(folder, ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
         [(133273, 213221, 213222, "How is the life of a math student?", "Which is best?", 0),
          (310137, 1, 2, "How can I create an Android app?", "", 0)],  # GLUE has two such rows
         [(40066, 3, 4, "Why are so many Quora users posting?", "Why do people ask?", 1)])


STSB_HEADER = ("index", "genre", "filename", "year", "old_index", "source1", "source2",
               "sentence1", "sentence2", "score")


def make_stsb(folder):
    glue(folder, STSB_HEADER,
         [(0, "main-captions", "MSRvid", "2012test", "0001", "none", "none",
           "A plane is taking off.", "An air plane is taking off.", "5.000")],
         [(0, "main-captions", "MSRvid", "2012test", "0000", "none", "none",
           "A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", "3.800")])


PARSES = ("( a )", "( b )", "(ROOT a)", "(ROOT b)")
MNLI_START = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
              "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
              "sentence2")
FIVE_LABELS = ("label1", "label2", "label3", "label4", "label5")


def make_mnli(folder):
    # train carries one annotator label, the dev files five: the columns differ in number
    write_rows(folder / "train.tsv", [
        (*MNLI_START, "label1", "gold_label"),
        (0, 31193, "31193n", "government", *PARSES, "Conceptually cream skimming has two "
         "basic dimensions.", "Product and geography are what make cream skimming work. ",
         "neutral", "neutral")])
    for name, genre in (("dev_matched.tsv", "fiction"), ("dev_mismatched.tsv", "letters")):
        write_rows(folder / name, [
            (*MNLI_START, *FIVE_LABELS, "gold_label"),
            (0, 63735, "63735n", genre, *PARSES, f"The {genre} premise.", "The hypothesis.",
             "contradiction", "neutral", "contradiction", "contradiction", "contradiction",
             "contradiction")])


def make_qnli(folder):
    glue(folder, ("index", "question", "sentence", "label"),
         [(0, "When did the third Digimon series begin?", "Unlike the two seasons before it, "
           "it was set in a real world.", "not_entailment")],
         [(0, "What came into force after the new constitution was herald?", "As of that day, "
           "the new constitution came into force.", "entailment")])


def make_rte(folder):
    glue(folder, ("index", "sentence1", "sentence2", "label"),
         [(0, "No Weapons of Mass Destruction Found in Iraq Yet.",
           "Weapons of Mass Destruction Found in Iraq.", "not_entailment")],
         [(0, "Dana Reeve died of lung cancer.", "Dana Reeve died.", "entailment")])


SNLI_HEADER = ("gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
               "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "captionID",
               "pairID", *FIVE_LABELS)


def make_snli(folder):
    horse = "A person on a horse jumps over a broken down airplane."
    write_rows(folder / "snli_1.0_train.txt", [
        SNLI_HEADER,
        ("neutral", *PARSES, horse, "A person is training his horse.", "3416050480.jpg#4",
         "3416050480.jpg#4r1n", "neutral", "", "", "", ""),
        ("-", *PARSES, horse, "A person is outdoors.", "3416050480.jpg#4", "x", "neutral"),
        # a row that leaves its empty annotator columns out
        ("contradiction", *PARSES, horse, "A person is at a diner.", "3416050480.jpg#4",
         "3416050480.jpg#4r1c", "contradiction")])
    for split in ("dev", "test"):
        write_rows(folder / f"snli_1.0_{split}.txt", [
            SNLI_HEADER,
            ("-", *PARSES, "Two women are embracing.", "The sisters hug.", "1", "1r", *"NNENC"),
            ("entailment", *PARSES, f"Two women ({split}).", "Two women are holding packages.",
             "2", "2r", *"EEEEE")])


ROC_HEADER = ("InputStoryid", "InputSentence1", "InputSentence2", "InputSentence3",
              "InputSentence4", "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2",
              "AnswerRightEnding")
ROC_VAL = "cloze_test_val__spring2016 - cloze_test_ALL_val.csv"
ROC_TEST = "cloze_test_test__spring2016 - cloze_test_ALL_test.csv"


def roc_story(i, answer):
    return (f"id-{i}", f'Karen said, "story {i}."', f"Sentence two of {i}.",
            f"Sentence three of {i}.", f"Sentence four of {i}.", f"Good end {i}.",
            f"Bad end {i}.", answer)


def roc_csv(stories):
    text = io.StringIO()
    csv.writer(text).writerows([ROC_HEADER, *stories])  # quotes the fields that need it
    return text.getvalue()


def make_rocstories(folder, n_val=380, n_test=2):
    write(folder / ROC_VAL, roc_csv(roc_story(i, 1 + i % 2) for i in range(n_val)))
    write(folder / ROC_TEST, roc_csv(roc_story(1000 + i, 2 - i % 2) for i in range(n_test)))


def race_item(article, *questions):
    """A RACE file's object; each question is (question, options, answer)."""
    qs, options, answers = zip(*questions, strict=True) if questions else ((), (), ())
    return {"answers": list(answers), "options": [list(o) for o in options],
            "questions": list(qs), "article": article, "id": "high1.txt"}


def make_race(folder):
    files = {
        "train/high/1.txt": race_item("Tom likes tea.", ("Tom likes _ .", "tea coffee milk "
                                      "water".split(), "A"), ("Who likes tea?", "Tom Ann Bob "
                                      "Sue".split(), "A")),
        "train/middle/2.txt": race_item("Ann runs.", ("What does Ann do?", "sits runs eats "
                                        "reads".split(), "B")),
        "dev/high/3.txt": race_item("Dev text.", ("Which?", list("abcd"), "D")),
        "dev/middle/4.txt": race_item("Dev two.", ("Which?", list("abcd"), "C")),
        "test/high/5.txt": race_item("Test text.", ("Which?", list("abcd"), "A")),
        "test/middle/6.txt": race_item("Test two.", ("Which?", list("abcd"), "B")),
    }
    for name, item in files.items():
        write(folder / name, json.dumps(item))


BUILDERS = {"sst2": make_sst2, "cola": make_cola, "mrpc": make_mrpc, "qqp": make_qqp,
            "stsb": make_stsb, "mnli": make_mnli, "qnli": make_qnli, "rte": make_rte,
            "snli": make_snli, "rocstories": make_rocstories, "race": make_race}


# ---------------------------------------------------------------------------------------------
# Every format parses to exact examples: {split: [(segments, label, "file:line")]}

NOT_PARA = "not_paraphrase"
EXPECTED = {
    "sst2": {"train": [(("hide new secretions from the parental units ",), 0, "train.tsv:2"),
                       (('a "charming" film ',), 1, "train.tsv:3")],
             "validation": [(("it 's a charming and often affecting journey . ",), 1,
                             "dev.tsv:2")]},
    "cola": {"train": [(("Our friends won't buy this analysis.",), 1, "train.tsv:1"),
                       (("They drank the pub.",), 0, "train.tsv:2")],
             "validation": [(("The sailors rode the breeze clear of the rocks.",), 1,
                             "dev.tsv:1")]},
    "mrpc": {"train": [(('Amrozi accused his brother , whom he called " the witness " .',
                         'Referring to him as only " the witness " , Amrozi accused his '
                         'brother .'), 1, "train.tsv:2")],
             "validation": [(("PCCW 's chief will leave .", "The chief is staying ."), 0,
                             "dev.tsv:2")]},
    "qqp": {"train": [(("How is the life of a math student?", "Which is best?"), 0,
                       "train.tsv:2")],  # the row with an empty question is skipped
            "validation": [(("Why are so many Quora users posting?", "Why do people ask?"), 1,
                            "dev.tsv:2")]},
    "stsb": {"train": [(("A plane is taking off.", "An air plane is taking off."), 5.0,
                        "train.tsv:2")],
             "validation": [(("A man with a hard hat is dancing.",
                              "A man wearing a hard hat is dancing."), 3.8, "dev.tsv:2")]},
    "mnli": {"train": [(("Conceptually cream skimming has two basic dimensions.",
                         "Product and geography are what make cream skimming work. "), 1,
                        "train.tsv:2")],
             "validation": [(("The fiction premise.", "The hypothesis."), 2,
                             "dev_matched.tsv:2")],
             "validation_mismatched": [(("The letters premise.", "The hypothesis."), 2,
                                        "dev_mismatched.tsv:2")]},
    "qnli": {"train": [(("When did the third Digimon series begin?", "Unlike the two seasons "
                         "before it, it was set in a real world."), 1, "train.tsv:2")],
             "validation": [(("What came into force after the new constitution was herald?",
                              "As of that day, the new constitution came into force."), 0,
                             "dev.tsv:2")]},
    "rte": {"train": [(("No Weapons of Mass Destruction Found in Iraq Yet.",
                        "Weapons of Mass Destruction Found in Iraq."), 1, "train.tsv:2")],
            "validation": [(("Dana Reeve died of lung cancer.", "Dana Reeve died."), 0,
                            "dev.tsv:2")]},
    "snli": {"train": [(("A person on a horse jumps over a broken down airplane.",
                         "A person is training his horse."), 1, "snli_1.0_train.txt:2"),
                       (("A person on a horse jumps over a broken down airplane.",
                         "A person is at a diner."), 2, "snli_1.0_train.txt:4")],
             "validation": [(("Two women (dev).", "Two women are holding packages."), 0,
                             "snli_1.0_dev.txt:3")],
             "test": [(("Two women (test).", "Two women are holding packages."), 0,
                       "snli_1.0_test.txt:3")]},
    "race": {"train": [(("Tom likes tea. Tom likes _ .", "tea", "coffee", "milk", "water"), 0,
                        "train/high/1.txt:question 1"),
                       (("Tom likes tea. Who likes tea?", "Tom", "Ann", "Bob", "Sue"), 0,
                        "train/high/1.txt:question 2"),
                       (("Ann runs. What does Ann do?", "sits", "runs", "eats", "reads"), 1,
                        "train/middle/2.txt:question 1")],
             "validation": [(("Dev text. Which?", *"abcd"), 3, "dev/high/3.txt:question 1"),
                            (("Dev two. Which?", *"abcd"), 2, "dev/middle/4.txt:question 1")],
             "test": [(("Test text. Which?", *"abcd"), 0, "test/high/5.txt:question 1"),
                      (("Test two. Which?", *"abcd"), 1, "test/middle/6.txt:question 1")]},
}


def parsed(data):
    return {split: [(e.segments, e.label, e.source) for e in examples]
            for split, examples in data.splits.items()}


def located(folder, expected):
    """The expected examples with "file:line" made into "<folder>/file:line"."""
    def where(source):
        file, line = source.rsplit(":", 1)
        return f"{folder / file}:{line}"
    return {split: [(s, label, where(source)) for s, label, source in examples]
            for split, examples in expected.items()}


def test_every_task_has_a_loader_and_a_fixture():
    assert set(BUILDERS) == set(FILE_TASKS)
    assert all(spec.name == name for name, spec in FILE_TASKS.items())


@pytest.mark.parametrize("name", EXPECTED)
def test_loads_exact_examples(tmp_path, name):
    BUILDERS[name](tmp_path)
    data = load_task_files(name, tmp_path)
    assert data.spec is FILE_TASKS[name]
    assert parsed(data) == located(tmp_path, EXPECTED[name])
    for examples in data.splits.values():
        assert all(len(e.segments) == data.spec.n_segments for e in examples)


def test_stsb_scores_are_floats(tmp_path):
    make_stsb(tmp_path)
    data = load_task_files("stsb", tmp_path)
    assert data.spec.regression and type(data.splits["train"][0].label) is float


# ---------------------------------------------------------------------------------------------
# The Story Cloze Test: the original's split of the val file


def test_rocstories_examples_and_split(tmp_path):
    make_rocstories(tmp_path, n_val=10, n_test=2)
    data = load_rocstories(tmp_path, n_validation=3)
    assert list(data.splits) == ["train", "validation", "test"]
    assert [len(data.splits[s]) for s in data.splits] == [7, 3, 2]
    order = np.random.RandomState(ROC_SEED).permutation(10)  # scikit-learn's recipe
    val_file = f"{tmp_path / ROC_VAL}"
    assert [e.source for e in data.splits["validation"]] == [f"{val_file}:{i + 2}"
                                                            for i in order[:3]]
    assert [e.source for e in data.splits["train"]] == [f"{val_file}:{i + 2}" for i in order[3:]]
    first = data.splits["test"][0]
    assert first.segments == ('Karen said, "story 1000." Sentence two of 1000. Sentence three '
                              'of 1000. Sentence four of 1000.', "Good end 1000.", "Bad end 1000.")
    assert (first.label, first.source) == (1, f"{tmp_path / ROC_TEST}:2")  # AnswerRightEnding 2
    assert load_rocstories(tmp_path, n_validation=3) == data  # the same split every time


def test_rocstories_holds_out_374_stories_by_default(tmp_path):
    make_rocstories(tmp_path, n_val=380)
    data = load_task_files("rocstories", tmp_path)
    assert {s: len(e) for s, e in data.splits.items()} == {"train": 6, "validation": 374,
                                                          "test": 2}


def test_rocstories_needs_more_stories_than_it_holds_out(tmp_path):
    make_rocstories(tmp_path, n_val=5)
    with pytest.raises(ValueError, match="only 5 stories, too few to hold out 374"):
        load_task_files("rocstories", tmp_path)


# ---------------------------------------------------------------------------------------------
# Bad input: a ValueError starting "path:line:" that says what is wrong

SST2 = "sentence\tlabel\n"
RTE = "index\tsentence1\tsentence2\tlabel\n"
RACE_FILE = "train/high/1.txt"
ROC_ROW = roc_csv([roc_story(1, 1)])
ROC_SPANNING = roc_csv([(*roc_story(1, 1)[:2], "two\nlines", *roc_story(1, 1)[3:]),
                        roc_story(2, 3)])  # the second story starts on line 4
RACE_PRETTY = '{\n  "article": "x",\n  "questions": [}\n'


def race_json(*questions, article="Text."):
    return json.dumps(race_item(article, *questions))


BAD = [
    ("sst2", "train.tsv", "text\tlabel\ngood\t1\n", 1, "no column sentence (the header has "
     "text, label)"),
    ("mnli", "dev_matched.tsv", "\t".join(MNLI_START) + "\nx\n", 1, "no column gold_label"),
    ("rocstories", ROC_VAL, ROC_ROW.replace("AnswerRightEnding", "Answer"), 1,
     "no column AnswerRightEnding"),
    ("sst2", "train.tsv", SST2 + "good\t1\na tab\tinside\t0\n", 3, "3 fields, expected 2"),
    ("qqp", "train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
     "\tWas Muhammad a real historical figure?\t0\n", 2, "3 fields, expected 6"),
    ("cola", "dev.tsv", "gj04\t1\t\tFine.\ngj04\t1\tno mark column\n", 2, "3 fields, expected 4"),
    ("sst2", "train.tsv", SST2 + "good\t1\nbad\t2\n", 3, "label is '2', not one of 0, 1"),
    ("rte", "train.tsv", RTE + "0\ta\tb\tentailed\n", 2, "not one of entailment, not_entailment"),
    ("rocstories", ROC_VAL, ROC_SPANNING, 4, "AnswerRightEnding is '3', not one of 1, 2"),
    ("stsb", "train.tsv", "\t".join(STSB_HEADER) + "\n" + "x\t" * 9 + "five\n", 2,
     "score is 'five', not a number from 0 to 5"),
    ("stsb", "dev.tsv", "\t".join(STSB_HEADER) + "\n" + "x\t" * 9 + "5.5\n", 2,
     "not a number from 0 to 5"),
    ("rte", "dev.tsv", RTE + "0\ta\tb\tentailment\n1\ta\t \tentailment\n", 3,
     "the sentence2 column is empty"),
    ("rocstories", ROC_VAL, ROC_ROW.replace("Sentence two of 1.", ""), 2,
     "the InputSentence2 column is empty"),
    ("sst2", "train.tsv", SST2.encode() + b"good\t1\ncaf\xe9\t1\n", 3, "not valid UTF-8"),
    ("race", RACE_FILE, b'{"article": "caf\xe9"}', 1, "not valid UTF-8 (byte 0xe9)"),
    ("sst2", "train.tsv", "", 1, "the file is empty"),
    ("sst2", "dev.tsv", SST2 + "\n", 2, "no data rows"),
    ("cola", "train.tsv", "\n\n", 1, "no data rows"),
    ("sst2", "train.tsv", SST2 + "a lone\rcarriage return\t1\n", 2, "unreadable line"),
    ("race", RACE_FILE, RACE_PRETTY, 3, "not valid JSON"),
    ("race", RACE_FILE, race_json(("Q?", list("abc"), "A")), 1, "exactly 4 options"),
    ("race", RACE_FILE, race_json(("Q?", ["a", "b", "", "d"], "A")), 1, "exactly 4 options"),
    ("race", RACE_FILE, race_json(("Q?", list("abcd"), "E")), 1, "answer 'E', not one of A"),
    ("race", RACE_FILE, race_json(("Q?", list("abcd"), "A")).replace('"answers": ["A"]',
     '"answers": ["A", "B"]'), 1, "1 questions, 1 option lists and 2 answers"),
    ("race", RACE_FILE, race_json(), 1, "0 questions"),
    ("race", RACE_FILE, race_json(("Q?", list("abcd"), "A"), article=" "), 1, "article is empty"),
    ("race", RACE_FILE, "[1, 2]", 1, "is this a RACE file?"),
]


@pytest.mark.parametrize("name, file, content, line, message", BAD,
                         ids=[f"{case[0]}-{case[4][:30]}" for case in BAD])
def test_bad_input_names_the_file_and_line(tmp_path, name, file, content, line, message):
    BUILDERS[name](tmp_path)
    (tmp_path / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError) as err:
        load_task_files(name, tmp_path)
    assert str(err.value).startswith(f"{tmp_path / file}:{line}: "), str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize("name, remove, expected", [
    ("sst2", None, "no such folder; give GLUE's SST-2 folder with train.tsv, dev.tsv (from the "
     "GLUE benchmark"),
    ("sst2", "dev.tsv", "no dev.tsv here"),
    ("mnli", "dev_mismatched.tsv", "no dev_mismatched.tsv here"),
    ("snli", "snli_1.0_test.txt", "https://nlp.stanford.edu/projects/snli/"),
    ("rocstories", ROC_TEST, "expected exactly one test CSV (found none)"),
    ("race", "dev/middle", "no dev/middle here"),
])
def test_missing_files_say_what_to_get(tmp_path, name, remove, expected):
    folder = tmp_path / "task"
    if remove is not None:
        BUILDERS[name](folder)
        path = folder / remove
        if path.is_dir():
            for file in path.iterdir():
                file.unlink()
            path.rmdir()
        else:
            path.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(expected)):
        load_task_files(name, folder)


def test_unknown_task_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'glue'.*sst2, cola, mrpc"):
        load_task_files("glue", tmp_path)
