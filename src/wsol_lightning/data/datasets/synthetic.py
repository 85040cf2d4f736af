"""Built-in synthetic WSOL dataset (``data.dataset: Synthetic``): the part-vs-whole phenomenon in miniature.

Every image holds clutter and one or two objects of its class. An object is a large
*body* (a rotated ellipse) carrying a small class-specific *part* (a two-colour pattern
on its rim). The part is the most discriminative cue: its pattern alone identifies the
class. The body carries a weaker but genuine cue: its hue is drawn from a class-dependent
distribution in which the classes of one coarse group overlap, so a classifier that sees
the body only still beats chance (and identifies the coarse group well), exactly like a
bird's body versus its head. The GT box and mask cover the whole object (body + part),
so a CAM that fires only on the part gives a box that is too small.

Coarse classes (``coarse_labels``) group fine classes whose bodies share a hue family;
DANet's hierarchy for this set is derived from them.

Per-image binary attributes (:data:`ATTRIBUTE_NAMES`, like CUB's ``has_crown_color::red``) are
read off what the generator drew, with no extra random draw: ``part_has_<colour>`` for the two
colours of the part pattern (classes whose patterns share a colour share the attribute),
``part_stripes_vertical``, ``body_hue_<family>`` for the drawn body hue of every object (six hue
families of 1/6 of the hue circle centred on red, yellow, green, cyan, blue, magenta: the hue drawn
per image, so images of one class can differ) and ``two_objects``.

Generation is deterministic: image ``i`` of split ``s`` depends only on ``(seed, s, i)``.
:class:`SyntheticGenerator` renders the images, :class:`SyntheticDataset` serves them in the batch
format, :class:`Synthetic` is the ``data.dataset`` choice.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from wsol_lightning.data.datasets.base import DatasetSpec, RawSample, WSOLDataset

SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "predict": 3}

#: Two-colour patterns for the class parts (RGB, 0-255). Pattern ``k`` of class ``c`` is
#: chosen as ``c % len(PART_PATTERNS)``; the stripe orientation adds more classes.
PART_COLOURS = [
    ((255, 255, 255), (0, 0, 0)),
    ((255, 0, 0), (255, 255, 0)),
    ((0, 0, 255), (255, 255, 255)),
    ((0, 255, 0), (0, 0, 0)),
    ((255, 0, 255), (0, 255, 255)),
    ((255, 128, 0), (0, 0, 128)),
    ((0, 0, 0), (255, 0, 0)),
    ((255, 255, 0), (128, 0, 255)),
]

#: Name of every colour of :data:`PART_COLOURS`, in the order of the ``part_has_*`` attributes.
PART_COLOUR_NAMES = {
    (255, 255, 255): "white",
    (0, 0, 0): "black",
    (255, 0, 0): "red",
    (255, 255, 0): "yellow",
    (0, 0, 255): "blue",
    (0, 255, 0): "green",
    (255, 0, 255): "magenta",
    (0, 255, 255): "cyan",
    (255, 128, 0): "orange",
    (0, 0, 128): "navy",
    (128, 0, 255): "purple",
}
#: Body hue families: family ``k`` covers hues within 1/12 of ``k / 6``.
HUE_FAMILY_NAMES = ("red", "yellow", "green", "cyan", "blue", "magenta")
#: The per-image binary attributes of :attr:`SyntheticSample.attributes`, in order.
ATTRIBUTE_NAMES = (
    *(f"part_has_{name}" for name in PART_COLOUR_NAMES.values()),
    "part_stripes_vertical",
    *(f"body_hue_{name}" for name in HUE_FAMILY_NAMES),
    "two_objects",
)


@dataclass(frozen=True)
class SyntheticSample:
    """One generated image with its annotations (all in the image's pixel frame)."""

    image: np.ndarray  # [H, W, 3] uint8 RGB
    label: int
    boxes: np.ndarray  # [K, 4] int64, inclusive x0, y0, x1, y1
    mask: np.ndarray  # [H, W] uint8, 1 object, 0 background
    part_mask: np.ndarray  # [H, W] uint8, 1 on the discriminative parts
    attributes: np.ndarray  # [len(ATTRIBUTE_NAMES)] uint8, 1 where the attribute is present


class SyntheticGenerator:
    """Deterministic generator of part-vs-body localization images.

    Args:
        split: ``train``, ``val``, ``test`` or ``predict``.
        length: number of images in the split.
        image_size: side of the square images in pixels.
        num_classes: fine classes (at most ``2 * len(PART_COLOURS)``).
        num_coarse: coarse classes; fine class ``c`` belongs to group ``c * num_coarse // num_classes``.
        seed: generation seed.
        two_object_prob: probability that an image holds two objects of its class.
        body_hue_spread: standard deviation of the body hue within a class (fraction of the hue
            circle); larger values make the body a weaker cue.
        clutter: number of clutter shapes per image.
    """

    def __init__(
        self,
        split: str = "train",
        length: int = 1000,
        image_size: int = 64,
        num_classes: int = 8,
        num_coarse: int = 4,
        seed: int = 0,
        two_object_prob: float = 0.2,
        body_hue_spread: float = 0.05,
        clutter: int = 6,
    ) -> None:
        if split not in SPLIT_IDS:
            raise ValueError(f"synthetic split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
        if not 2 <= num_classes <= 2 * len(PART_COLOURS):
            raise ValueError(f"synthetic num_classes must be in [2, {2 * len(PART_COLOURS)}], got {num_classes}")
        if not 1 <= num_coarse <= num_classes:
            raise ValueError(f"synthetic num_coarse must be in [1, num_classes], got {num_coarse}")
        if image_size < 32:
            raise ValueError(f"synthetic image_size must be >= 32, got {image_size}")
        self.split = split
        self.length = length
        self.image_size = image_size
        self.num_classes = num_classes
        self.num_coarse = num_coarse
        self.seed = seed
        self.two_object_prob = two_object_prob
        self.body_hue_spread = body_hue_spread
        self.clutter = clutter

    def __len__(self) -> int:
        return self.length

    @property
    def coarse_labels(self) -> list[int]:
        """Coarse group of every fine class (the synthetic set's class hierarchy)."""
        return [c * self.num_coarse // self.num_classes for c in range(self.num_classes)]

    def class_names(self) -> list[str]:
        return [f"class{c}_group{g}" for c, g in enumerate(self.coarse_labels)]

    def body_hue_mean(self, label: int) -> float:
        """Mean body hue of a class: coarse groups own a hue sector, fine classes sit close inside it."""
        group = self.coarse_labels[label]
        members = [c for c in range(self.num_classes) if self.coarse_labels[c] == group]
        rank = members.index(label)
        sector = 1.0 / self.num_coarse
        return (group + 0.5) * sector + (rank - (len(members) - 1) / 2) * 0.25 * sector / max(len(members) - 1, 1)

    def label_of(self, index: int) -> int:
        """Class of image ``index`` (balanced over classes, shuffled by the seed)."""
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], 1_000_003])
        order = rng.permutation(self.length)
        return int(order[index] % self.num_classes)

    def __getitem__(self, index: int) -> SyntheticSample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index])
        label = self.label_of(index)
        size = self.image_size
        image = self._background(rng)
        mask = np.zeros((size, size), np.uint8)
        part_mask = np.zeros((size, size), np.uint8)
        n_objects = 2 if rng.random() < self.two_object_prob else 1
        boxes, hues = [], []
        for k in range(n_objects):
            box, hue = self._draw_object(rng, image, mask, part_mask, label, k, n_objects)
            boxes.append(box)
            hues.append(hue)
        image = np.clip(image, 0, 255).astype(np.uint8)
        attributes = self.attributes_of(label, hues)
        return SyntheticSample(image, label, np.asarray(boxes, np.int64), mask, part_mask, attributes)

    def attributes_of(self, label: int, body_hues: list[float]) -> np.ndarray:
        """Binary ``uint8 [len(ATTRIBUTE_NAMES)]`` attributes of an image of ``label`` with ``body_hues``."""
        present = {f"part_has_{PART_COLOUR_NAMES[c]}" for c in PART_COLOURS[label % len(PART_COLOURS)]}
        if label // len(PART_COLOURS) == 1:
            present.add("part_stripes_vertical")
        present |= {f"body_hue_{HUE_FAMILY_NAMES[round(h * 6) % 6]}" for h in body_hues}
        if len(body_hues) == 2:
            present.add("two_objects")
        return np.array([name in present for name in ATTRIBUTE_NAMES], np.uint8)

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        size = self.image_size
        low = rng.uniform(60, 200, size=(4, 4, 3)).astype(np.float32)
        image = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        image += rng.normal(0, 12, size=image.shape).astype(np.float32)
        for _ in range(self.clutter):
            colour = tuple(float(v) for v in rng.uniform(40, 220, 3))
            cx, cy = (int(v) for v in rng.integers(0, size, 2))
            r = int(rng.integers(max(2, size // 32), max(3, size // 10)))
            if rng.random() < 0.5:
                cv2.circle(image, (cx, cy), r, colour, -1)
            else:
                cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
        return image

    def _draw_object(
        self,
        rng: np.random.Generator,
        image: np.ndarray,
        mask: np.ndarray,
        part_mask: np.ndarray,
        label: int,
        k: int,
        n_objects: int,
    ) -> tuple[list[int], float]:
        """Draw one object; returns its inclusive box and its body hue."""
        size = self.image_size
        scale = 1.0 if n_objects == 1 else 0.7
        semi_major = rng.uniform(0.22, 0.34) * size * scale
        semi_minor = semi_major * rng.uniform(0.5, 0.75)
        angle = rng.uniform(0, 180)
        margin = semi_major + 0.1 * size
        if n_objects == 1:
            cx, cy = rng.uniform(margin, size - margin, 2)
        else:  # left and right halves so the two objects do not overlap
            cx = rng.uniform(0.27, 0.33) * size + k * 0.42 * size
            cy = rng.uniform(margin, size - margin)
        hue = (self.body_hue_mean(label) + rng.normal(0, self.body_hue_spread)) % 1.0
        sat, val = rng.uniform(0.45, 0.8), rng.uniform(0.55, 0.85)
        body_rgb = np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255

        obj = np.zeros_like(mask)
        centre = (int(round(cx)), int(round(cy)))
        axes = (int(round(semi_major)), int(round(semi_minor)))
        cv2.ellipse(obj, centre, axes, angle, 0, 360, 1, -1)
        texture = rng.normal(0, 10, size=image.shape).astype(np.float32)
        body = obj.astype(bool)
        image[body] = body_rgb + texture[body]

        # The part sits on the rim at one end of the major axis, half inside the body.
        theta = np.deg2rad(angle)
        end = 1 if rng.random() < 0.5 else -1
        px = cx + end * np.cos(theta) * semi_major * 0.85
        py = cy + end * np.sin(theta) * semi_major * 0.85
        half = max(2.0, 0.2 * semi_major)
        part = np.zeros_like(mask)
        x0, y0 = int(round(px - half)), int(round(py - half))
        x1, y1 = int(round(px + half)), int(round(py + half))
        cv2.rectangle(part, (x0, y0), (x1, y1), 1, -1)
        part_region = part.astype(bool)
        primary, secondary = (np.array(c, np.float32) for c in PART_COLOURS[label % len(PART_COLOURS)])
        yy, xx = np.nonzero(part_region)
        vertical = label // len(PART_COLOURS) == 1
        stripe = ((xx - x0) if vertical else (yy - y0)) // max(1, int(half // 2)) % 2 == 0
        image[yy, xx] = np.where(stripe[:, None], primary, secondary)
        part_mask |= part
        full = obj | part
        mask |= full
        ys, xs = np.nonzero(full)
        return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())], float(hue)


class SyntheticDataset(WSOLDataset):
    """:class:`SyntheticGenerator` images in the batch format.

    Samples carry ``mask`` (the whole object) and ``part_mask`` (the discriminative part) so
    PxAP and the part-focus diagnostics run on it.

    Args:
        generator: the split's generator.
        resize_size: training resize side.
        crop_size: training crop and evaluation side.
        with_attributes: samples also carry the generator's per-image binary ``attributes``
            (:data:`ATTRIBUTE_NAMES`).
    """

    provided_fields = frozenset({"boxes", "mask", "part_mask"})

    def __init__(
        self, generator: SyntheticGenerator, resize_size: int, crop_size: int, with_attributes: bool = False
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


class Synthetic(DatasetSpec):
    """The built-in synthetic part-vs-body set (no files; see the module docstring).

    Args:
        num_classes: fine classes.
        num_coarse: coarse classes (the hierarchy DANet reads).
        image_size: side of the generated images in pixels.
        train_size: training images (fresh ones: the generator never repeats an index).
        val_size: validation images.
        test_size: test images.
        two_object_prob: share of images with two objects.
        attributes: training samples carry the per-image binary ``attributes``
            (:data:`ATTRIBUTE_NAMES`; I2C's ``consistency_unit: attribute``).
    """

    name = "synthetic"

    def __init__(
        self,
        num_classes: int = 8,
        num_coarse: int = 4,
        image_size: int = 64,
        train_size: int = 2000,
        val_size: int = 200,
        test_size: int = 400,
        two_object_prob: float = 0.2,
        attributes: bool = False,
    ) -> None:
        self.num_classes = num_classes
        self.num_coarse = num_coarse
        self.image_size = image_size
        self.train_size = train_size
        self.val_size = val_size
        self.test_size = test_size
        self.two_object_prob = two_object_prob
        self.attributes = attributes

    def build(self, split: str, resize_size: int, crop_size: int, seed: int) -> SyntheticDataset:
        length = {"train": self.train_size, "val": self.val_size, "test": self.test_size}[split]
        generator = SyntheticGenerator(
            split=split,
            length=length,
            image_size=self.image_size,
            num_classes=self.num_classes,
            num_coarse=self.num_coarse,
            seed=seed,
            two_object_prob=self.two_object_prob,
        )
        return SyntheticDataset(generator, resize_size, crop_size, self.attributes and split == "train")
