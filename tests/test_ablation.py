"""``wsol_lightning.ablation``: one seeded fit + validate + test per configuration, and its table."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from wsol_lightning.ablation import (
    ABLATION_COLUMNS,
    AblationRun,
    ablation_figure,
    ablation_rows,
    fit_and_test,
)
from wsol_lightning.compare import markdown_table
from wsol_lightning.data import Synthetic, WSOLDataModule
from wsol_lightning.models import CAM


class CountingCAM(CAM):
    """CAM that counts its training steps."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps_taken = 0

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self.steps_taken += 1
        return super().training_step(batch, batch_idx)


def test_fit_and_test_trains_the_asked_steps_then_picks_the_threshold_on_val() -> None:
    data = WSOLDataModule(Synthetic(image_size=32, train_size=4, val_size=4, test_size=4), batch_size=2,
                          num_workers=0, resize_size=36, crop_size=32)
    drawn: list[float] = []

    def build() -> CountingCAM:
        drawn.append(float(torch.rand(())))
        return CountingCAM(num_classes=8, backbone="resnet18", optimizer="adam", lr=1e-3)

    run = fit_and_test(build, data, train_steps=3, seed=7, accelerator="cpu")
    torch.manual_seed(7)
    assert drawn == [float(torch.rand(()))]  # the model is built after seeding
    assert run.model.steps_taken == 3  # 2 batches per epoch: the train split repeats
    assert not run.model.training and run.fit_seconds > 0
    threshold = float(run.model.cam_threshold)
    assert 0.0 <= threshold < 1.0  # chosen on validation (NaN before any validation)
    evaluator = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                           accelerator="cpu")
    (val,) = evaluator.validate(run.model, datamodule=data, verbose=False)
    assert float(run.model.cam_threshold) == threshold  # the trained weights' validation optimum
    (test,) = evaluator.test(run.model, datamodule=data, verbose=False)
    assert run.metrics == pytest.approx({k: float(v) for k, v in test.items()})
    assert set(ABLATION_COLUMNS) <= set(run.metrics) and not any(k.startswith("val/") for k in run.metrics)


def test_fit_and_test_rejects_zero_steps() -> None:
    with pytest.raises(ValueError, match="train_steps must be >= 1, got 0"):
        fit_and_test(lambda: CAM(), WSOLDataModule(num_workers=0), train_steps=0)


def _run(metrics: dict[str, float]) -> AblationRun:
    return AblationRun(model=None, metrics=metrics, fit_seconds=1.0)  # type: ignore[arg-type]


def test_rows_scale_to_percent_and_mark_missing_metrics() -> None:
    columns = {"test/maxboxacc_v2": ("MaxBoxAccV2", 1.0), "test/cls_top1": ("cls top-1", 100.0)}
    runs = {"a": _run({"test/maxboxacc_v2": 40.0, "test/cls_top1": 0.25}), "b": _run({"test/cls_top1": 0.5})}
    rows = ablation_rows(runs, columns, label="delta")
    assert rows[0] == {"delta": "a", "MaxBoxAccV2": 40.0, "cls top-1": 25.0}
    assert rows[1]["delta"] == "b" and math.isnan(rows[1]["MaxBoxAccV2"]) and rows[1]["cls top-1"] == 50.0
    assert markdown_table(rows).splitlines()[3] == "| b | - | 50.00 |"


def test_figure_has_one_bar_per_setting_and_metric_with_its_value() -> None:
    runs = {"on": _run({"test/maxboxacc_v2": 40.0, "test/cls_top1": 0.25}),
            "off": _run({"test/maxboxacc_v2": 30.0, "test/cls_top1": 0.75})}
    columns = {"test/maxboxacc_v2": ("MaxBoxAccV2", 1.0), "test/cls_top1": ("cls top-1", 100.0)}
    figure = ablation_figure(ablation_rows(runs, columns), title="RAM")
    axes = figure.axes[0]
    heights = [patch.get_height() for patch in axes.patches]
    np.testing.assert_allclose(heights, [40.0, 25.0, 30.0, 75.0])  # setting by setting, metric by metric
    assert axes.get_title() == "RAM"
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["on", "off"]
