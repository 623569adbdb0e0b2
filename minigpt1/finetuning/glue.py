"""GLUE's tasks and SNLI, read from the tab-separated files their authors distribute.

Each loader is a few lines on `tsv_task`, which stands on file_readers.table: it picks a file's
columns by header name (GLUE's files have up to sixteen columns, and MNLI's train and dev files
do not even agree on how many). GLUE's test.tsv files carry no labels (the answers stay on the
GLUE server), so GLUE tasks give "train" and "validation" (MNLI adds "validation_mismatched");
SNLI publishes its test answers and also gives "test".

Each spec names the metric its task is judged by; as GLUE does, MRPC and QQP also report
accuracy beside F1, and STS-B Spearman beside Pearson (metrics.all_scores).
"""

from .file_readers import table_examples, task_folder
from .transformations import TaskData, TaskSpec

GLUE = "from the GLUE benchmark download, https://gluebenchmark.com/tasks"
BINARY = ("0", "1")  # how GLUE's two-class files write their labels: 0 = the first class name
NLI = ("entailment", "neutral", "contradiction")
SNLI = "snli_1.0.zip from https://nlp.stanford.edu/projects/snli/"
TRAIN_DEV = {"train": "train.tsv", "validation": "dev.tsv"}

GLUE_TASKS = {spec.name: spec for spec in (
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
)}


def tsv_task(name, folder, dataset, files, texts, label, values=None, origin=GLUE, **options):
    """TaskData from one tab-separated file per split (every GLUE task, and SNLI).

    values: the labels as the file spells them, in the order of the spec's labels (by default
    the spec's labels themselves). `options` go on to table_examples.
    """
    spec = GLUE_TASKS[name]
    values = spec.labels if values is None else values
    folder = task_folder(folder, f"{dataset} folder with {', '.join(files.values())} ({origin})",
                         files.values())
    return TaskData(spec, {split: table_examples(folder / file, texts, label, values, **options)
                           for split, file in files.items()})


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


LOADERS = {"sst2": load_sst2, "cola": load_cola, "mrpc": load_mrpc, "qqp": load_qqp,
           "stsb": load_stsb, "mnli": load_mnli, "qnli": load_qnli, "rte": load_rte,
           "snli": load_snli}
