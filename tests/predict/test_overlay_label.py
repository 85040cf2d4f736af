"""The prediction overlay's label: white text on a dark box, legible from 32-px to 4000-px images."""

from __future__ import annotations

import numpy as np
import pytest

from wsol_lightning.callbacks import WSOLPredictionWriter
from wsol_lightning.callbacks.cam_visualizer import (
    MIN_LABEL_HEIGHT,
    PRED_COLOUR,
    draw_boxes,
    draw_label,
    label_layout,
    line_thickness,
    overlay_cam,
)

NAME = "Black_footed_Albatross"


def render(height: int, width: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The writer's overlay of a bright picture, and the same overlay without its label."""
    rng = np.random.default_rng(0)
    picture = rng.integers(150, 256, (height, width, 3), dtype=np.uint8)  # bright: a label must bring its own dark
    cam = np.zeros((height, width), np.float32)
    cam[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1.0
    boxes = np.array([[width // 4, height // 4, 3 * width // 4, 3 * height // 4]])
    writer = WSOLPredictionWriter(output_dir="unused")
    writer._class_names = ["other", NAME]
    overlay = writer._overlay(picture, cam, boxes, 1, 0.93)
    unlabelled = draw_boxes(overlay_cam(picture, cam), boxes, PRED_COLOUR, line_thickness(height, width))
    return overlay, unlabelled, f"{NAME} 0.93"


@pytest.mark.parametrize(("height", "width"), [(32, 32), (32, 200), (224, 224), (4000, 3000)])
def test_label_is_white_on_a_dark_box_inside_the_image(height: int, width: int) -> None:
    overlay, unlabelled, text = render(height, width)
    assert overlay.shape == (height, width, 3) and overlay.dtype == np.uint8
    layout = label_layout(text, height, width)
    x0, y0, x1, y1 = layout.box
    assert (x0, y0) == (0, 0) and x1 < width and y1 < height  # the box is clipped to the image
    # nothing of the label leaks outside its box
    outside = np.ones((height, width), bool)
    outside[y0 : y1 + 1, x0 : x1 + 1] = False
    np.testing.assert_array_equal(overlay[outside], unlabelled[outside])
    # inside: white text on a black box, whatever the picture below (every pixel a gray level: no blend)
    area = overlay[y0 : y1 + 1, x0 : x1 + 1].astype(np.int64)
    assert (area == area[..., :1]).all()
    gray = area[..., 0]
    text = gray >= 128
    assert (gray <= 40).mean() >= 0.4 and np.median(gray) <= 10  # mostly the dark box
    assert text.sum() >= 20 and gray.max() >= 230  # strokes reach full white
    # the text is tall enough to read: at least the minimum, and growing with the image
    rows = np.flatnonzero((gray >= 64).any(axis=1))  # anti-aliased edges count
    assert rows[-1] - rows[0] + 1 >= MIN_LABEL_HEIGHT
    if min(height, width) >= 1000:
        assert rows[-1] - rows[0] + 1 >= 0.03 * min(height, width)


def test_small_images_get_smaller_then_shortened_text_never_wider_than_the_image() -> None:
    wide = label_layout(f"{NAME} 0.93", 32, 200)
    assert wide.text == f"{NAME} 0.93" and wide.box[2] < 200
    small = label_layout(f"{NAME} 0.93", 32, 32)
    assert small.text.endswith("..") and NAME.startswith(small.text[:-2]) and small.box[2] < 32
    assert small.scale == pytest.approx(wide.scale)  # the minimum legible size, not smaller
    large = label_layout(f"{NAME} 0.93", 4000, 4000)
    assert large.scale > 10 * small.scale and large.thickness > small.thickness
    # a tiny image: the box and the text are clipped to it
    tiny = draw_label(np.full((6, 6, 3), 200, np.uint8), "x 0.50")
    assert tiny.shape == (6, 6, 3) and tiny.max(axis=2).min() <= 40


def test_small_label_is_not_swamped_by_its_outline() -> None:
    """The former label (a black outline 2 px wider than the white strokes) left hardly any light pixel at 32 px."""
    overlay, _, text = render(32, 32)
    x0, y0, x1, y1 = label_layout(text, 32, 32).box
    light = overlay[y0 : y1 + 1, x0 : x1 + 1].min(axis=2) >= 160
    assert light.sum() >= 20
