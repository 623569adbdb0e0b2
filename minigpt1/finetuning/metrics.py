"""The scores of GLUE and the GPT-1 paper, from predictions and true labels.

With n examples, predictions p and labels y:

    accuracy   (number of i with p_i = y_i) / n
    f1         2 TP / (2 TP + FP + FN)            the positive class is 1 (paraphrase, duplicate)
    matthews   (c n - sum_k p_k t_k) / sqrt((n^2 - sum_k p_k^2) (n^2 - sum_k t_k^2))
               c: correct predictions; p_k, t_k: how often class k is predicted, is true.
               With two classes this is (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
    pearson    sum (p_i - mean p)(y_i - mean y) / sqrt(sum (p_i - mean p)^2 sum (y_i - mean y)^2)
    spearman   pearson of the ranks of p and of y; tied values share the mean of their ranks
               (ranks 1..n: values 5, 7, 7, 9 have ranks 1, 2.5, 2.5, 4)

A task names one metric (TaskSpec.metric); GLUE reports a second one beside two of them, and
so do we (all_scores): F1 with accuracy (MRPC, QQP), Pearson with Spearman (STS-B).

Each returns a plain Python float in natural units: accuracy and f1 in 0..1, the
correlations in -1..1 (the paper prints them times 100). Where a formula divides by zero the
score is 0.0, as scikit-learn gives: f1 with no positive prediction and no positive label,
matthews when every prediction or every label is the same class, pearson and spearman for a
constant input.
"""

import numpy as np


def as_pair(predictions, labels):
    """Both sequences as 1-D arrays of one length, refusing what no score can be made of."""
    p, y = np.asarray(predictions), np.asarray(labels)
    if p.ndim != 1 or y.ndim != 1:
        raise ValueError(f"predictions and labels must be 1-D, got shapes {p.shape} and {y.shape}")
    if len(p) != len(y):
        raise ValueError(f"{len(p)} predictions for {len(y)} labels: give one prediction per label")
    if len(p) == 0:
        raise ValueError("no predictions to score: the evaluation split is empty")
    return p, y


def accuracy(predictions, labels) -> float:
    p, y = as_pair(predictions, labels)
    return float(np.mean(p == y))


def f1(predictions, labels) -> float:
    """Binary F1 of class 1: the harmonic mean of precision and recall."""
    p, y = as_pair(predictions, labels)
    tp = np.sum((p == 1) & (y == 1))
    fp = np.sum((p == 1) & (y != 1))
    fn = np.sum((p != 1) & (y == 1))
    # Written as 2TP / (2TP + FP + FN), F1 needs no precision or recall of its own, so a model
    # that never says 1 scores 0 without a 0/0 on the way.
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def matthews(predictions, labels) -> float:
    """Matthews correlation, in the multiclass form (R_K) that scikit-learn computes."""
    p, y = as_pair(predictions, labels)
    classes, index = np.unique(np.concatenate([p, y]), return_inverse=True)
    n = len(p)
    p_counts = np.bincount(index[:n], minlength=len(classes)).astype(np.float64)  # (K,)
    t_counts = np.bincount(index[n:], minlength=len(classes)).astype(np.float64)  # (K,)
    correct = float(np.sum(p == y))
    # Counts in float64: n^2 stays exact up to 94 million examples, and nothing can overflow.
    cov_pt = correct * n - p_counts @ t_counts
    cov_pp = float(n) ** 2 - p_counts @ p_counts
    cov_tt = float(n) ** 2 - t_counts @ t_counts
    if cov_pp == 0 or cov_tt == 0:
        return 0.0  # one side is constant: it carries no information about the other
    return float(cov_pt / np.sqrt(cov_pp * cov_tt))


def pearson(predictions, labels) -> float:
    """Pearson correlation of two real sequences; 0.0 when either one is constant."""
    p, y = as_pair(predictions, labels)
    p, y = p.astype(np.float64), y.astype(np.float64)
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y))):
        raise ValueError("pearson needs finite numbers: the predictions or labels hold NaN or inf")
    # I test for a constant input before subtracting the mean: the mean of ten 0.1s is not
    # exactly 0.1, and the rounding noise left over would correlate with anything.
    if np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0
    dp, dy = p - p.mean(), y - y.mean()
    r = np.sum(dp * dy) / np.sqrt(np.sum(dp * dp) * np.sum(dy * dy))
    return float(np.clip(r, -1.0, 1.0))  # rounding can step just past +-1


def average_ranks(values):
    """Ranks 1..n of `values`, ties sharing the mean of the ranks they span (as scipy's
    rankdata does): [5, 9, 7, 7] -> [1, 4, 2.5, 2.5]."""
    x = np.asarray(values)
    order = np.argsort(x, kind="stable")  # (n,) positions from the smallest value up
    sorted_x = x[order]
    # each run of equal values starts where the value changes
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])  # (runs,)
    ends = np.r_[starts[1:], len(x)]  # one past each run's last position
    run_ranks = (starts + 1 + ends) / 2  # the mean of ranks starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def spearman(predictions, labels) -> float:
    """Spearman's rank correlation: pearson of the average ranks; 0.0 for a constant input."""
    p, y = (values.astype(np.float64) for values in as_pair(predictions, labels))
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y))):  # ranks would hide a NaN
        raise ValueError("spearman needs finite numbers: the predictions or labels hold NaN or inf")
    return pearson(average_ranks(p), average_ranks(y))


SCORES = {"accuracy": accuracy, "f1": f1, "matthews": matthews, "pearson": pearson}
# what GLUE reports beside a task's metric
COMPANIONS = {"f1": {"accuracy": accuracy}, "pearson": {"spearman": spearman}}


def score(metric, predictions, labels) -> float:
    """The metric named by a TaskSpec ("accuracy", "f1", "matthews" or "pearson")."""
    if metric not in SCORES:
        raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(SCORES)}")
    return SCORES[metric](predictions, labels)


def all_scores(metric, predictions, labels) -> dict:
    """{name: value} of the task's metric and of those GLUE reports beside it, the task's
    first: {"f1": ..., "accuracy": ...} for MRPC, {"pearson": ..., "spearman": ...} for STS-B."""
    scores = {metric: score(metric, predictions, labels)}
    for name, companion in COMPANIONS.get(metric, {}).items():
        scores[name] = companion(predictions, labels)
    return scores
