"""Augmentations: letterbox geometry (round trip with scale_boxes), mosaic placement, perspective, HSV, flips, mixup."""
import numpy as np
import pytest

from yolobone.data.augment import (augment_hsv, box_candidates, letterbox, mixup, mosaic4, mosaic9, random_flip,
                                   random_perspective)
from yolobone.utils.boxes import scale_boxes


def _img(h, w, value=None, seed=0):
    if value is not None:
        return np.full((h, w, 3), value, np.uint8)
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("h0,w0,shape,auto,expect_shape,expect_pad", [
    (100, 200, 128, False, (128, 128), (0.0, 32.0)),
    (100, 200, 128, True, (64, 128), (0.0, 0.0)),
    (200, 100, (160, 128), False, (160, 128), (24.0, 0.0)),
    (90, 70, 128, True, (128, 128), (14.0, 0.0)),
])
def test_letterbox_shape_ratio_pad(h0, w0, shape, auto, expect_shape, expect_pad):
    out, (rw, rh), (dw, dh) = letterbox(_img(h0, w0), shape, auto=auto, stride=32)
    assert out.shape[:2] == expect_shape
    assert (dw, dh) == expect_pad
    assert round(w0 * rw) + 2 * dw <= out.shape[1] + 1 and round(h0 * rh) + 2 * dh <= out.shape[0] + 1
    assert abs(rw - rh) < 0.02  # aspect kept (per-axis ratios differ only by rounding)


def test_letterbox_pads_with_colour_and_keeps_content():
    im = _img(50, 100, value=200)
    out, _, (dw, dh) = letterbox(im, 100, auto=False, color=(1, 2, 3))
    assert out.shape == (100, 100, 3)
    assert (out[0, 0] == (1, 2, 3)).all() and (out[99, 99] == (1, 2, 3)).all()
    assert (out[int(dh):int(dh) + 50] == 200).all()


def test_letterbox_scaleup_false_and_scale_fill():
    out, ratio, _ = letterbox(_img(40, 60), 128, auto=False, scaleup=False)
    assert ratio == (1.0, 1.0) and out.shape[:2] == (128, 128)
    out, (rw, rh), pad = letterbox(_img(40, 60), (64, 96), scale_fill=True)
    assert out.shape[:2] == (64, 96) and pad == (0.0, 0.0)
    assert (rw, rh) == (96 / 60, 64 / 40)


@pytest.mark.parametrize("h0,w0,shape", [(375, 500, 640), (480, 270, 320), (333, 333, 256), (101, 257, (192, 320))])
def test_letterbox_round_trip_with_scale_boxes(h0, w0, shape):
    rng = np.random.default_rng(1)
    xy1 = rng.uniform(0, 0.6, (20, 2)) * (w0, h0)
    boxes = np.concatenate([xy1, xy1 + rng.uniform(1, 0.4 * min(h0, w0), (20, 2))], 1)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w0)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h0)
    out, (rw, rh), (dw, dh) = letterbox(_img(h0, w0), shape, auto=False)
    mapped = boxes * (rw, rh, rw, rh) + (dw, dh, dw, dh)
    back = scale_boxes(out.shape[:2], mapped.copy(), (h0, w0), ratio_pad=((rh, rw), (dw, dh)))
    np.testing.assert_allclose(back, boxes, atol=1e-6)
    approx = scale_boxes(out.shape[:2], mapped.copy(), (h0, w0))  # gain and pad recomputed from the shapes
    np.testing.assert_allclose(approx, boxes, atol=1.5)


def test_box_candidates_rules():
    before = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 100, 100], [0, 0, 300, 10]], float)
    after = np.array([[0, 0, 10, 10], [0, 0, 1.5, 10], [0, 0, 10, 0.5], [0, 0, 20, 20], [0, 0, 300, 2.5]], float)
    keep = box_candidates(before, after, wh_thr=2, ar_thr=100, area_thr=0.1)
    assert keep.tolist() == [True, False, False, False, False]  # 4: 4% area left; 5: aspect 120


