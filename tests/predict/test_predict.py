"""``predict`` on a folder of images: ImageFolderDataset decoding, WSOLPredictionWriter outputs, threshold round trip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import tiny_cli_args
from PIL import Image

from wsol_lightning.callbacks import WSOLPredictionWriter
from wsol_lightning.callbacks.cam_visualizer import label_layout
from wsol_lightning.callbacks.prediction_writer import (
    PARTIAL_NAME,
    boxes_to_original,
    merge_partials,
    output_stem,
)
from wsol_lightning.cam import foreground_mask
from wsol_lightning.cli import run_cli
from wsol_lightning.data import collate
from wsol_lightning.data.datasets.folder import ImageFolderDataset, decode_upright_image
from wsol_lightning.data.errors import DatasetNotFoundError

CAM_CONFIG = "experiments/cam.yaml"
SMALL = ["--data.dataset.image_size", "32", "--data.crop_size", "32", "--data.resize_size", "36"]
EXIF_ORIENTATION = 0x0112
ROTATED_90_CW = 6


def write_mixed_folder(folder: Path) -> dict[str, tuple[int, int]]:
    """Images as people have them; returns the upright (height, width) of every decodable one."""
    rng = np.random.default_rng(0)
    (folder / "nested").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (50, 80, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 255, (33, 47, 4), dtype=np.uint8), "RGBA").save(folder / "nested" / "rgba.png")
    cv2.imwrite(str(folder / "scan16.png"), rng.integers(0, 65535, (64, 48)).astype(np.uint16))
    cv2.imwrite(str(folder / "scan16.tif"), rng.integers(1000, 4000, (20, 64)).astype(np.uint16))
    stored = Image.fromarray(rng.integers(0, 255, (30, 60, 3), dtype=np.uint8))  # stored 60 wide, 30 high
    exif = stored.getexif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CW
    stored.save(folder / "rotated.jpg", exif=exif)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    (folder / "notes.txt").write_text("not an image: ignored")
    return {
        "photo.jpg": (50, 80), "gray.png": (40, 30), "nested/rgba.png": (33, 47),
        "scan16.png": (64, 48), "scan16.tif": (20, 64), "rotated.jpg": (60, 30),
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict_fit")
    run_cli(["fit", *tiny_cli_args(CAM_CONFIG, str(root), *SMALL)])
    return sorted(root.rglob("*.ckpt"))[-1]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[int, int]]]:
    folder = tmp_path_factory.mktemp("images")
    return folder, write_mixed_folder(folder)


def run_predict(checkpoint: Path, folder: Path, root: Path, *extra: str) -> None:
    run_cli(["predict", *tiny_cli_args(CAM_CONFIG, str(root), *SMALL), "--ckpt_path", str(checkpoint),
          "--data.predict_dir", str(folder), "--data.batch_size", "3", *extra])


@pytest.fixture(scope="module")
def predicted(checkpoint: Path, image_folder: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The callback form with masks (the ``--output_dir`` shortcut is exercised by the round trip)."""
    root = tmp_path_factory.mktemp("predict_run")
    out = root / "out"
    run_predict(checkpoint, image_folder[0], root,
                "--trainer.callbacks+=wsol_lightning.callbacks.WSOLPredictionWriter",
                "--trainer.callbacks.output_dir", str(out), "--trainer.callbacks.write_masks", "true",
                "--trainer.callbacks.top_k", "3")
    return out


# -- decoding ---------------------------------------------------------------------------------
def test_decoder_applies_exif_orientation_and_scales_16_bit(image_folder: tuple[Path, dict]) -> None:
    folder, sizes = image_folder
    assert decode_upright_image(folder / "rotated.jpg").shape == (60, 30, 3)
    scan = decode_upright_image(folder / "scan16.tif")
    assert scan.dtype == np.uint8 and scan.min() == 0 and scan.max() == 255  # min-max, not truncated
    assert (scan[..., 0] == scan[..., 2]).all()
    for rel, (height, width) in sizes.items():
        assert decode_upright_image(folder / rel).shape == (height, width, 3), rel


def test_folder_dataset_records_undecodable_files(image_folder: tuple[Path, dict]) -> None:
    folder, sizes = image_folder
    dataset = ImageFolderDataset(folder, crop_size=32)
    assert dataset.image_paths == sorted([*sizes, "corrupt.jpg"])
    batch = collate([dataset[i] for i in range(len(dataset))])
    assert batch.image.shape == (len(dataset), 3, 32, 32)
    failed = dict(zip(batch.image_id, batch.failed))
    assert failed.pop("corrupt.jpg") and not any(failed.values())
    for rel, orig in zip(batch.image_id, batch.orig_size):
        if rel in sizes:
            assert tuple(orig.tolist()) == sizes[rel]


def test_empty_or_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="predict_dir"):
        ImageFolderDataset(tmp_path / "nowhere", crop_size=32)
    with pytest.raises(DatasetNotFoundError, match="predict_dir"):
        ImageFolderDataset(tmp_path, crop_size=32)


# -- box and mask rules (hand-checked) -----------------------------------------------------
def test_boxes_map_back_to_the_smallest_covering_original_box() -> None:
    # Evaluated 4x4 -> original 10 wide, 6 high: pixel x in [1, 2] covers [2.5, 7.5) -> 2..7;
    # y in [0, 3] covers [0, 6) -> 0..5.
    assert boxes_to_original(np.array([[1, 0, 2, 3]]), (4, 4), (6, 10)).tolist() == [[2, 0, 7, 5]]
    # Same frame: identity; shrinking: floor/ceil stay inside the image.
    assert boxes_to_original(np.array([[0, 1, 3, 2]]), (4, 4), (4, 4)).tolist() == [[0, 1, 3, 2]]
    assert boxes_to_original(np.array([[3, 3, 3, 3]]), (4, 4), (2, 2)).tolist() == [[1, 1, 1, 1]]


