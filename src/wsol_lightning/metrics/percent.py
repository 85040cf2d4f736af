"""The common base of the metrics reported in percent."""

from __future__ import annotations

from torchmetrics import Metric


class PercentMetric(Metric):
    """A non-differentiable metric in percent (0-100, higher is better) whose state is summed, never gathered."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 100.0
