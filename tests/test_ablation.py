"""``wsol_lightning.ablation``: settings run by the benchmark's runner, re-evaluated in process, tabulated."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_DATA

from wsol_lightning.ablation import (
    AblationRun,
    ablation_figure,
    ablation_rows,
    evaluate,
    load_datamodule,
    train_and_test,
)
from wsol_lightning.benchmark import run
from wsol_lightning.compare import markdown_table

REPO = Path(__file__).resolve().parents[1]
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.logger", "false",
        "--trainer.callbacks", "[]", *TINY_DATA, "--data.dataset.image_size", "32", "--data.resize_size", "36",
        "--data.crop_size", "32"]


def test_an_ablation_row_is_the_benchmark_number_and_reevaluates_in_process(tmp_path: Path) -> None:
    config = REPO / "experiments" / "cam.yaml"
    (ablation,) = train_and_test(config, TINY, tmp_path / "ablation", seeds=[3])
    benchmark = run(config, 3, tmp_path / "benchmark", TINY)
    assert benchmark.status == "ok"
    del ablation.metrics["fit_minutes"], benchmark.metrics["fit_minutes"]
    assert ablation.metrics == benchmark.metrics  # same runner, same number
    assert ablation.checkpoint == tmp_path / "ablation" / "seed3" / "checkpoints" / "last.ckpt"
    model = ablation.load_model()
    assert not model.training and 0 <= float(model.cam_threshold) < 1  # chosen on val by the fit
    again = evaluate(model, load_datamodule(config, TINY), accelerator="cpu")
    keys = ("maxboxacc_v2", "gt_known_loc_at_val_threshold", "pxap", "cls_top1")
    assert {k: again[k] for k in keys} == pytest.approx({k: ablation.metrics[k] for k in keys}, abs=1e-4)
    assert evaluate(model, load_datamodule(config, TINY), accelerator="cpu") == again  # a second evaluation
    fit_log = tmp_path / "ablation" / "seed3" / "fit.log"
    fit_log.write_text("kept")
    (reused,) = train_and_test(config, TINY, tmp_path / "ablation", seeds=[3])
    assert reused.metrics == {**ablation.metrics, "fit_minutes": reused.metrics["fit_minutes"]}
    assert fit_log.read_text() == "kept"  # the finished seed was not trained again


def test_a_failed_setting_raises_with_its_reason(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"fit exited with status 2: .*model.init_args.lr"):
        train_and_test(REPO / "experiments" / "cam.yaml", [*TINY, "--model.init_args.lr", "fast"], tmp_path)


def _run(**metrics: float) -> AblationRun:
    return AblationRun(metrics=metrics, fit_seconds=1.0, checkpoint=Path("none"))


def test_rows_hold_mean_and_spread_over_seeds_and_mark_missing_metrics() -> None:
    columns = {"maxboxacc_v2": "MaxBoxAccV2", "cls_top1": "cls top-1"}
    settings = {"a": [_run(maxboxacc_v2=40.0, cls_top1=25.0), _run(maxboxacc_v2=44.0, cls_top1=35.0)],
                "b": [_run(cls_top1=50.0)]}
    rows = ablation_rows(settings, columns, label="delta")
    assert rows[0]["delta"] == "a" and rows[0]["n"] == 2
    assert rows[0]["MaxBoxAccV2"].mean == 42.0 and rows[0]["MaxBoxAccV2"].std == pytest.approx(math.sqrt(8))
    assert rows[1]["MaxBoxAccV2"] is None and rows[1]["cls top-1"].mean == 50.0
    assert markdown_table(rows).splitlines()[2:] == ["| a | 2 | 42.00 ± 2.83 | 30.00 ± 7.07 |", "| b | 1 | - | 50.00 |"]


def test_figure_has_one_bar_per_setting_and_metric_with_its_mean() -> None:
    settings = {"on": [_run(maxboxacc_v2=40.0, cls_top1=25.0), _run(maxboxacc_v2=50.0, cls_top1=35.0)],
                "off": [_run(maxboxacc_v2=30.0, cls_top1=75.0)]}
    figure = ablation_figure(ablation_rows(settings, {"maxboxacc_v2": "MaxBoxAccV2", "cls_top1": "cls top-1"}),
                             title="RAM")
    axes = figure.axes[0]
    heights = [patch.get_height() for patch in axes.patches]
    np.testing.assert_allclose(heights, [45.0, 30.0, 30.0, 75.0])  # setting by setting, metric by metric
    assert axes.get_title() == "RAM"
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["on", "off"]