def test_random_perspective_identity_keeps_image_and_boxes():
    im = _img(64, 96)
    targets = np.array([[1, 10, 12, 40, 30], [0, 50, 5, 90, 60]], np.float32)
    out, t = random_perspective(im, targets, degrees=0, translate=0, scale=0, shear=0, perspective=0,
                                rng=np.random.default_rng(0))
    assert np.array_equal(out, im)
    np.testing.assert_allclose(t, targets, atol=1e-4)


@pytest.mark.parametrize("perspective", [0.0, 0.0008])
def test_random_perspective_boxes_stay_inside_and_follow_pixels(perspective):
    rng = np.random.default_rng(3)
    im = np.zeros((128, 128, 3), np.uint8)
    im[40:60, 30:70] = 255  # one white box
    targets = np.array([[2, 30, 40, 70, 60]], np.float32)
    out, t = random_perspective(im, targets, degrees=20, translate=0.1, scale=0.3, shear=5, perspective=perspective,
                                border=(-16, -16), rng=rng)
    assert out.shape == (96, 96, 3)
    assert len(t) == 1 and t[0, 0] == 2
    x1, y1, x2, y2 = t[0, 1:]
    assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 96
    ys, xs = np.nonzero(out[..., 0] > 127)
    # The transformed box is the hull of the white region (a rotated box's hull can only be larger).
    assert xs.min() >= x1 - 1.5 and xs.max() <= x2 + 1.5 and ys.min() >= y1 - 1.5 and ys.max() <= y2 + 1.5


def test_random_perspective_drops_boxes_moved_out():
    im = _img(64, 64)
    targets = np.array([[0, 0, 0, 6, 6]], np.float32)  # corner box pushed out by the translation
    _, t = random_perspective(im, targets, degrees=0, translate=0.0, scale=0.0, shear=0, border=(-20, -20),
                              rng=np.random.default_rng(0))
    assert len(t) == 0


def test_mosaic4_places_quadrants_around_centre():
    colours = [(10, 10, 10), (60, 60, 60), (120, 120, 120), (200, 200, 200)]
    s = 64
    images = [_img(64, 48, value=colours[0][0]), _img(40, 64, value=colours[1][0]),
              _img(64, 64, value=colours[2][0]), _img(32, 64, value=colours[3][0])]
    full = np.array([[0, 0.5, 0.5, 1.0, 1.0]], np.float32)  # each image is one object
    labels = [full + [k, 0, 0, 0, 0] for k in range(4)]
    canvas, rows = mosaic4(images, labels, s, rng=np.random.default_rng(5))
    assert canvas.shape == (2 * s, 2 * s, 3)
    assert rows.shape == (4, 5) and rows[:, 1:].min() >= 0 and rows[:, 1:].max() <= 2 * s
    xc, yc = int(rows[0, 3]), int(rows[0, 4])  # box 0 ends at the mosaic centre
    assert (rows[1, 1], rows[1, 4]) == (xc, yc) and (rows[2, 3], rows[2, 2]) == (xc, yc)
    assert (rows[3, 1], rows[3, 2]) == (xc, yc)
    assert canvas[yc - 1, xc - 1, 0] == 10 and canvas[yc - 1, xc, 0] == 60
    assert canvas[yc, xc - 1, 0] == 120 and canvas[yc, xc, 0] == 200
    assert rows[:, 0].tolist() == [0, 1, 2, 3]


def test_mosaic4_needs_four():
    with pytest.raises(ValueError, match="4 images"):
        mosaic4([_img(8, 8)] * 3, [np.zeros((0, 5))] * 3, 8)


