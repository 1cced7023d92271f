"""Intervals and tests for results over seeds: is a difference more than noise?

- The 95% confidence interval of a group's mean is Student's t interval,
  mean ± t(0.975, n - 1) · s / sqrt(n).
- A row's difference from a baseline is Welch's unequal-variances t-test
  of the two groups' means: the difference, its 95% interval with
  Welch-Satterthwaite degrees of freedom, and the two-sided p-value.
  A difference whose interval contains 0 is within noise.

The t distribution comes from `scipy.special` (lighter to import than
`scipy.stats`, with the same functions underneath).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class MeanInterval:
    mean: float
    low: float | None  # None below two values: no interval can be had
    high: float | None
    count: int


@dataclass(frozen=True)
class Difference:
    """`row - baseline` in means, with Welch's interval and p-value (None where undefined)."""

    difference: float
    low: float | None
    high: float | None
    p_value: float | None
    degrees_of_freedom: float | None

    @property
    def within_noise(self) -> bool | None:
        """Whether the interval contains 0; None when there is no interval."""
        if self.low is None or self.high is None:
            return None
        return self.low <= 0 <= self.high

    def verdict(self) -> str:
        if self.within_noise is None:
            return "needs 2+ seeds each"
        if self.within_noise:
            return "within noise"
        return "higher" if self.difference > 0 else "lower"


def t_quantile(probability: float, degrees_of_freedom: float) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(degrees_of_freedom, probability))


def t_two_sided_p(t: float, degrees_of_freedom: float) -> float:
    from scipy.special import stdtr

    return float(2 * stdtr(degrees_of_freedom, -abs(t)))


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> MeanInterval:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return MeanInterval(mean, None, None, len(values))
    half = t_quantile(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values)
    half /= math.sqrt(len(values))
    return MeanInterval(mean, mean - half, mean + half, len(values))


def welch_difference(
    values: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE
) -> Difference:
    difference = statistics.fmean(values) - statistics.fmean(baseline)
    if len(values) < 2 or len(baseline) < 2:
        return Difference(difference, None, None, None, None)
    share = statistics.variance(values) / len(values)
    baseline_share = statistics.variance(baseline) / len(baseline)
    standard_error = math.sqrt(share + baseline_share)
    if standard_error == 0:  # every seed gave the same number: no spread to test against
        return Difference(difference, difference, difference, None, None)
    degrees = (share + baseline_share) ** 2 / (
        share**2 / (len(values) - 1) + baseline_share**2 / (len(baseline) - 1)
    )
    half = t_quantile(0.5 + confidence / 2, degrees) * standard_error
    p_value = t_two_sided_p(difference / standard_error, degrees)
    return Difference(difference, difference - half, difference + half, p_value, degrees)
