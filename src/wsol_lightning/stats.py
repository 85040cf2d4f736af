"""Numbers with their spread: mean, standard deviation, paired differences with a t interval.

Used by ``wsol compare`` (runs of one config over seeds) and ``wsol benchmark`` (every method
against CAM over the same seeds). Intervals are two-sided 95% Student-t intervals of the mean
(``mean +- t_{0.975, n-1} * sd / sqrt(n)``); with fewer than two values there is no interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation, count and the 95% t interval of the mean."""

    mean: float
    std: float
    n: int
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely above or below 0 (a difference is then called significant)."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    def sign(self) -> str:
        """``better`` / ``worse`` when the interval excludes 0, else ``no difference``."""
        if not self.excludes_zero:
            return "no difference"
        return "better" if self.mean > 0 else "worse"


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """:class:`Summary` of ``values`` (NaN-free); one value gives ``std`` 0 and an infinite interval."""
    n = len(values)
    if n == 0:
        raise ValueError("summarize needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(mean, 0.0, 1, -math.inf, math.inf)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(mean, std, n, mean - half, mean + half)


def paired_difference(values: dict[int, float], reference: dict[int, float]) -> Summary | None:
    """:class:`Summary` of ``values[s] - reference[s]`` over the seeds ``s`` both have (``None``: none)."""
    seeds = sorted(set(values) & set(reference))
    if not seeds:
        return None
    return summarize([values[s] - reference[s] for s in seeds])
