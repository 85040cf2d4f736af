"""The synthetic MRI-like set behind ``dataset: synthetic_mri`` (no files needed)."""

from __future__ import annotations

from wsol_lightning.data.datasets.base import RawSample, WSOLDataset
from wsol_lightning.data.synthetic_mri import SyntheticMRI


class SyntheticMRIDataset(WSOLDataset):
    """:class:`~wsol_lightning.data.synthetic_mri.SyntheticMRI` slices in the batch format.

    Samples carry ``mask`` (the tumour, all-zero on tumour-free slices) for PxAP and
    ``skull_mask`` (the bright skull ring) for skull-leak diagnostics; both go through the same
    geometric transform as the image and reach collated batches; :meth:`skull_mask` reads the
    ring in the original frame.
    """

    def __init__(self, generator: SyntheticMRI, resize_size: int, crop_size: int) -> None:
        super().__init__(generator.split, resize_size, crop_size)
        self.generator = generator
        self.num_classes = generator.num_classes

    def __len__(self) -> int:
        return len(self.generator)

    def class_names(self) -> list[str]:
        return self.generator.class_names()

    def skull_mask(self, index: int):
        """``[H, W]`` uint8 skull ring of slice ``index`` in the generated (original) frame."""
        return self.generator[index].skull_mask

    def load(self, index: int) -> RawSample:
        s = self.generator[index]
        return RawSample(
            image=s.image,
            label=s.label,
            boxes=s.boxes,
            image_id=f"synthetic_mri/{self.split}/{index:06d}",
            masks={"mask": s.mask, "skull_mask": s.skull_mask},
        )
