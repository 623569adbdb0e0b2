"""The multiple-choice tasks of the paper, read from their distributed files.

    Story Cloze Test (ROCStories): two CSVs, each row a four-sentence story and two endings
    RACE: one JSON file per exam article, with several questions of four options each

Both give "train", "validation" and "test". Use them through file_tasks.load_task_files, which
also describes the error messages; this module reuses its reading helpers.
"""

import json

import numpy as np

from ..errors import FormatError
from .file_readers import shown, table_examples, task_folder, utf8_lines
from .transformations import Example, TaskData, TaskSpec

ROC_SEED = 3535999445  # the seed of GPT-1's code, openai/finetune-transformer-lm
ROC_VALIDATION = 374  # stories the original held out of the Story Cloze val file
ROC_ORIGIN = ("the Story Cloze Test folder with its Spring 2016 val and test CSVs (names "
              "containing 'val' and 'test'), from https://cs.rochester.edu/nlp/rocstories/")
ROC_TEXTS = ("InputSentence1", "InputSentence2", "InputSentence3", "InputSentence4",
             "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2")
RACE_ORIGIN = ("the RACE folder with train/, dev/ and test/, each holding high/ and middle/ "
               "(from https://www.cs.cmu.edu/~glai1/data/race/)")
RACE_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
RACE_LEVELS = ("high", "middle")

MULTIPLE_CHOICE_TASKS = {spec.name: spec for spec in (
    TaskSpec("rocstories", "multiple_choice", ("1", "2"), "accuracy",
             "Story Cloze Test: which of two endings finishes a four-sentence story?"),
    TaskSpec("race", "multiple_choice", ("A", "B", "C", "D"), "accuracy",
             "RACE: reading comprehension from English exams, four answers per question"),
)}


def load_rocstories(folder, n_validation=ROC_VALIDATION):
    """The Story Cloze Test as GPT-1's code read it: the val file is cut into train and
    validation, and the test file is the test. n_validation: the stories held out for
    validation (the original's 374 by default).

    The original cut with scikit-learn's train_test_split(test_size=374, random_state=seed),
    which takes validation = the first 374 of RandomState(seed).permutation(n) and train = the
    rest, in that order. I repeat exactly that with numpy's legacy RandomState, whose stream is
    frozen, so our split is the one the paper's numbers come from, story for story.
    """
    if n_validation < 1:
        raise ValueError(f"n_validation must be at least 1 (stories held out for validation), "
                         f"got {n_validation}")
    folder = task_folder(folder, ROC_ORIGIN)
    val, test = roc_file(folder, "val"), roc_file(folder, "test")
    stories = roc_examples(val)
    if n_validation >= len(stories):
        raise FormatError(f"{val}:2: only {len(stories)} stories, too few to hold out "
                          f"{n_validation} for validation and train on the rest; is this the "
                          "whole val file? (or hold out fewer: --n-validation)")
    order = np.random.RandomState(ROC_SEED).permutation(len(stories))  # (n,)
    splits = {"train": [stories[i] for i in order[n_validation:]],
              "validation": [stories[i] for i in order[:n_validation]],
              "test": roc_examples(test)}
    return TaskData(MULTIPLE_CHOICE_TASKS["rocstories"], splits)


def roc_file(folder, part):
    """The one CSV whose name contains `part`; the val file's name contains "test" as well."""
    found = [p for p in sorted(folder.glob("*.csv")) if part in p.name.lower()
             and (part == "val" or "val" not in p.name.lower())]
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise FileNotFoundError(f"{folder}: expected exactly one {part} CSV (found {names}) in "
                                f"{ROC_ORIGIN}")
    return found[0]


def roc_examples(path):
    """segments = (the four story sentences joined by spaces, ending 1, ending 2)."""
    labels = MULTIPLE_CHOICE_TASKS["rocstories"].labels
    rows = table_examples(path, ROC_TEXTS, "AnswerRightEnding", labels, delimiter=",")
    return [Example((" ".join(e.segments[:4]), *e.segments[4:]), e.label, e.source) for e in rows]


def load_race(folder):
    """RACE: one Example per question, (article + " " + question, option A, B, C, D).

    The paper puts no delimiter between document and question, so neither do I. Files are
    read in name order, high school before middle school.
    """
    levels = [f"{name}/{level}" for name in RACE_SPLITS.values() for level in RACE_LEVELS]
    folder = task_folder(folder, RACE_ORIGIN, levels)
    splits = {}
    for split, name in RACE_SPLITS.items():
        paths = [p for level in RACE_LEVELS for p in sorted((folder / name / level).glob("*.txt"))]
        if not paths:
            raise FileNotFoundError(f"{folder / name}: no .txt files in high/ or middle/; "
                                    f"expected {RACE_ORIGIN}")
        splits[split] = [example for path in paths for example in race_examples(path)]
    return TaskData(MULTIPLE_CHOICE_TASKS["race"], splits)


def race_examples(path):
    """The Examples of one RACE file: {"article", "questions", "options", "answers", "id"}."""
    text = "".join(utf8_lines(path))
    try:
        item = json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno}); "
                          "a RACE file holds one JSON object, download it again") from None
    except ValueError as err:  # an integer of more than 4300 digits
        raise FormatError(f"{path}:1: not readable as JSON ({err}); is this a RACE file?"
                          ) from None
    except RecursionError:
        raise FormatError(f"{path}:1: JSON nested too deeply to read; is this a RACE file?"
                          ) from None
    where = f"{path}:1"  # RACE writes each object on one line
    keys = ("questions", "options", "answers")
    if not (isinstance(item, dict) and isinstance(item.get("article"), str)
            and all(isinstance(item.get(key), list) for key in keys)):
        raise FormatError(f"{where}: expected an object with an article (text) and lists of "
                          "questions, options and answers; is this a RACE file?")
    questions, options, answers = (item[key] for key in keys)
    if not len(questions) == len(options) == len(answers) > 0:
        raise FormatError(f"{where}: {len(questions)} questions, {len(options)} option lists and "
                          f"{len(answers)} answers; each question needs its options and answer")
    if not item["article"].strip():
        raise FormatError(f"{where}: the article is empty; remove the file")
    letters = MULTIPLE_CHOICE_TASKS["race"].labels
    found = []
    for n, (question, choices, answer) in enumerate(zip(questions, options, answers,
                                                        strict=True), 1):
        if not (isinstance(choices, list) and len(choices) == len(letters)
                and all(isinstance(c, str) and c.strip() for c in choices)):
            raise FormatError(f"{where}: question {n} needs exactly {len(letters)} options, all "
                              f"non-empty texts, got {shown(choices)}; fix or remove the question")
        if answer not in letters:
            raise FormatError(f"{where}: question {n} has answer {shown(answer)}, not one of "
                              f"{', '.join(letters)}; fix the answer or remove the question")
        if not isinstance(question, str):
            raise FormatError(f"{where}: question {n} is {shown(question)}, not text")
        segments = (f"{item['article']} {question}", *choices)
        found.append(Example(segments, letters.index(answer), f"{path}:question {n}"))
    return found
