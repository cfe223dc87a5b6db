"""non_max_suppression: confidence filter, suppression, class handling, limits."""
from __future__ import annotations

import pytest
import torch

from yolobone.engine.detect.nms import NMSInputError, non_max_suppression


def _pred(rows, nc: int = 3) -> torch.Tensor:
    """(1, N, 5 + nc) from rows (cx, cy, w, h, obj, cls, cls_score)."""
    out = torch.zeros(1, len(rows), 5 + nc)
    for i, (cx, cy, w, h, obj, c, s) in enumerate(rows):
        out[0, i, :5] = torch.tensor([cx, cy, w, h, obj])
        out[0, i, 5 + c] = s
    return out


def test_suppression_and_conf_product():
    p = _pred([(50, 50, 20, 20, 0.9, 0, 1.0),
               (51, 50, 20, 20, 0.8, 0, 1.0),  # overlaps the first (IoU ~0.9): suppressed
               (150, 150, 20, 20, 0.9, 1, 0.5),  # conf 0.45
               (250, 250, 20, 20, 0.9, 2, 0.2)])  # conf 0.18 < 0.25: dropped
    (det,) = non_max_suppression(p, conf_thres=0.25, iou_thres=0.45)
    assert det.shape == (2, 6)
    assert torch.allclose(det[0], torch.tensor([40, 40, 60, 60, 0.9, 0]))
    assert det[1, 4].item() == pytest.approx(0.45) and det[1, 5].item() == 1


def test_class_aware_vs_agnostic():
    p = _pred([(50, 50, 20, 20, 0.9, 0, 1.0), (51, 50, 20, 20, 0.8, 1, 1.0)])
    assert len(non_max_suppression(p)[0]) == 2  # different classes survive
    (det,) = non_max_suppression(p, agnostic=True)
    assert len(det) == 1 and det[0, 5] == 0


def test_multi_label():
    p = _pred([(50, 50, 20, 20, 0.9, 0, 0.9)])
    p[0, 0, 6] = 0.6  # the same box also scores class 1
    assert len(non_max_suppression(p)[0]) == 1
    (det,) = non_max_suppression(p, multi_label=True)
    assert sorted(det[:, 5].tolist()) == [0, 1]


def test_max_det_keeps_most_confident():
    rows = [(20 * i + 10, 10, 8, 8, 0.3 + 0.005 * i, i % 3, 1.0) for i in range(100)]
    (det,) = non_max_suppression(_pred(rows), conf_thres=0.25, max_det=7)
    assert len(det) == 7
    assert torch.all(det[:-1, 4] >= det[1:, 4]) and det[0, 4].item() == pytest.approx(0.3 + 0.005 * 99)


def test_max_nms_caps_candidates():
    rows = [(20 * i + 10, 10, 8, 8, 0.3 + 0.005 * i, 0, 1.0) for i in range(50)]
    (det,) = non_max_suppression(_pred(rows), max_nms=10)
    assert len(det) == 10 and det[:, 4].min().item() == pytest.approx(0.3 + 0.005 * 40)


def test_classes_filter():
    p = _pred([(50, 50, 20, 20, 0.9, 0, 1.0), (150, 50, 20, 20, 0.9, 1, 1.0), (250, 50, 20, 20, 0.9, 2, 1.0)])
    (det,) = non_max_suppression(p, classes=[0, 2])
    assert sorted(det[:, 5].tolist()) == [0, 2]


def test_empty_and_batch():
    p = torch.zeros(2, 10, 8)
    out = non_max_suppression(p)
    assert len(out) == 2 and all(o.shape == (0, 6) for o in out)
    out = non_max_suppression(torch.zeros(0, 10, 8))
    assert out == []
    mixed = torch.cat((_pred([(50, 50, 20, 20, 0.9, 0, 1.0)]), torch.zeros(1, 1, 8)))
    out = non_max_suppression((mixed, None))  # the eval-mode model output tuple is accepted
    assert [len(o) for o in out] == [1, 0]


def test_half_precision_input():
    p = _pred([(50, 50, 20, 20, 0.9, 0, 1.0), (51, 50, 20, 20, 0.8, 0, 1.0)]).half()
    (det,) = non_max_suppression(p)
    assert det.dtype == torch.float16 and det.shape == (1, 6)


def test_bad_input():
    with pytest.raises(NMSInputError, match=r"\(B, N, 5 \+ nc\).*got \(10, 8\)"):
        non_max_suppression(torch.zeros(10, 8))
    with pytest.raises(NMSInputError, match="max_det"):
        non_max_suppression(torch.zeros(1, 10, 8), max_det=0)