def test_foreground_mask_is_the_evaluation_rule() -> None:
    cam = np.array([[0.0, 0.2], [0.5, 1.0]])
    # quantized 0, 51, 127, 255; cut int(0.5 * 255) = 127 -> only the strict exceedances.
    assert foreground_mask(cam, 0.5).tolist() == [[False, False], [False, True]]
    assert foreground_mask(cam, 0.0).tolist() == [[False, True], [True, True]]
    assert not foreground_mask(np.zeros((3, 3)), 0.3).any()


def test_output_paths_stay_under_the_output_folder() -> None:
    assert str(output_stem("/etc/../passwd")) == "etc/passwd"
    assert str(output_stem("a/b.jpg")) == "a/b.jpg"


def test_writer_rejects_bad_arguments_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="threshold"):
        WSOLPredictionWriter(str(tmp_path), threshold=1.5)
    with pytest.raises(ValueError, match="top_k"):
        WSOLPredictionWriter(str(tmp_path), top_k=0)


def test_ranks_partial_files_merge_into_one_coco_file(tmp_path: Path) -> None:
    """DDP: each rank writes its own images; rank 0 merges, numbering images by id whatever the sharding."""
    entry = {"width": 10, "height": 8, "category_id": 1, "score": 0.9}
    parts = [
        {"images": [{"file_name": "b.png", "boxes": [[1, 2, 3, 4]], **entry}], "failed": [["z.jpg", "corrupt"]]},
        {"images": [{"file_name": "a.png", "boxes": [], **entry}], "failed": []},
    ]
    for rank, part in enumerate(parts):
        (tmp_path / PARTIAL_NAME.format(rank=rank)).write_text(json.dumps(part))
    merge_partials(tmp_path, 2, [{"id": 1, "name": "one"}])
    coco = json.loads((tmp_path / "detections.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["a.png", "b.png"]
    assert coco["annotations"] == [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 3], "area": 9,
                                    "score": 0.9, "iscrowd": 0}]
    assert (tmp_path / "failed.txt").read_text() == "z.jpg\tcorrupt\n"
    assert not list(tmp_path.glob("*.partial.json"))


# -- end to end -----------------------------------------------------------------------------
def test_predict_writes_json_coco_and_pngs_with_boxes_inside_each_image(
    predicted: Path, image_folder: tuple[Path, dict]
) -> None:
    _, sizes = image_folder
    coco = json.loads((predicted / "detections.json").read_text())
    assert sorted(i["file_name"] for i in coco["images"]) == sorted(sizes)
    image_sizes = {i["id"]: (i["height"], i["width"]) for i in coco["images"]}
    for annotation in coco["annotations"]:
        x, y, w, h = annotation["bbox"]
        height, width = image_sizes[annotation["image_id"]]
        assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= width and y + h <= height
        assert 0 <= annotation["category_id"] < 8 and 0 < annotation["score"] <= 1
    for rel, (height, width) in sizes.items():
        record = json.loads((predicted / "predictions" / f"{rel}.json").read_text())
        assert record["original_size"] == {"height": height, "width": width}
        assert len(record["top_k"]) == 3 and record["top_k"][0]["name"].startswith("class")
        scores = [entry["score"] for entry in record["top_k"]]
        assert scores == sorted(scores, reverse=True)
        assert record["localized_class"] == record["top_k"][0]["class"]
        for x0, y0, x1, y1 in record["boxes"]:
            assert 0 <= x0 <= x1 < width and 0 <= y0 <= y1 < height
        for x0, y0, x1, y1 in record["boxes_evaluated"]:
            assert 0 <= x0 <= x1 < 32 and 0 <= y0 <= y1 < 32
        overlay = cv2.imread(str(predicted / record["files"]["overlay"]))
        mask = cv2.imread(str(predicted / record["files"]["mask"]), cv2.IMREAD_UNCHANGED)
        assert overlay.shape == (height, width, 3) and mask.shape == (height, width)
        # the label (top class and score) is light text on a black box in the top-left corner
        top = record["top_k"][0]
        x0, y0, x1, y1 = label_layout(f"{top['name']} {top['score']:.2f}", height, width).box
        area = overlay[y0 : y1 + 1, x0 : x1 + 1].astype(np.int64)
        assert x1 < width and y1 < height and (area == area[..., :1]).all()
        assert np.median(area) <= 10 and area.max() >= 200
        assert set(np.unique(mask)) <= {0, 255}
        assert np.load(predicted / record["files"]["map"]).shape == (32, 32)
    failed = (predicted / "failed.txt").read_text().splitlines()
    assert len(failed) == 1 and failed[0].startswith("corrupt.jpg\t") and "decoded" in failed[0]
    assert not list(predicted.glob("*.partial.json"))


def test_validation_threshold_round_trips_through_the_checkpoint(
    checkpoint: Path, image_folder: tuple[Path, dict], tmp_path: Path
) -> None:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state["state_dict"]["cam_threshold"].fill_(0.37)
    edited = tmp_path / "edited.ckpt"
    torch.save(state, edited)
    out = tmp_path / "out"
    run_predict(edited, image_folder[0], tmp_path, "--output_dir", str(out))
    record = json.loads((out / "predictions" / "photo.jpg.json").read_text())
    assert record["threshold"] == pytest.approx(0.37) and record["threshold_source"] == "validation"
    assert "mask" not in record["files"] and "overlay" in record["files"]
