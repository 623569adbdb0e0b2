"""Scores over seeds: Student's t quantiles, mean / sd / interval on known inputs, the rule that
says whether two settings differ by more than their noise, and its wording."""

import math

import numpy as np
import pytest

from minigpt1.finetuning.statistics import (
    Difference,
    Summary,
    binomial_se,
    compare,
    summarize,
    t_quantile,
    verdict,
)
from minigpt1.jobs.ablation import summaries


# two-sided 95% quantiles t(0.975, df) from any printed table of Student's t
@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776),
                                          (5, 2.571), (9, 2.262), (30, 2.042), (120, 1.980)])
def test_t_quantiles_match_the_printed_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)


def test_t_quantiles_of_other_levels_and_their_limits():
    assert t_quantile(0.95, 1) == pytest.approx(6.314, abs=5e-4)  # a one-sided 95% bound
    assert t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-12)  # the median
    assert t_quantile(0.975, 100_000) == pytest.approx(1.95996, abs=1e-4)  # the normal's
    with pytest.raises(ValueError, match="0.5 <= p < 1 and df >= 1"):
        t_quantile(0.975, 0)


def test_three_seeds_by_hand():
    # mean 0.63; deviations -0.03, -0.01, +0.04: sd = sqrt(0.0026 / 2) = 0.036056;
    # half width = t(0.975, 2) sd / sqrt(3) = 4.3027 * 0.036056 / 1.7321 = 0.089566
    s = summarize([0.60, 0.62, 0.67])
    assert s.n == 3
    assert s.mean == pytest.approx(0.63, abs=1e-12)
    assert s.sd == pytest.approx(0.036056, abs=1e-6)
    assert s.half_width == pytest.approx(0.089566, abs=1e-6)
    assert (s.low, s.high) == pytest.approx((0.63 - 0.089566, 0.63 + 0.089566), abs=1e-6)
    assert s.to_json() == pytest.approx({"n": 3, "mean": 0.63, "sd": s.sd, "low": s.low,
                                         "high": s.high, "half_width": s.half_width})


def test_two_seeds_have_a_wide_interval_and_one_seed_none():
    two = summarize([0.5, 0.6])  # sd = 0.0707; 12.706 * 0.0707 / sqrt(2) = 0.6353
    assert two.half_width == pytest.approx(0.63531, abs=1e-5)
    one = summarize([0.7])
    assert (one.n, one.mean) == (1, 0.7) and math.isnan(one.sd) and math.isnan(one.half_width)
    assert one.to_json()["sd"] is None and one.to_json()["half_width"] is None


@pytest.mark.parametrize("bad", [[], [0.5, float("nan")], [[0.5, 0.6]]])
def test_summarize_refuses_what_is_not_a_list_of_scores(bad):
    with pytest.raises(ValueError, match="at least one finite score"):
        summarize(bad)


def test_the_average_column_summarizes_each_seeds_average():
    scores = {"full": {"genre": {0: 0.6, 1: 0.7}, "next-line": {0: 0.4, 1: 0.2}}}
    found = summaries(scores)["full"]
    assert found["genre"].mean == pytest.approx(0.65)
    # the seeds' averages are 0.5 and 0.45: their mean and spread, not the tasks' spread
    assert found["average"].mean == pytest.approx(0.475)
    assert found["average"].sd == pytest.approx(np.std([0.5, 0.45], ddof=1))


def test_a_difference_beyond_two_standard_errors_is_resolved():
    a = Summary(3, mean=0.66, sd=0.01, half_width=math.nan)
    b = Summary(3, mean=0.33, sd=0.02, half_width=math.nan)
    d = compare(a, b)
    # se = sqrt(0.01^2/3 + 0.02^2/3) = 0.012910; 0.33 > 2 x 0.012910
    assert d.value == pytest.approx(0.33) and d.se == pytest.approx(0.012910, abs=1e-6)
    assert d.resolved
    assert verdict(d) == "+33.0 (2 SE = 2.6): resolved"


def test_a_difference_within_two_standard_errors_is_not_resolved():
    a = Summary(3, mean=0.505, sd=0.02, half_width=math.nan)
    b = Summary(3, mean=0.516, sd=0.015, half_width=math.nan)
    d = compare(a, b)  # se = sqrt(0.0004/3 + 0.000225/3) = 0.014434; |-0.011| < 0.028868
    assert not d.resolved
    assert verdict(d) == "-1.1 (2 SE = 2.9): not resolved"


def test_one_seed_resolves_nothing_and_says_why():
    d = compare(Summary(1, 0.9, math.nan, math.nan), Summary(3, 0.1, 0.01, 0.02))
    assert not d.resolved and math.isnan(d.se)
    assert verdict(d) == "+80.0: not resolved (one seed has no spread; run more seeds)"


def test_identical_runs_show_no_difference():
    same = Summary(3, 0.5, 0.0, 0.0)
    assert verdict(compare(same, same)) == "+0.0 (2 SE = 0.0): no difference"
    assert verdict(Difference(0.01, 0.0, True)) == "+1.0 (2 SE = 0.0): resolved"


def test_the_test_sets_own_noise():
    assert binomial_se(0.5, 800) == pytest.approx(0.0176777, abs=1e-7)  # 1.8 points
