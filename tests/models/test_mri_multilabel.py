"""Multi-label MRI (head + tumour): data switch, shared loss, evaluation rules, errors, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import TINY_DATA, make_batch, tiny_cli_args

from wsol_lightning.cli import run_cli
from wsol_lightning.data import SyntheticMRI, WSOLDataModule, collate
from wsol_lightning.metrics import PxAP
from wsol_lightning.models import CAM, MCIS, ACoL, CutMix, HaS

MRI_DATA = "experiments/data/synthetic_mri.yaml"


def tiny_mri(multilabel: bool) -> WSOLDataModule:
    dataset = SyntheticMRI(image_size=32, train_size=8, val_size=8, test_size=8, multilabel=multilabel)
    return WSOLDataModule(dataset, resize_size=36, crop_size=32, batch_size=4, num_workers=0)


def test_multilabel_samples_are_head_plus_tumour_and_labels_are_kept() -> None:
    single, multi = tiny_mri(False), tiny_mri(True)
    assert multi.multilabel and not single.multilabel
    assert multi.class_names() == ["head", "tumour"] and single.class_names() == ["no_tumour", "tumour"]
    assert multi.num_classes == 2
    labels = [single.get_dataset("val")[i]["label"] for i in range(8)]
    assert set(labels) == {0, 1}
    batch = collate([multi.get_dataset("val")[i] for i in range(8)])
    assert batch.label.tolist() == labels
    expected = [[1.0, float(label)] for label in labels]
    assert batch.multi_hot.dtype == torch.float32 and batch.multi_hot.tolist() == expected
    assert collate([single.get_dataset("val")[0]]).multi_hot is None
    assert multi.train_labels().tolist() == [single.get_dataset("train")[i]["label"] for i in range(8)]


@pytest.mark.parametrize("method", [ACoL, CutMix])
def test_methods_without_multilabel_losses_refuse_it(method: type) -> None:
    with pytest.raises(ValueError, match=f"not supported by {method.__name__}"):
        method(num_classes=2, multilabel=True)


def test_multilabel_loss_is_the_soft_margin_by_hand() -> None:
    model = CAM(num_classes=2, multilabel=True)
    batch = make_batch(torch.zeros(2, 3, 8, 8), torch.tensor([1, 0]), multi_hot=torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])

    def softplus(x: float) -> float:  # -log sigmoid(-x)
        return math.log1p(math.exp(x))

    # mean over classes of -[y log s(z) + (1 - y) log(1 - s(z))], then over rows
    row0 = (softplus(-2.0) + softplus(1.0)) / 2
    row1 = (softplus(-0.0) + softplus(3.0)) / 2
    losses = model.classification_loss(logits, batch)
    assert list(losses) == ["mlsm"] and losses["mlsm"].item() == pytest.approx((row0 + row1) / 2)
    single = CAM(num_classes=2).classification_loss(logits, batch)
    # CE of [2, -1] at class 1 and of [0, 3] at class 0: both log(1 + e^3)
    assert list(single) == ["ce"] and single["ce"].item() == pytest.approx(softplus(3.0))


def test_has_and_mcis_train_on_the_multi_hot_targets() -> None:
    batch = collate([tiny_mri(True).get_dataset("train")[i] for i in range(4)])
    has = HaS(num_classes=2, multilabel=True, grid_size=0)
    assert list(has.training_losses(batch)) == ["mlsm"]
    mcis = MCIS(num_classes=2, multilabel=True, num_extra_convs=1, head_width=8, self_pair_scales=())
    assert torch.equal(mcis.class_targets(batch), batch.multi_hot)
    assert torch.isfinite(torch.stack(list(mcis.training_losses(batch).values()))).all()


def test_targets_and_model_must_agree() -> None:
    multi_batch = collate([tiny_mri(True).get_dataset("train")[i] for i in range(2)])
    single_batch = collate([tiny_mri(False).get_dataset("train")[i] for i in range(2)])
    with pytest.raises(ValueError, match="MRI dataset's multilabel: true"):
        CAM(num_classes=2, multilabel=True).training_step(single_batch, 0)
    with pytest.raises(ValueError, match="multilabel: false"):
        CAM(num_classes=2).training_step(multi_batch, 0)


def test_tumour_class_maps_read_the_tumour_class_on_every_slice() -> None:
    torch.manual_seed(0)
    model = CAM(num_classes=2).eval()
    batch = collate([tiny_mri(False).get_dataset("val")[i] for i in range(8)])
    with torch.no_grad():
        out = model.model.localize(batch.image, batch.label)
        tumour_maps = model.model.localize(batch.image, torch.ones_like(batch.label)).maps
    got = torch.from_numpy(model.maps_of_class(batch, out, 1)).float()
    torch.testing.assert_close(got, tumour_maps)
    assert not torch.allclose(out.maps, got)  # the tumour-free slices changed


def test_cli_multilabel_fit_and_test_log_the_skull_share(tmp_path: Path) -> None:
    small = ["--data.dataset.image_size", "32", "--data.resize_size", "36", "--data.crop_size", "32"]
    extra = ["--config", MRI_DATA, *TINY_DATA, *small, "--data.dataset.multilabel", "true"]
    cli = run_cli(["fit", *tiny_cli_args("experiments/cam.yaml", str(tmp_path), *extra)])
    assert cli.model.hparams.multilabel and cli.datamodule.multilabel
    ckpt = next(tmp_path.rglob("*.ckpt"))
    cli = run_cli(["test", *tiny_cli_args("experiments/cam.yaml", str(tmp_path), *extra), "--ckpt_path", str(ckpt)])
    metrics = cli.trainer.callback_metrics
    keys = ("cls_exact_match", "skull_cam_share", "skull_cam_share_no_tumour", "maxboxacc_v2", "pxap_with_object")
    for key in keys:
        assert f"test/{key}" in metrics, key
    assert "test/cls_top1" not in metrics
    assert 0.0 <= float(metrics["test/skull_cam_share"]) <= 100.0


def test_single_label_mri_logs_top1_skull_share_and_the_tumour_slices_pxap() -> None:
    trainer = pl.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu",
    )
    torch.manual_seed(0)
    model, data = CAM(num_classes=2), tiny_mri(False)
    (metrics,) = trainer.validate(model, datamodule=data, verbose=False)
    assert {"val/cls_top1", "val/skull_cam_share", "val/skull_cam_share_no_tumour"} <= set(metrics)
    assert "val/cls_exact_match" not in metrics
    # pxap_with_object: PxAP over the tumour slices only (their GT-class = tumour maps)
    batch = collate([data.get_dataset("val")[i] for i in range(8)])
    _, maps = model.eval().evaluation_maps(batch)
    tumour = batch.num_boxes > 0
    expected = PxAP(model.hparams.cam_curve_interval)
    expected.update(torch.from_numpy(maps)[tumour], batch.mask[tumour])
    assert metrics["val/pxap_with_object"] == pytest.approx(float(expected.compute()), abs=1e-4)
    assert metrics["val/pxap_with_object"] != pytest.approx(metrics["val/pxap"], abs=1e-3)
