"""Fine-tuning tasks read from the files their authors distribute, into TaskData.

    load_task_files("sst2", "glue_data/SST-2")
        -> TaskData(FILE_TASKS["sst2"], {"train": [Example, ...], "validation": [...]})

The path is the task's folder, as the download unpacks it; nothing here downloads anything.
Each format has a loader of a few lines, and all of them stand on one helper, `table`, which
reads a delimited file and picks its columns by header name (GLUE's files have up to sixteen
columns, and MNLI's train and dev files do not even agree on how many). The reading helpers are
in file_readers.py, GLUE and SNLI in glue.py, the Story Cloze Test and RACE in
multiple_choice.py; this module is their registry.

Splits: GLUE's test.tsv files carry no labels (the answers stay on the GLUE server), so I do
not load them: GLUE tasks give "train" and "validation" (MNLI adds "validation_mismatched").
SNLI, the Story Cloze Test and RACE publish their test answers, so they also give "test".

Two kinds of rows are skipped. SNLI's gold_label "-" means the five annotators reached no
majority, so there is no answer to learn; every SNLI result leaves these out. And QQP's rows
with an empty question (two in GLUE's train.tsv) have nothing to compare. Anything else that
looks wrong stops the load with a FormatError (errors.py, a ValueError) that starts
"path:line:" (lines counted from 1, as an editor shows them) and says how to fix it.
"""

from functools import partial

from .glue import GLUE_TASKS, LOADERS
from .multiple_choice import MULTIPLE_CHOICE_TASKS, ROC_VALIDATION, load_race, load_rocstories
from .transformations import TaskData

FILE_TASKS = {**GLUE_TASKS, **MULTIPLE_CHOICE_TASKS}


def load_task_files(name, path, n_validation=ROC_VALIDATION) -> TaskData:
    """Task `name` (a key of FILE_TASKS) from its folder `path`. n_validation: how many
    stories of the Story Cloze val file rocstories holds out for validation (GPT-1: 374);
    every other task has a validation file of its own."""
    loaders = {**LOADERS, "rocstories": partial(load_rocstories, n_validation=n_validation),
               "race": load_race}
    if name not in loaders:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(FILE_TASKS)}")
    if name != "rocstories" and n_validation != ROC_VALIDATION:
        raise ValueError(f"n_validation (--n-validation) holds out stories of the Story Cloze "
                         f"val file: it is for rocstories only, and {name} has a validation "
                         "file of its own; leave it out")
    return loaders[name](path)
