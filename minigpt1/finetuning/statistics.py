"""How far to trust a score measured over a few seeds: mean, spread, interval, and whether two
settings differ by more than their noise.

With n scores x_1..x_n of one setting (one per seed):

    mean   m  = (x_1 + ... + x_n) / n
    sd     s  = sqrt(sum (x_i - m)^2 / (n - 1))             the sample standard deviation
    95%    m +- t(0.975, n - 1) s / sqrt(n)                  Student's t interval for the mean

t(p, df) is the p-quantile of Student's t distribution with df degrees of freedom: 12.71 for
two seeds, 4.30 for three, 2.78 for five, 1.96 as n grows. Few seeds make wide intervals; that
is the price of knowing little, not a flaw of the formula.

Two settings a and b differ "resolvably" when the difference of their means is more than two
standard errors of that difference:

    |m_a - m_b| > 2 sqrt(s_a^2 / n_a + s_b^2 / n_b)

(about a 95% test when the seeds are many; with three seeds each it is a rough, lenient rule).
A single seed has no spread: nothing is resolved then, whatever the means say.
"""

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # the intervals' coverage
RESOLVED_SE = 2.0  # a difference is resolved beyond this many standard errors


def t_density(x, df):
    """Student's t density: Gamma((df+1)/2) / (sqrt(df pi) Gamma(df/2)) (1 + x^2/df)^-(df+1)/2."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return np.exp(log_norm - (df + 1) / 2 * np.log1p(np.square(x) / df))


def t_cdf(x, df, intervals=2000):
    """P(T <= x) for x >= 0: one half (the density is symmetric) plus the area from 0 to x,
    by Simpson's rule (the density is smooth: 2,000 intervals leave an error below 1e-10)."""
    grid = np.linspace(0.0, x, intervals + 1)  # (intervals + 1,)
    weights = np.ones(intervals + 1)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0  # Simpson: 1 4 2 4 ... 2 4 1
    return 0.5 + float(weights @ t_density(grid, df)) * (x / intervals) / 3


def t_quantile(p, df):
    """The x with P(T <= x) = p, for 0.5 <= p < 1 and df >= 1: found by bisection on t_cdf."""
    if not (0.5 <= p < 1 and df >= 1):
        raise ValueError(f"t_quantile needs 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:  # the t distribution's tails are heavy: 12.7 for df = 1
        low, high = high, 2 * high
    for _ in range(60):  # each halves the bracket: 60 reach the float's last digit
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class Summary:
    """The scores of one setting over its seeds."""

    n: int  # seeds
    mean: float
    sd: float  # sample standard deviation; nan for a single seed
    half_width: float  # of the 95% interval: mean +- half_width; nan for a single seed

    @property
    def low(self):
        return self.mean - self.half_width

    @property
    def high(self):
        return self.mean + self.half_width

    def to_json(self):
        """A dict for a JSON file: nan (one seed) becomes null."""
        values = {"n": self.n, "mean": self.mean, "sd": self.sd, "low": self.low,
                  "high": self.high, "half_width": self.half_width}
        return {k: None if isinstance(v, float) and math.isnan(v) else v
                for k, v in values.items()}


def summarize(values, level=LEVEL):
    """Summary of the scores `values` (one per seed): mean, sd and the t interval."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"summarize needs at least one finite score, got {values!r}")
    n, mean = len(x), float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    half_width = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Summary(n, mean, sd, half_width)


@dataclass(frozen=True)
class Difference:
    """m_a - m_b, its standard error, and whether it is resolved (see the module's rule)."""

    value: float
    se: float  # nan when either side has a single seed
    resolved: bool


def compare(a, b):
    """The Difference of two Summaries a - b."""
    value = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Difference(value, math.nan, False)
    se = math.sqrt(a.sd**2 / a.n + b.sd**2 / b.n)
    return Difference(value, se, abs(value) > RESOLVED_SE * se)


def verdict(difference, scale=100.0):
    """The difference in words, in points (scores times `scale`), e.g.
    "+12.3 (2 SE = 4.1): resolved" or "+1.1 (2 SE = 2.6): not resolved"."""
    value = f"{scale * difference.value:+.1f}"
    if math.isnan(difference.se):
        return f"{value}: not resolved (one seed has no spread; run more seeds)"
    noise = f"2 SE = {RESOLVED_SE * scale * difference.se:.1f}"
    if difference.se == 0 and difference.value == 0:
        return f"{value} ({noise}): no difference"
    return f"{value} ({noise}): {'resolved' if difference.resolved else 'not resolved'}"


def binomial_se(accuracy, n):
    """The standard error sqrt(p (1 - p) / n) of an accuracy p measured on n test examples:
    the noise of the test set itself, which seeds do not vary (the test set stays)."""
    return math.sqrt(accuracy * (1 - accuracy) / n)
