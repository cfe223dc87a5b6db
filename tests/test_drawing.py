"""Box drawing, batch mosaics and label statistics images."""
import cv2
import numpy as np
import pytest
import torch

from yolobone.engine.detect.drawing import class_colors, draw_boxes, plot_images, plot_labels


def test_class_colors_distinct_and_valid():
    colours = [class_colors(i) for i in range(20)]
    assert len(set(colours)) == 20
    assert all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colours)
    assert class_colors(3) == class_colors(3)


def _tag_extent(out: np.ndarray, colour: tuple, min_width: int) -> tuple:
    """(widest run of rows, first row, last row) of the tag: rows with more than min_width pixels of the colour."""
    counts = (out == np.array(colour)).all(2).sum(1)
    rows = np.flatnonzero(counts > min_width)
    return int(counts.max()), int(rows.min()), int(rows.max())


def test_draw_boxes_keeps_tags_inside_the_image():
    img = np.zeros((300, 300, 3), np.uint8)  # tall enough that the tag keeps its line_thickness size
    out = draw_boxes(img, np.array([[270, 0, 299, 30]]), np.array([1]), np.array([0.87]), names=["a", "longname"],
                     line_thickness=2)
    assert out is not img and img.max() == 0  # the input is not modified
    colour = class_colors(1)
    (tw, _), _ = cv2.getTextSize("longname 0.87", cv2.FONT_HERSHEY_SIMPLEX, 2 / 3, 1)
    widest, _, _ = _tag_extent(out, colour, 30 + 2)
    assert widest >= tw  # the whole tag background fits, shifted left from the box at the right edge
    assert tw > 30 and (out[:, :265] == colour).all(2).any()


def test_draw_boxes_shrinks_tags_on_small_images():
    """A tag sized for line_thickness 3 would cover a 96-px image: it is shrunk to at most half the width, and the
    same tag on a large image is not. Relations only: glyph widths differ between OpenCV builds."""
    box, colour = np.array([[80, 40, 90, 90]]), class_colors(1)  # a narrow box: a long coloured row is the tag
    tags = {}
    for size in (96, 400):
        out = draw_boxes(np.zeros((size, size, 3), np.uint8), box, np.array([1]), np.array([0.87]),
                         names=["a", "longname"], line_thickness=3)
        tags[size] = _tag_extent(out, colour, 10 + 2 * 3)
        widest, top, bottom = tags[size]
        cols = np.flatnonzero((out[top:bottom + 1] == colour).all(2).any(0))
        inside = out[top:bottom + 1, cols.min():cols.max() + 1]
        assert ((inside != colour).any(2) & (inside > 0).any(2)).any(), size  # text ink inside the tag
    assert 10 + 2 * 3 < tags[96][0] <= 96 // 2 + 1
    assert tags[400][0] > tags[96][0] and tags[400][2] - tags[400][1] > tags[96][2] - tags[96][1]


def test_draw_boxes_hide_labels_and_empty():
    img = np.zeros((50, 50, 3), np.uint8)
    out = draw_boxes(img, np.array([[10, 10, 40, 40]]), np.array([0]), hide_labels=True, line_thickness=1)
    red = class_colors(0)[2]  # class 0 is red; antialiasing spreads the 1-px edge over two rows
    assert out[9:12, 15:36, 2].max(0).min() > red // 2 and (out[25, 25] == 0).all()
    assert out[:9].max() == 0  # no tag above the box
    assert np.array_equal(draw_boxes(img, np.zeros((0, 4)), np.zeros(0)), img)


def test_plot_images_grid_size_and_file(tmp_path):
    ims = torch.randint(0, 255, (5, 3, 64, 80), dtype=torch.uint8)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.4, 0.4], [4, 2, 0.2, 0.3, 0.1, 0.2]])
    mosaic = plot_images(ims, targets, [f"img{i}.jpg" for i in range(5)], tmp_path / "b.jpg", names=["a", "b", "c"])
    assert mosaic.shape == (2 * 64, 3 * 80, 3)
    assert cv2.imread(str(tmp_path / "b.jpg")).shape == mosaic.shape


def test_plot_images_predictions_in_pixels_and_threshold(tmp_path):
    ims = torch.zeros((1, 3, 64, 64))
    preds = np.array([[0, 0, 32, 32, 20, 20, 0.9], [0, 1, 10, 10, 8, 8, 0.1]])
    mosaic = plot_images(ims, preds, fname=tmp_path / "p.jpg")
    assert (mosaic == class_colors(0)).all(2).any()
    assert not (mosaic == class_colors(1)).all(2).any()  # conf 0.1 is below the 0.25 threshold
    with pytest.raises(ValueError, match="targets must be"):
        plot_images(ims, np.zeros((1, 5)), fname=tmp_path / "x.jpg")


def test_plot_labels_writes_an_image(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.concatenate([rng.integers(0, 3, (50, 1)), rng.uniform(0.1, 0.9, (50, 4)) * [1, 1, 0.2, 0.2]], 1)
    path = plot_labels(labels, {0: "a", 1: "b", 2: "c"}, tmp_path)
    assert path == tmp_path / "labels.jpg" and cv2.imread(str(path)).shape[2] == 3
    assert cv2.imread(str(plot_labels(np.zeros((0, 5)), ["a"], tmp_path / "empty"))) is not None
