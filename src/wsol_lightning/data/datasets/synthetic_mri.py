"""Synthetic MRI-like slices: the tumour-localization path with no download.

Each slice is a dark background with a head: an elliptical brain of mid-grey textured tissue
inside a bright skull ring. With probability ``tumour_prob`` (exactly that share of each split)
a bright irregular tumour blob (a union of 2-3 overlapping ellipses) sits inside the brain,
away from the skull. Label = tumour present (class 1), GT mask = the tumour, GT boxes = the
bounding boxes of its 8-connected components (none on a tumour-free slice).

The bright skull is a deliberate distractor: it is the brightest structure of every slice,
tumour or not, so a CAM that leaks onto it localizes badly. ``skull_mask`` marks it so a
diagnostic can measure the CAM mass on the skull.

Images are grayscale replicated to 3 channels (like the real MRI readers). Generation is
deterministic: slice ``i`` of split ``s`` depends only on ``(seed, s, i)``.
:class:`SyntheticMRIGenerator` renders the slices, :class:`SyntheticMRIDataset` serves them in the
batch format, :class:`SyntheticMRI` is the ``data.dataset`` choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from wsol_lightning.data.datasets.base import DatasetSpec, RawSample, WSOLDataset
from wsol_lightning.data.datasets.image_dataset import component_boxes
from wsol_lightning.data.datasets.synthetic import SPLIT_IDS

#: Mean grey levels (0-255) of the structures.
BACKGROUND_LEVEL = 8.0
BRAIN_LEVEL = 105.0
SKULL_LEVEL = 225.0
TUMOUR_LEVEL = 185.0


@dataclass(frozen=True)
class SyntheticMRISample:
    """One generated slice with its annotations (all in the image's pixel frame)."""

    image: np.ndarray  # [H, W, 3] uint8, grayscale replicated
    label: int  # 1 tumour present, 0 absent
    boxes: np.ndarray  # [K, 4] int64 inclusive x0, y0, x1, y1 of the tumour components
    mask: np.ndarray  # [H, W] uint8, 1 tumour
    skull_mask: np.ndarray  # [H, W] uint8, 1 skull ring


class SyntheticMRIGenerator:
    """Deterministic generator of MRI-like slices with or without a tumour.

    Args:
        split: ``train``, ``val``, ``test`` or ``predict``.
        length: number of slices in the split.
        image_size: side of the square slices in pixels (>= 32).
        seed: generation seed.
        tumour_prob: share of slices with a tumour (rounded to a count per split).
        skull_thickness: skull ring thickness as a fraction of ``image_size``.
        noise_std: standard deviation of the pixel noise (grey levels).
    """

    num_classes = 2

    def __init__(
        self,
        split: str = "train",
        length: int = 1000,
        image_size: int = 64,
        seed: int = 0,
        tumour_prob: float = 0.5,
        skull_thickness: float = 0.05,
        noise_std: float = 8.0,
    ) -> None:
        if split not in SPLIT_IDS:
            raise ValueError(f"synthetic_mri split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
        if image_size < 32:
            raise ValueError(f"synthetic_mri image_size must be >= 32, got {image_size}")
        if not 0.0 <= tumour_prob <= 1.0:
            raise ValueError(f"synthetic_mri tumour_prob must be in [0, 1], got {tumour_prob}")
        self.split = split
        self.length = length
        self.image_size = image_size
        self.seed = seed
        self.tumour_prob = tumour_prob
        self.skull_thickness = skull_thickness
        self.noise_std = noise_std

    def __len__(self) -> int:
        return self.length

    def class_names(self) -> list[str]:
        return ["no_tumour", "tumour"]

    def label_of(self, index: int) -> int:
        """1 for exactly ``round(tumour_prob * length)`` slices of the split, shuffled by the seed."""
        order = np.random.default_rng([self.seed, SPLIT_IDS[self.split], 2_000_003]).permutation(self.length)
        return int(order[index] < round(self.tumour_prob * self.length))

    def __getitem__(self, index: int) -> SyntheticMRISample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index, 7])
        size = self.image_size
        label = self.label_of(index)
        centre = (size / 2 + rng.uniform(-0.04, 0.04) * size, size / 2 + rng.uniform(-0.04, 0.04) * size)
        axes = (rng.uniform(0.34, 0.40) * size, rng.uniform(0.40, 0.46) * size)
        angle = rng.uniform(-12, 12)
        thickness = max(1.5, self.skull_thickness * size)

        head = self._ellipse(centre, axes, angle)
        brain = self._ellipse(centre, (axes[0] - thickness, axes[1] - thickness), angle)
        skull = head & ~brain

        image = np.full((size, size), BACKGROUND_LEVEL, np.float32)
        texture = cv2.resize(
            rng.normal(0, 18, (6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC
        )
        image[brain] = BRAIN_LEVEL + texture[brain]
        image[skull] = SKULL_LEVEL

        tumour = np.zeros((size, size), bool)
        if label:
            # Centre within 55% of the brain's radii so the blob stays clear of the skull.
            r, phi = np.sqrt(rng.uniform(0, 1)) * 0.55, rng.uniform(0, 2 * np.pi)
            tx = centre[0] + r * (axes[0] - thickness) * np.cos(phi)
            ty = centre[1] + r * (axes[1] - thickness) * np.sin(phi)
            radius = rng.uniform(0.06, 0.12) * size
            for _ in range(int(rng.integers(2, 4))):
                offset = rng.normal(0, 0.35 * radius, 2)
                lobe_axes = tuple(radius * rng.uniform(0.6, 1.0, 2))
                tumour |= self._ellipse((tx + offset[0], ty + offset[1]), lobe_axes, rng.uniform(0, 180))
            tumour &= brain
            image[tumour] = TUMOUR_LEVEL + 0.5 * texture[tumour]
        image += rng.normal(0, self.noise_std, image.shape).astype(np.float32)
        grey = np.clip(image, 0, 255).astype(np.uint8)
        mask = tumour.astype(np.uint8)
        return SyntheticMRISample(
            image=np.repeat(grey[:, :, None], 3, axis=2),
            label=label,
            boxes=component_boxes(mask),
            mask=mask,
            skull_mask=skull.astype(np.uint8),
        )

    def _ellipse(self, centre: tuple[float, float], axes: tuple[float, float], angle: float) -> np.ndarray:
        canvas = np.zeros((self.image_size, self.image_size), np.uint8)
        shift = 4  # sub-pixel precision of cv2.ellipse
        cv2.ellipse(
            canvas,
            (int(round(centre[0] * 2**shift)), int(round(centre[1] * 2**shift))),
            (int(round(axes[0] * 2**shift)), int(round(axes[1] * 2**shift))),
            angle,
            0,
            360,
            1,
            -1,
            lineType=cv2.LINE_8,
            shift=shift,
        )
        return canvas.astype(bool)


class SyntheticMRIDataset(WSOLDataset):
    """:class:`SyntheticMRIGenerator` slices in the batch format.

    Samples carry ``mask`` (the tumour, all-zero on tumour-free slices) for PxAP and
    ``skull_mask`` (the bright skull ring) for skull-leak diagnostics; both go through the same
    geometric transform as the image and reach collated batches; :meth:`skull_mask` reads the
    ring in the original frame.
    """

    provided_fields = frozenset({"boxes", "mask", "skull_mask", "images_without_object"})

    def __init__(self, generator: SyntheticMRIGenerator, resize_size: int, crop_size: int) -> None:
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


class SyntheticMRI(DatasetSpec):
    """The built-in synthetic MRI-like set: a head with a bright skull ring, a share with a tumour (no files).

    Labelled ``no_tumour`` / ``tumour``; with ``multilabel`` the classes are ``head`` / ``tumour``
    (:class:`~wsol_lightning.data.datasets.mri.HeadTumourLabels`).

    Args:
        image_size: side of the generated slices in pixels (>= 32).
        train_size: training slices.
        val_size: validation slices.
        test_size: test slices.
        tumour_prob: share of slices with a tumour.
        multilabel: multi-label ``{head, tumour}`` targets (``multi_hot``; the CLI makes the model
            multi-label).
    """

    name = "synthetic_mri"

    def __init__(
        self,
        image_size: int = 64,
        train_size: int = 2000,
        val_size: int = 200,
        test_size: int = 400,
        tumour_prob: float = 0.5,
        multilabel: bool = False,
    ) -> None:
        self.image_size = image_size
        self.train_size = train_size
        self.val_size = val_size
        self.test_size = test_size
        self.tumour_prob = tumour_prob
        self.multilabel = multilabel

    def build(self, split: str, resize_size: int, crop_size: int, seed: int) -> WSOLDataset:
        from wsol_lightning.data.datasets.mri import HeadTumourLabels

        length = {"train": self.train_size, "val": self.val_size, "test": self.test_size}[split]
        generator = SyntheticMRIGenerator(
            split=split, length=length, image_size=self.image_size, seed=seed, tumour_prob=self.tumour_prob
        )
        dataset = SyntheticMRIDataset(generator, resize_size, crop_size)
        return HeadTumourLabels(dataset) if self.multilabel else dataset