def test_mosaic9_tiles_yolov7s_ring_around_the_first_image():
    """YOLOv7's 9-image layout: the first image in the middle, then clockwise from the top, each against its
    neighbours' edges; a (2s)^2 window from a random corner in [0, s)^2. Each image is one object of its own value."""
    s = 64
    sizes = [(24, 20), (16, 24), (20, 18), (22, 16), (18, 22), (24, 24), (16, 20), (20, 24), (18, 16)]  # (h, w)
    images = [_img(h, w, value=20 * (k + 1)) for k, (h, w) in enumerate(sizes)]
    labels = [np.array([[k, 0.5, 0.5, 1.0, 1.0]], np.float32) for k in range(9)]
    seed = next(k for k in range(1000)  # a window whose corner keeps every tile inside it (no clipping)
                if max(int(g.uniform(0, s)) for g in [np.random.default_rng(k)] for _ in range(2)) < 16)
    canvas, rows = mosaic9(images, labels, s, rng=np.random.default_rng(seed))
    assert canvas.shape == (2 * s, 2 * s, 3) and rows.shape == (9, 5) and rows[:, 0].tolist() == list(range(9))
    b = {k: rows[k, 1:].tolist() for k in range(9)}  # x1 y1 x2 y2
    assert [b[k][2] - b[k][0] for k in range(9)] == [w for _, w in sizes]  # nothing clipped
    x1, y1, x2, y2 = b[0]
    assert (b[1][0], b[1][3]) == (x1, y1)  # top: on the first image's top edge, left-aligned
    assert (b[2][0], b[2][3]) == (b[1][2], y1)  # top right: right of the top tile
    assert (b[3][0], b[3][1]) == (x2, y1)  # right
    assert (b[4][0], b[4][1]) == (x2, b[3][3])  # bottom right: under the right tile
    assert (b[5][2], b[5][1]) == (x2, y2)  # bottom: right-aligned under the first image
    assert (b[6][2], b[6][1]) == (b[5][0], y2)  # bottom left: left of the bottom tile
    assert (b[7][2], b[7][3]) == (x1, y2)  # left: bottom-aligned
    assert (b[8][2], b[8][3]) == (x1, b[7][1])  # top left: above the left tile
    for k, (bx1, by1, bx2, by2) in b.items():  # each box covers its own image's pixels
        assert canvas[int(by1):int(by2), int(bx1):int(bx2), 0].tolist() == images[k][..., 0].tolist(), k
    assert (canvas[:int(y1) - 30, :int(x1) - 30] == 114).all()  # outside the tiles: the fill value
    with pytest.raises(ValueError, match="9 images"):
        mosaic9(images[:4], labels[:4], s)


def test_augment_hsv_zero_gain_is_identity_and_seeded():
    im = _img(32, 32)
    assert np.array_equal(augment_hsv(im.copy(), 0, 0, 0), im)
    a = augment_hsv(im.copy(), 0.015, 0.7, 0.4, rng=np.random.default_rng(7))
    b = augment_hsv(im.copy(), 0.015, 0.7, 0.4, rng=np.random.default_rng(7))
    assert a.dtype == np.uint8 and a.shape == im.shape
    assert np.array_equal(a, b) and not np.array_equal(a, im)


def test_random_flip_mirrors_image_and_labels():
    im = _img(16, 24)
    labels = np.array([[1, 0.2, 0.3, 0.1, 0.2]], np.float32)
    out, lb = random_flip(im, labels.copy(), flipud=1.0, fliplr=1.0, rng=np.random.default_rng(0))
    assert np.array_equal(out, im[::-1, ::-1])
    np.testing.assert_allclose(lb, [[1, 0.8, 0.7, 0.1, 0.2]], atol=1e-6)
    out, lb = random_flip(im, labels.copy(), flipud=0.0, fliplr=0.0, rng=np.random.default_rng(0))
    assert np.array_equal(out, im) and np.array_equal(lb, labels)


def test_mixup_blends_and_concatenates():
    a, b = _img(8, 8, value=0), _img(8, 8, value=200)
    la, lb = np.ones((2, 5), np.float32), np.zeros((3, 5), np.float32)
    out, labels = mixup(a, la, b, lb, rng=np.random.default_rng(0))
    assert len(labels) == 5 and 60 < out.mean() < 140  # Beta(32, 32) ratio is close to 0.5
    with pytest.raises(ValueError, match="same shape"):
        mixup(a, la, _img(8, 9), lb)
