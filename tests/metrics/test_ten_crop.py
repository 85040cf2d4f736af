"""``data.ten_crop``: torchvision's ten crops and the papers' ten-crop classification (SPA, DANet, I2C)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torchvision import transforms

from wsol_lightning.data import Synthetic, SyntheticMRI, WSOLDataModule
from wsol_lightning.data.transforms import ten_crop_views
from wsol_lightning.errors import ConfigError
from wsol_lightning.metrics import UnionBoxLoc
from wsol_lightning.metrics.evaluator import ClassificationAccuracy, EvaluationStep
from wsol_lightning.models import CAM
from wsol_lightning.models.base import crop_averaged_scores

PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def test_views_equal_torchvision_ten_crop_of_the_square_resize() -> None:
    with Image.open(PHOTO) as photo:
        image = photo.convert("RGB")
    expected = torch.stack([transforms.ToTensor()(c) for c in transforms.TenCrop(48)(transforms.Resize((61, 61))(image))])
    views = ten_crop_views(np.asarray(image), 61, 48, "pil")
    assert views.shape == (10, 3, 48, 48)
    assert torch.equal(views, expected)  # odd margin 13: the centre starts at round(6.5) = 6, as torchvision


def _step(logits: list[list[float]], scores: list[list[float]] | None) -> EvaluationStep:
    cam = np.zeros((1, 8, 8))
    cam[0, 2:6, 2:6] = 1.0
    return EvaluationStep(
        labels=torch.tensor([0]), logits=torch.tensor(logits), raw_maps=cam, image_size=(8, 8),
        boxes=[np.array([[2, 2, 5, 5]])], ten_crop_scores=None if scores is None else torch.tensor(scores),
    )


def test_ten_crop_metrics_classify_with_the_crop_scores_not_the_logits() -> None:
    # the single image says class 1, the ten crops say class 0 (the label); the box is exact
    step = _step([[0.0, 2.0, 1.0]], [[0.5, 0.3, 0.2]])
    single, crops = UnionBoxLoc(0.5), UnionBoxLoc(0.5, ten_crop=True)
    single.update_from_step(step)
    crops.update_from_step(step)
    assert {k: float(v) for k, v in single.compute().items()} == {
        "top1_loc_union": 0.0, "top5_loc_union": 100.0, "gt_known_loc_union": 100.0}
    assert {k: float(v) for k, v in crops.compute().items()} == {
        "top1_loc_union_ten_crop": 100.0, "top5_loc_union_ten_crop": 100.0}
    accuracy = ClassificationAccuracy(3, ten_crop=True)
    accuracy.update_from_step(step)
    assert {k: float(v) for k, v in accuracy.compute().items()} == {"cls_top1_ten_crop": 1.0, "cls_top3_ten_crop": 1.0}
    assert crops.requires == {"boxes", "ten_crop"} and accuracy.requires == {"ten_crop"}
    with pytest.raises(ValueError, match="ten_crop"):
        UnionBoxLoc(0.5, ten_crop=True).update_from_step(_step([[0.0, 2.0, 1.0]], None))


def _data(**kwargs) -> WSOLDataModule:
    return WSOLDataModule(Synthetic(image_size=32, train_size=8, val_size=8, test_size=8), resize_size=36,
                          crop_size=32, batch_size=4, num_workers=0, **kwargs)


def test_evaluation_batches_carry_ten_crops_and_training_batches_do_not() -> None:
    data = _data(ten_crop=True)
    data.setup("fit")
    assert "ten_crop" in data.provided_fields and "ten_crop" not in _data().provided_fields
    batch = next(iter(data.val_dataloader()))
    assert batch.ten_crop_images.shape == (4, 10, 3, 32, 32)
    raw = data.get_dataset("val").load(0).image
    assert torch.equal(batch.ten_crop_images[0], ten_crop_views(raw, 36, 32))
    assert next(iter(data.train_dataloader())).ten_crop_images is None
    with pytest.raises(ConfigError, match="data.ten_crop"):
        WSOLDataModule(SyntheticMRI(multilabel=True), ten_crop=True)


def test_module_logs_ten_crop_scores_averaged_over_the_crops() -> None:
    data = _data(ten_crop=True)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    torch.manual_seed(0)
    model = CAM(num_classes=data.num_classes, union_box_threshold=0.3)
    (metrics,) = trainer.test(model, datamodule=data, verbose=False)
    for name in ("cls_top1_ten_crop", "top1_loc_union_ten_crop", "top5_loc_union_ten_crop", "top1_loc_union"):
        assert f"test/{name}" in metrics, name
    batch = next(iter(data.test_dataloader()))
    crops = batch.ten_crop_images.flatten(0, 1)
    model.eval()  # as in evaluation: BatchNorm's running statistics, so the crops' chunking does not matter
    with torch.no_grad():
        scores = crop_averaged_scores(torch.cat([o.logits for o in model.ten_crop_outputs(batch)]), 4)
        expected = model.model.localize(crops).logits.softmax(1).view(4, 10, -1).mean(1)
        assert torch.allclose(scores, expected, atol=1e-6)
        # mean of the softmax, not the softmax of the mean logits
        assert not torch.allclose(scores, model.model.localize(crops).logits.view(4, 10, -1).mean(1).softmax(1),
                                  atol=1e-6)
