"""Tiny on-disk dataset layouts generated per test (a few small images each)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest


def write_image(path: Path, width: int, height: int, value: int = 128, gray: bool = False) -> Path:
    """A small image with a bright left quarter (so a horizontal flip is visible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((height, width) if gray else (height, width, 3), value, np.uint8)
    image[:, : max(1, width // 4)] = 250
    assert cv2.imwrite(str(path), image)
    return path


def write_lines(path: Path, lines: list[str]) -> None:
    """A metadata file like wsolevaluation's: no header, no trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def write_metadata_split(split_dir: Path, records: list[tuple[str, int, tuple[int, int], list]]) -> None:
    """``records``: (image_id, label, (width, height), boxes or mask lines)."""
    write_lines(split_dir / "image_ids.txt", [r[0] for r in records])
    write_lines(split_dir / "class_labels.txt", [f"{r[0]},{r[1]}" for r in records])
    write_lines(split_dir / "image_sizes.txt", [f"{r[0]},{r[2][0]},{r[2][1]}" for r in records])
    write_lines(
        split_dir / "localization.txt", [f"{r[0]}," + ",".join(map(str, b)) for r in records for b in r[3]]
    )


@pytest.fixture
def cub_metadata_root(tmp_path: Path) -> Path:
    """wsolevaluation layout: images under root, metadata at root/metadata/CUB (2 classes)."""
    root = tmp_path / "CUB"
    splits = {
        "train": [
            ("001.Albatross/a_0001.jpg", 0, (40, 30), [[2, 3, 20, 25]]),
            ("002.Auklet/b_0001.jpg", 1, (32, 32), [[0, 0, 31, 31]]),
        ],
        "val": [
            ("001.Albatross/30107316117.jpg", 0, (40, 30), [[10, 5, 39, 29]]),
            ("002.Auklet/44272303765.jpg", 1, (36, 24), [[1, 1, 10, 10], [20, 5, 30, 20]]),
        ],
        "test": [
            ("001.Albatross/a_0002.jpg", 0, (48, 32), [[4, 4, 40, 28]]),
            ("002.Auklet/b_0002.jpg", 1, (30, 40), [[5, 6, 25, 35]]),
        ],
    }
    for split, records in splits.items():
        for image_id, _, (w, h), _ in records:
            write_image(root / image_id, w, h)
        write_metadata_split(root / "metadata" / "CUB" / split, records)
    return root


@pytest.fixture
def cub_original_root(tmp_path: Path) -> Path:
    """CUB_200_2011 archive layout: 2 classes x (6 train + 2 test) images of 40x30."""
    base = tmp_path / "CUB_200_2011"
    images, labels, splits, boxes = [], [], [], []
    k = 0
    for cls, folder in ((1, "001.Albatross"), (2, "002.Auklet")):
        for j in range(8):
            k += 1
            rel = f"{folder}/img_{j:04d}.jpg"
            write_image(base / "images" / rel, 40, 30)
            images.append(f"{k} {rel}")
            labels.append(f"{k} {cls}")
            splits.append(f"{k} {int(j < 6)}")
            # the first box reaches x + w == W (wsolevaluation clips it to W - 1 silently)
            boxes.append(f"{k} 5.0 4.0 35.0 20.0" if j == 0 else f"{k} 3.0 2.0 10.0 8.0")
    for name, lines in (
        ("images.txt", images),
        ("image_class_labels.txt", labels),
        ("train_test_split.txt", splits),
        ("bounding_boxes.txt", boxes),
    ):
        (base / name).write_text("\n".join(lines) + "\n")
    (base / "classes.txt").write_text("1 001.Albatross\n2 002.Auklet\n")
    return base


def cub_folders(num_classes: int) -> list[str]:
    """Class folders ``001.Species_1`` ... as in CUB (the full 200 use CUB's own names)."""
    if num_classes == 200:
        from wsol_lightning.hierarchy import load_hierarchy

        return list(load_hierarchy("cub").class_names[-1])  # 001.Black_footed_Albatross ... 200.Common_Yellowthroat
    return [f"{c:03d}.Species_{c}" for c in range(1, num_classes + 1)]


def write_cub_metadata_layout(root: Path, folders: list[str], size: int = 8) -> Path:
    """wsolevaluation layout with one ``size`` x ``size`` image per class and split (labels 0..K-1)."""
    for split in ("train", "val", "test"):
        records = []
        for label, folder in enumerate(folders):
            image_id = f"{folder}/{split}_{label}.jpg"
            write_image(root / image_id, size, size)
            records.append((image_id, label, (size, size), [[1, 1, size - 2, size - 2]]))
        write_metadata_split(root / "metadata" / "CUB" / split, records)
    return root


def write_cub_original_layout(
    base: Path, folders: list[str], train_per_class: int = 6, size: int = 8, classes_txt: bool = True
) -> Path:
    """``CUB_200_2011`` archive layout: ``train_per_class`` train and one test image per class."""
    images, labels, splits, boxes = [], [], [], []
    for cls, folder in enumerate(folders, start=1):
        for j in range(train_per_class + 1):
            key = len(images) + 1
            rel = f"{folder}/img_{j:04d}.jpg"
            write_image(base / "images" / rel, size, size)
            images.append(f"{key} {rel}")
            labels.append(f"{key} {cls}")
            splits.append(f"{key} {int(j < train_per_class)}")
            boxes.append(f"{key} 1.0 1.0 4.0 4.0")
    for name, lines in (
        ("images.txt", images),
        ("image_class_labels.txt", labels),
        ("train_test_split.txt", splits),
        ("bounding_boxes.txt", boxes),
    ):
        (base / name).write_text("\n".join(lines) + "\n")
    if classes_txt:
        (base / "classes.txt").write_text("".join(f"{k} {f}\n" for k, f in enumerate(folders, start=1)))
    return base


@pytest.fixture
def voc_xml() -> Callable[[Path, list[tuple[str, list[int]]], tuple[int, int]], None]:
    def write(path: Path, objects: list[tuple[str, list[int]]], size: tuple[int, int]) -> None:
        parts = [f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>"]
        for wnid, (x0, y0, x1, y1) in objects:
            parts.append(
                f"<object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            )
        parts.append("</annotation>")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(parts))

    return write


class LayoutWriters:
    """The file writers above, for tests that build their own variant of a layout."""

    image = staticmethod(write_image)
    lines = staticmethod(write_lines)
    metadata_split = staticmethod(write_metadata_split)
    cub_folders = staticmethod(cub_folders)
    cub_metadata_layout = staticmethod(write_cub_metadata_layout)
    cub_original_layout = staticmethod(write_cub_original_layout)


@pytest.fixture
def write() -> type[LayoutWriters]:
    return LayoutWriters
