"""The built-in synthetic set behind ``dataset: synthetic`` (no files needed)."""

from __future__ import annotations

from wsol_lightning.data.datasets.base import RawSample, WSOLDataset
from wsol_lightning.data.synthetic import ATTRIBUTE_NAMES, SyntheticWSOL


class SyntheticDataset(WSOLDataset):
    """:class:`~wsol_lightning.data.synthetic.SyntheticWSOL` images in the batch format.

    Samples carry ``mask`` (the whole object) and ``part_mask`` (the discriminative part) so
    PxAP and the part-focus diagnostics run on it.

    Args:
        generator: the split's generator.
        resize_size: training resize side.
        crop_size: training crop and evaluation side.
        with_attributes: samples also carry the generator's per-image binary ``attributes``
            (:data:`~wsol_lightning.data.synthetic.ATTRIBUTE_NAMES`).
    """

    def __init__(
        self, generator: SyntheticWSOL, resize_size: int, crop_size: int, with_attributes: bool = False
    ) -> None:
        super().__init__(generator.split, resize_size, crop_size)
        self.generator = generator
        self.num_classes = generator.num_classes
        self.with_attributes = with_attributes
        self.num_attributes = len(ATTRIBUTE_NAMES) if with_attributes else 0

    def __len__(self) -> int:
        return len(self.generator)

    def class_names(self) -> list[str]:
        return self.generator.class_names()

    def load(self, index: int) -> RawSample:
        s = self.generator[index]
        return RawSample(
            image=s.image,
            label=s.label,
            boxes=s.boxes,
            image_id=f"synthetic/{self.split}/{index:06d}",
            masks={"mask": s.mask, "part_mask": s.part_mask},
            attributes=s.attributes if self.with_attributes else None,
        )
