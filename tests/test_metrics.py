"""Metrics: hand-computed small cases, NumPy's corrcoef as an oracle for pearson, and the edge
cases where a formula would divide by zero."""

import numpy as np
import pytest

from minigpt1.finetuning import transformations as tasks
from minigpt1.finetuning.metrics import (
    SCORES,
    accuracy,
    all_scores,
    average_ranks,
    f1,
    matthews,
    pearson,
    score,
    spearman,
)

# Five binary predictions against five labels: TP = 2 (items 0, 4), TN = 1 (item 3),
# FP = 1 (item 1), FN = 1 (item 2).
P = [1, 1, 0, 0, 1]
Y = [1, 0, 1, 0, 1]


def test_accuracy_counts_matches():
    assert accuracy(P, Y) == 3 / 5
    assert accuracy([2, 0, 1, 2], [2, 1, 1, 2]) == 0.75


def test_f1_by_hand():
    assert f1(P, Y) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # 2/3
    assert f1(Y, Y) == 1.0


@pytest.mark.parametrize("predictions, labels", [
    ([0, 0, 0], [1, 0, 1]),  # no positive prediction: precision is 0/0, recall 0
    ([0, 0], [0, 0]),  # no positives at all: scikit-learn's zero_division gives 0.0
    ([1, 1], [0, 0]),  # only false positives
])
def test_f1_without_true_positives_is_zero(predictions, labels):
    assert f1(predictions, labels) == 0.0


def test_matthews_binary_by_hand():
    # (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3 * 3 * 2 * 2)
    assert matthews(P, Y) == pytest.approx(1 / 6)


def test_matthews_multiclass_by_hand():
    # c = 3 correct of n = 4; predicted counts (1, 1, 2), true counts (1, 2, 1):
    # (3*4 - 5) / sqrt((16 - 6) (16 - 6)) = 7 / 10
    assert matthews([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(0.7)


@pytest.mark.parametrize("predictions, expected", [
    (Y, 1.0),  # perfect
    ([1 - y for y in Y], -1.0),  # every answer inverted
    ([1] * 5, 0.0),  # a constant prediction says nothing: the denominator is 0
    ([0] * 5, 0.0),
])
def test_matthews_extremes(predictions, expected):
    assert matthews(predictions, Y) == pytest.approx(expected)


def test_matthews_constant_labels_is_zero():
    assert matthews([0, 1, 0], [1, 1, 1]) == 0.0


def test_pearson_by_hand():
    # deviations (-1, 0, 1) and (-7/3, -1/3, 8/3): 5 / sqrt(2 * 114/9) = 15 / sqrt(228)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(15 / np.sqrt(228))
    assert pearson([1, 2, 3], [6, 4, 2]) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pearson_matches_numpy_corrcoef(seed):
    rng = np.random.default_rng(seed)
    labels = rng.uniform(0, 5, size=200)
    predictions = labels + rng.normal(0, 2, size=200)
    expected = np.corrcoef(predictions, labels)[0, 1]
    assert pearson(predictions, labels) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("constant", [[3.0] * 4, [0.1] * 10])
def test_pearson_of_a_constant_is_zero(constant):
    # ten 0.1s have a mean that is not exactly 0.1; the rounding must not read as correlation
    other = np.arange(len(constant), dtype=np.float64)
    assert pearson(constant, other) == 0.0
    assert pearson(other, constant) == 0.0


def test_pearson_refuses_nan():
    with pytest.raises(ValueError, match="NaN"):
        pearson([1.0, np.nan, 2.0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("metric", tasks.METRICS)
def test_score_dispatches_and_returns_a_python_float(metric):
    value = score(metric, np.array(P), np.array(Y))
    assert type(value) is float
    assert value == SCORES[metric](P, Y)


def test_every_task_metric_has_a_score():
    assert set(SCORES) == set(tasks.METRICS)


@pytest.mark.parametrize("metric, predictions, labels, message", [
    ("recall", P, Y, "unknown metric 'recall'"),
    ("accuracy", [1, 0], [1, 0, 1], "2 predictions for 3 labels"),
    ("f1", [], [], "no predictions"),
    ("pearson", [[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
])
def test_score_refuses_bad_input(metric, predictions, labels, message):
    with pytest.raises(ValueError, match=message):
        score(metric, predictions, labels)


def test_average_ranks_share_ties():
    assert average_ranks([5, 9, 7, 7]).tolist() == [1.0, 4.0, 2.5, 2.5]
    assert average_ranks([3.0, 3.0, 3.0]).tolist() == [2.0, 2.0, 2.0]
    assert average_ranks([0.2, -1.0, 0.2, 0.2, 5.0]).tolist() == [3.0, 1.0, 3.0, 3.0, 5.0]


def test_spearman_by_hand_with_ties():
    # ranks of p: 1, 2.5, 2.5, 4; of y: 1, 3, 2, 4. Deviations from 2.5: (-1.5, 0, 0, 1.5) and
    # (-1.5, 0.5, -0.5, 1.5): r = 4.5 / sqrt(4.5 x 5) = sqrt(0.9)
    assert spearman([1.0, 2.0, 2.0, 3.0], [10, 30, 20, 40]) == pytest.approx(np.sqrt(0.9))
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)  # monotone, not linear
    assert pearson([1, 2, 3, 4], [1, 8, 27, 64]) < 0.99
    assert spearman([4, 3, 2, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(-1.0)
    assert spearman([2.5, 2.5, 2.5], [1, 2, 3]) == 0.0  # a constant input: no ranking
    with pytest.raises(ValueError, match="finite"):
        spearman([1.0, np.nan, 2.0], [1.0, 2.0, 3.0])


def test_glue_reports_accuracy_beside_f1_and_spearman_beside_pearson():
    # P against Y: TP 2, FP 1, FN 1 -> F1 = 4 / 6; 3 of 5 right -> accuracy 0.6
    assert all_scores("f1", P, Y) == pytest.approx({"f1": 2 / 3, "accuracy": 0.6})
    assert list(all_scores("f1", P, Y)) == ["f1", "accuracy"]  # the task's own first
    both = all_scores("pearson", [1.0, 2.0, 2.0, 3.0], [10, 30, 20, 40])
    assert list(both) == ["pearson", "spearman"]
    assert both["spearman"] == pytest.approx(np.sqrt(0.9))
    assert both["pearson"] == pytest.approx(pearson([1.0, 2.0, 2.0, 3.0], [10, 30, 20, 40]))
    assert all_scores("matthews", P, Y) == {"matthews": matthews(P, Y)}
    assert all_scores("accuracy", P, Y) == {"accuracy": 0.6}
