"""The wsolevaluation metadata parser, the compact index and its cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsol_lightning.data.datasets.image_dataset import MAX_DROP_WARNINGS, fit_boxes_to_images
from wsol_lightning.data.datasets.metadata import parse_split
from wsol_lightning.data.datasets.split_index import IndexCache, SplitIndex, StringTable
from wsol_lightning.data.errors import MetadataError

REAL_CUB = Path(__file__).resolve().parents[1] / "data" / "wsolevaluation_cub"


def test_reads_the_real_cub_metadata_lines() -> None:
    ids, labels, sizes, boxes, masks, ignores = parse_split(REAL_CUB / "test", 200, "boxes")
    assert ids[0] == "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"
    assert labels.tolist() == [0, 0, 0]
    assert sizes[0].tolist() == [500, 335]
    assert boxes[0] == [[60, 27, 385, 331]]  # the note's worked example (x, y, w, h) = (60, 27, 325, 304)
    assert masks == [[], [], []] and ignores == ["", "", ""]
    val_ids, *_ = parse_split(REAL_CUB / "val", 200, "boxes")
    assert val_ids[0] == "001.Black_footed_Albatross/30107316117.jpg"  # CUBV2
    train = parse_split(REAL_CUB / "train", 200, "boxes")
    assert train[3][1] == [[112, 90, 367, 332]] and train[2][1].tolist() == [415, 500]


def _split(tmp_path: Path, write, localization: list[str], labels: list[str] | None = None) -> Path:
    d = tmp_path / "split"
    write.lines(d / "image_ids.txt", ["a/1.jpg", "a/2.jpg"])
    write.lines(d / "class_labels.txt", labels or ["a/1.jpg,0", "a/2.jpg,1"])
    write.lines(d / "localization.txt", localization)
    return d


def test_all_boxes_of_an_image_are_kept(tmp_path: Path, write) -> None:
    d = _split(tmp_path, write, ["a/1.jpg,1,2,3,4", "a/1.jpg,5,6,7,8", "a/2.jpg,0,0,1,1"])
    _, _, sizes, boxes, _, _ = parse_split(d, 2, "boxes")
    assert boxes == [[[1, 2, 3, 4], [5, 6, 7, 8]], [[0, 0, 1, 1]]]
    assert (sizes == -1).all()  # no image_sizes.txt: sizes unknown


@pytest.mark.parametrize(
    ("file", "lines", "line_number", "words"),
    [
        ("localization.txt", ["a/1.jpg,1,2,3,4", "a/2.jpg,1,2,3"], 2, "expected 5"),
        ("localization.txt", ["a/1.jpg,1,2,x,4"], 1, "x1 must be an integer"),
        ("localization.txt", ["a/1.jpg,9,2,3,4"], 1, "x1 < x0"),
        ("localization.txt", ["a/3.jpg,1,2,3,4"], 1, "not in image_ids.txt"),
        ("class_labels.txt", ["a/1.jpg,0", "a/2.jpg,2"], 2, "class id 2 out of range [0, 1]"),
        ("class_labels.txt", ["a/1.jpg,0", "a/2.jpg,-1"], 2, "out of range"),
        ("class_labels.txt", ["a/1.jpg,0", "a/2.jpg,one"], 2, "label must be an integer"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, write, file, lines, line_number, words) -> None:
    d = _split(tmp_path, write, ["a/1.jpg,1,2,3,4"])
    write.lines(d / file, lines)
    with pytest.raises(MetadataError) as err:
        parse_split(d, 2, "boxes")
    assert f"{d / file}:{line_number}:" in str(err.value) and words in str(err.value)


def test_image_without_label_names_its_line(tmp_path: Path, write) -> None:
    d = _split(tmp_path, write, [], labels=["a/1.jpg,0"])
    with pytest.raises(MetadataError, match=r"image_ids.txt:2: .*a/2.jpg"):
        parse_split(d, 2, "boxes")


def test_mask_localization_keeps_the_ignore_path_of_the_first_line(tmp_path: Path, write) -> None:
    d = _split(
        tmp_path, write, ["a/1.jpg,a/1_m1.png,a/1_ignore.png", "a/1.jpg,a/1_m2.png,", "a/2.jpg,a/2_m.png,"]
    )
    _, _, _, boxes, masks, ignores = parse_split(d, 2, "masks")
    assert masks == [["a/1_m1.png", "a/1_m2.png"], ["a/2_m.png"]]
    assert ignores == ["a/1_ignore.png", ""] and boxes == [[], []]


def test_string_table_and_index_round_trip(tmp_path: Path) -> None:
    table = StringTable.from_strings(["ü/1.jpg", "", "b"])
    assert list(table) == ["ü/1.jpg", "", "b"] and len(table) == 3
    index = SplitIndex.build(
        ["x", "y", "z"],
        [2, 0, 1],
        boxes=[[[1, 2, 3, 4]], [], [[0, 0, 1, 1], [2, 2, 3, 3]]],
        mask_paths=[["m1"], [], ["m2", "m3"]],
        ignore_paths=["i", "", ""],
    )
    sub = index.subset(np.array([2, 0]))
    assert list(sub.image_paths) == ["z", "x"] and sub.labels.tolist() == [1, 2]
    assert sub.boxes_of(0).tolist() == [[0, 0, 1, 1], [2, 2, 3, 3]] and sub.masks_of(0) == ["m2", "m3"]
    assert list(sub.ignore_paths) == ["", "i"]
    # everything is a flat numpy array, no per-image Python objects
    assert all(isinstance(v, np.ndarray) for v in index.to_arrays().values())
    again = SplitIndex.from_arrays(index.to_arrays())
    assert again.boxes_of(2).tolist() == index.boxes_of(2).tolist() and list(again.mask_paths) == [
        "m1",
        "m2",
        "m3",
    ]


def test_cache_builds_once_and_rebuilds_when_the_key_changes(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path / "cache", tmp_path)
    calls = []

    def build() -> SplitIndex:
        calls.append(1)
        return SplitIndex.build(["a"], [0])

    for _ in range(2):
        assert list(cache.load_or_build({"dataset": "d", "split": "s", "files": [1]}, build).image_paths) == [
            "a"
        ]
    assert len(calls) == 1
    cache.load_or_build({"dataset": "d", "split": "s", "files": [2]}, build)
    assert len(calls) == 2


def test_labels_without_a_class_count_only_need_to_be_non_negative(tmp_path: Path, write) -> None:
    d = _split(tmp_path, write, [], labels=["a/1.jpg,0", "a/2.jpg,41"])
    assert parse_split(d, None, "boxes")[1].tolist() == [0, 41]
    write.lines(d / "class_labels.txt", ["a/1.jpg,0", "a/2.jpg,-2"])
    with pytest.raises(MetadataError, match=r"class_labels.txt:2: class id -2 out of range \[0, ...\)"):
        parse_split(d, None, "boxes")


def test_fit_boxes_names_the_listed_box_and_counts_drops_beyond_the_named_ones(tmp_path: Path, write) -> None:
    write.image(tmp_path / "a.jpg", 20, 10)
    # listed 40x20 (twice the real size): [30, 22, 39, 30] is drawn below the listed image
    boxes = [[[2, 2, 10, 8], [30, 22, 39, 30]]]
    sources = [[("loc.txt", 1), ("loc.txt", 2)]]
    with pytest.raises(MetadataError) as err:
        fit_boxes_to_images("D", "test", tmp_path, ["a.jpg"], boxes, np.array([[40, 20]]), sources=sources)
    assert str(err.value).startswith(
        f"loc.txt:2: box [15, 11, 19, 15] lies entirely outside its image {tmp_path / 'a.jpg'} (20x10) "
        "(written [30, 22, 39, 30] for the listed size 40x20)"
    )
    count = MAX_DROP_WARNINGS + 3
    boxes = [[[1, 1, 5, 5]] + [[0, 10 + k, 5, 12 + k] for k in range(count)]]
    sources = [[("loc.txt", k) for k in range(1, count + 2)]]
    with pytest.warns(UserWarning) as record:
        sizes = fit_boxes_to_images("D", "test", tmp_path, ["a.jpg"], boxes, None, sources=sources, drop_invalid=True)
    messages = [str(w.message) for w in record]
    assert len([m for m in messages if m.endswith("dropped (drop_invalid_boxes)")]) == MAX_DROP_WARNINGS
    assert messages[0].startswith("loc.txt:2: box [0, 10, 5, 12] lies entirely outside")
    assert any(m.startswith(f"D/test: {count} box(es) lay entirely outside") for m in messages)
    assert boxes == [[[1, 1, 5, 5]]] and sizes.tolist() == [[20, 10]]
