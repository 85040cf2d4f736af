"""PNG plots shared by the scripts, ``wsol compare`` and the notebooks.

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state, any backend): a
notebook shows one by ending a cell with it, scripts write it with :func:`save_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def box_accuracy_curve_figure(
    thresholds: Sequence[float], box_acc: np.ndarray, iou_thresholds: Sequence[int], title: str = ""
) -> Figure:
    """BoxAcc (percent) vs CAM threshold, one line per IoU threshold, its maximum marked.

    Args:
        thresholds: CAM thresholds ``[K]``.
        box_acc: BoxAcc ``[len(iou_thresholds), K]`` in percent (``MaxBoxAccV2.box_accuracy_curve``).
        iou_thresholds: IoU thresholds in percent, one per row of ``box_acc``.
        title: figure title.
    """
    figure = Figure(figsize=(5, 3.5))
    axes = figure.subplots()
    box_acc = np.asarray(box_acc, dtype=float).reshape(len(iou_thresholds), -1)
    for iou, row in zip(iou_thresholds, box_acc):
        best = int(np.argmax(row))
        (line,) = axes.plot(thresholds, row, label=f"IoU {iou}%: max {row[best]:.1f}")
        axes.plot(thresholds[best], row[best], "o", color=line.get_color())
    axes.set(xlabel="CAM threshold", ylabel="BoxAcc (%)", ylim=(0, 100), title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def comparison_figure(run_labels: Sequence[str], metric_names: Sequence[str], values: np.ndarray) -> Figure:
    """Grouped bars: one group per metric, one bar per run (``values [runs, metrics]``, NaN: missing)."""
    values = np.asarray(values, dtype=float)
    width = 0.8 / max(len(run_labels), 1)
    positions = np.arange(len(metric_names))
    figure = Figure(figsize=(max(5.0, 1.2 * len(metric_names) * max(1, len(run_labels)) ** 0.5), 4))
    axes = figure.subplots()
    for i, label in enumerate(run_labels):
        bars = axes.bar(positions + (i - (len(run_labels) - 1) / 2) * width, np.nan_to_num(values[i]), width,
                        label=label)
        axes.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.1f}" for v in values[i]], fontsize=7)
    axes.set_xticks(positions, metric_names, rotation=20, ha="right")
    axes.set(ylabel="%", title="Method comparison")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
