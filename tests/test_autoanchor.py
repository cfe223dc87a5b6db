"""AutoAnchor: BPR metric, k-means + evolution, writing anchors into Detect in grid units and stride order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from yolobone.models.heads import Detect
from yolobone.models.autoanchor import (anchor_fitness, anchor_metrics, anchors_pixels, check_anchors, kmean_anchors,
                              label_wh, write_anchors)


def _detect(anchors_px, strides=(8, 16, 32)) -> Detect:
    det = Detect(nc=2, anchors=anchors_px, ch=[8] * len(anchors_px))
    det.stride = torch.tensor(strides, dtype=torch.float32)
    det.anchors /= det.stride.view(-1, 1, 1)
    return det


def _clustered_labels(rng: np.random.Generator, n_images: int = 60):
    """Labels around three size clusters (8, 40, 160 px on a 320 image), square images of 320 px."""
    labels = []
    for _ in range(n_images):
        size = rng.choice([8.0, 40.0, 160.0], size=4)[:, None] * rng.uniform(0.8, 1.25, size=(4, 2))
        wh = size / 320
        xy = rng.uniform(0.3, 0.7, size=(4, 2))
        labels.append(np.concatenate([np.zeros((4, 1)), xy, wh], 1).astype(np.float32))
    return labels, np.full((n_images, 2), 320)


def test_anchor_metrics_hand_case():
    anchors = np.array([[10.0, 10.0]])
    wh = np.array([[10.0, 10.0], [50.0, 10.0], [30.0, 20.0]])
    bpr, aat = anchor_metrics(anchors, wh, thr=4.0)
    # ratios: exact; width 5x (> 4, unmatched); 3x and 2x (matched)
    assert bpr == pytest.approx(2 / 3) and aat == pytest.approx(2 / 3)
    assert anchor_fitness(anchors, wh, 4.0) == pytest.approx((1.0 + 0.0 + 1 / 3) / 3)


def test_label_wh_scales_to_imgsz():
    labels = [np.array([[0, 0.5, 0.5, 0.5, 0.25]], np.float32), np.zeros((0, 5), np.float32)]
    shapes = np.array([[200, 100], [50, 50]])  # (w, h)
    wh = label_wh(labels, shapes, imgsz=64)
    assert wh.shape == (1, 2) and wh[0] == pytest.approx([32.0, 8.0])  # 200x100 -> 64x32
    with pytest.raises(ValueError, match="label arrays"):
        label_wh(labels[:1], shapes, 64)


def test_kmeans_and_evolution_improve_fit_and_are_seeded():
    rng = np.random.default_rng(0)
    labels, shapes = _clustered_labels(rng)
    wh = label_wh(labels, shapes, 320)
    poor = np.array([[300.0, 300], [310, 320], [330, 300]])
    assert anchor_metrics(poor, wh)[0] < 0.5
    k0 = kmean_anchors(wh, n=3, imgsz=320, gen=0, seed=1, verbose=False)
    k1 = kmean_anchors(wh, n=3, imgsz=320, gen=300, seed=1, verbose=False)
    assert anchor_metrics(k1, wh)[0] >= 0.98
    assert anchor_fitness(k1, wh) >= anchor_fitness(k0, wh)
    assert np.all(np.diff(k1.prod(1)) > 0), "anchors must be sorted by area"
    k2 = kmean_anchors(wh, n=3, imgsz=320, gen=300, seed=1, verbose=False)
    assert np.array_equal(k1, k2)


def test_check_anchors_replaces_poor_anchors_in_grid_units_and_order():
    rng = np.random.default_rng(0)
    labels, shapes = _clustered_labels(rng)
    poor = [[300, 300, 310, 320], [330, 300, 340, 340], [350, 350, 360, 370]]
    det = _detect(poor)
    det._grid(2, 2, 0, torch.zeros(1))  # a cached grid must be dropped when anchors change
    res = check_anchors(det, labels, shapes, imgsz=320, thr=4.0, seed=0, gen=200)
    assert res.replaced and res.bpr < 0.5 and res.new_bpr >= 0.98
    assert det._grids == {}
    px = (det.anchors * det.stride.view(-1, 1, 1)).view(-1, 2)
    areas = px.prod(1)
    assert torch.all(areas[1:] >= areas[:-1]), "smallest anchors on P3"
    flat = anchors_pixels(det)
    assert len(flat) == 3 and len(flat[0]) == 4
    assert flat[0][0] == pytest.approx(float(px[0, 0]), abs=0.01)


def test_check_anchors_keeps_good_anchors():
    rng = np.random.default_rng(0)
    labels, shapes = _clustered_labels(rng)
    good = [[8, 8, 10, 10], [40, 40, 45, 38], [160, 160, 150, 170]]
    det = _detect(good)
    before = det.anchors.clone()
    res = check_anchors(det, labels, shapes, imgsz=320)
    assert not res.replaced and res.bpr > 0.98
    assert torch.equal(det.anchors, before)


def test_write_anchors_sorts_and_checks_count():
    det = _detect([[10, 13, 16, 30], [30, 61, 62, 45], [116, 90, 156, 198]])
    write_anchors(det, np.array([[100, 100], [5, 5], [50, 50], [20, 20], [200, 200], [10, 10]]))
    assert anchors_pixels(det) == [[5.0, 5.0, 10.0, 10.0], [20.0, 20.0, 50.0, 50.0], [100.0, 100.0, 200.0, 200.0]]
    assert det.anchors[0, 0].tolist() == pytest.approx([5 / 8, 5 / 8])
    with pytest.raises(ValueError, match="3 levels x 2 anchors"):
        write_anchors(det, np.ones((5, 2)))
