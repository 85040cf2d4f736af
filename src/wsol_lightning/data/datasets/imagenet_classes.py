"""``ImageNetClasses``: the 1000 ImageNet classes and no images, for ``predict`` on a folder with an ImageNet head."""

from __future__ import annotations

from wsol_lightning.data.datasets.base import DatasetSpec, WSOLDataset
from wsol_lightning.errors import ConfigError


def imagenet_class_names() -> list[str]:
    """The ILSVRC-2012 class names in index order (torchvision's weights metadata: no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


class ImageNetClasses(DatasetSpec):
    """The 1000 ImageNet classes, no splits: ``predict`` on ``data.predict_dir`` with an ImageNet classifier.

    Used by ``experiments/imagenet_cam.yaml`` (CAM on the pretrained EfficientNet-Lite0 with its own
    ImageNet classifier): ``num_classes`` is 1000 and the predictions carry the class names.
    """

    name = "imagenet_classes"

    def __init__(self) -> None:
        pass

    def class_names(self) -> list[str]:
        return imagenet_class_names()

    def build(self, split: str, resize_size: int, crop_size: int, seed: int) -> WSOLDataset:
        raise ConfigError(
            f"data.dataset ImageNetClasses has no {split} split: it only names the ImageNet classes for "
            "predict on data.predict_dir; train and evaluate with data.dataset ILSVRC"
        )
