"""YOLOv5 loss: target assignment, hand-computed values, gains, label smoothing, focal loss, gradients."""
from __future__ import annotations

import math

import pytest
import torch

from yolobone.models import DetectionModel
from yolobone.models.heads import Detect
from yolobone.models.loss import ComputeLoss, FocalLoss, LossGains, level_balance, smooth_bce_targets
from yolobone.utils.hyp import Hyp


def _head(anchors, strides, nc: int = 2) -> Detect:
    """A Detect head with anchors given in grid units (as after the model build)."""
    na2 = len(anchors[0])
    det = Detect(nc=nc, anchors=[[1.0] * na2 for _ in anchors], ch=[8] * len(anchors))
    det.stride = torch.tensor(strides, dtype=torch.float32)
    det.anchors[:] = torch.tensor(anchors, dtype=torch.float32).view(len(anchors), -1, 2)
    return det


def _preds(det: Detect, sizes, bs: int = 1):
    return [torch.zeros(bs, det.na, s, s, det.no, requires_grad=True) for s in sizes]


def test_level_balance_and_gains():
    assert level_balance(3) == [4.0, 1.0, 0.4]
    assert level_balance(4) == [4.0, 1.0, 0.25, 0.06]
    assert level_balance(1) == [4.0]
    g = LossGains.scaled(0.05, 1.0, 0.5, nl=3, nc=80, imgsz=640)
    assert (g.box, g.obj, g.cls) == pytest.approx((0.05, 1.0, 0.5))
    g = LossGains.scaled(0.05, 1.0, 0.5, nl=4, nc=6, imgsz=320)
    assert (g.box, g.obj, g.cls) == pytest.approx((0.05 * 0.75, 0.25 * 0.75, 0.5 * 6 / 80 * 0.75))


def test_label_smoothing_targets():
    assert smooth_bce_targets(0.0) == (1.0, 0.0)
    assert smooth_bce_targets(0.1) == pytest.approx((0.95, 0.05))


def test_target_assignment_neighbour_cells_and_anchor_ratio():
    det = _head([[1.0, 1.0]], [8.0])
    loss = ComputeLoss(det, Hyp(), imgsz=32)
    preds = _preds(det, [4])
    # centre (1.3, 1.2) in a 4x4 grid: own cell plus the left and upper neighbours
    # second box is 5x the anchor wide: above anchor_t = 4, so it is not assigned
    t = torch.tensor([[0, 1, 1.3 / 4, 1.2 / 4, 1.0 / 4, 1.0 / 4],
                      [0, 0, 2.5 / 4, 2.5 / 4, 5.0 / 4, 1.0 / 4]])
    tcls, tbox, indices, anch = loss.build_targets(preds, t)
    b, a, gj, gi = indices[0]
    cells = sorted(zip(gi.tolist(), gj.tolist()))
    assert cells == [(0, 1), (1, 0), (1, 1)]
    assert tcls[0].tolist() == [1, 1, 1]
    # box targets are offsets from each assigned cell (may lie in [-0.5, 1.5])
    for (x, y, w, h), i, j in zip(tbox[0].tolist(), gi.tolist(), gj.tolist()):
        assert (x + i, y + j) == pytest.approx((1.3, 1.2))
        assert (w, h) == pytest.approx((1.0, 1.0))
    assert torch.equal(anch[0], torch.ones(3, 2))


def test_zero_targets_only_objectness():
    det = _head([[1.0, 1.0]], [8.0])
    loss = ComputeLoss(det, Hyp(), imgsz=640)
    total, items = loss(_preds(det, [4], bs=2), torch.zeros(0, 6))
    box, obj, cls = items.tolist()
    assert box == 0 and cls == 0
    assert obj == pytest.approx(math.log(2) * 4.0 * 3.0, rel=1e-6)  # BCE(0, 0) = ln 2, balance 4, gain 3/nl
    assert total.item() == pytest.approx(2 * obj, rel=1e-6)  # x batch size


def test_hand_computed_case():
    """One level, one anchor, 2x2 grid: a shifted prediction of the right size and a set objectness logit."""
    det = _head([[1.0, 1.0]], [8.0], nc=2)
    hyp = Hyp()
    loss = ComputeLoss(det, hyp, imgsz=640)
    p = torch.zeros(1, 1, 2, 2, 7)
    p[0, 0, 0, 0, 0] = math.log(5 / 3)  # sigmoid = 0.625 -> x offset 0.75
    p[0, 0, 0, 0, 4] = 2.0  # objectness logit at the target's cell
    p.requires_grad_(True)
    t = torch.tensor([[0, 1, 0.25, 0.25, 0.5, 0.5]])  # grid centre (0.5, 0.5), size 1x1 = the anchor
    total, items = loss([p], t)
    # pred box (0.75, 0.5, 1, 1) vs target (0.5, 0.5, 1, 1): IoU 0.6, same aspect so CIoU = IoU - rho^2 / c^2
    ciou = 0.6 - 0.25 ** 2 / (1.25 ** 2 + 1.0)
    exp_box = (1 - ciou) * hyp.box * 3
    s = 1 / (1 + math.exp(-2.0))
    bce_cell = -(ciou * math.log(s) + (1 - ciou) * math.log(1 - s))
    exp_obj = (bce_cell + 3 * math.log(2)) / 4 * 4.0 * hyp.obj * 3
    exp_cls = math.log(2) * hyp.cls * 2 / 80 * 3  # both class logits 0
    assert items.tolist() == pytest.approx([exp_box, exp_obj, exp_cls], rel=1e-5)
    assert total.item() == pytest.approx(exp_box + exp_obj + exp_cls, rel=1e-5)


def test_single_class_has_no_class_loss():
    det = _head([[1.0, 1.0]], [8.0], nc=1)
    loss = ComputeLoss(det, Hyp(), imgsz=640)
    _, items = loss(_preds(det, [2]), torch.tensor([[0, 0, 0.25, 0.25, 0.5, 0.5]]))
    assert items[2].item() == 0 and items[1].item() > 0


def test_label_smoothing_changes_class_loss():
    det = _head([[1.0, 1.0]], [8.0], nc=3)
    t = torch.tensor([[0, 2, 0.25, 0.25, 0.5, 0.5]])
    p = _preds(det, [2])
    with torch.no_grad():
        p[0][0, 0, 0, 0, 5:] = torch.tensor([-4.0, -4.0, 4.0])  # confident and right
    plain = ComputeLoss(det, Hyp(), 640)([p[0]], t)[1][2].item()
    smoothed = ComputeLoss(det, Hyp(), 640, label_smoothing=0.2)([p[0]], t)[1][2].item()
    assert smoothed > plain  # smoothing penalises over-confidence


def test_focal_loss_reduces_easy_examples():
    bce = torch.nn.BCEWithLogitsLoss()
    focal = FocalLoss(torch.nn.BCEWithLogitsLoss(), gamma=1.5)
    pred, true = torch.tensor([4.0, -4.0]), torch.tensor([1.0, 0.0])
    assert focal(pred, true) < bce(pred, true) * 0.01
    loss = ComputeLoss(_head([[1.0, 1.0]], [8.0]), Hyp(fl_gamma=1.5), 640)
    assert isinstance(loss.bce_cls, FocalLoss) and isinstance(loss.bce_obj, FocalLoss)


def test_gradients_flow_through_model():
    torch.manual_seed(0)
    cfg = {"nc": 3, "depth_multiple": 0.33, "width_multiple": 0.125,
           "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
           "backbone": [[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 1, "Conv", [256, 3, 2]],
                        [-1, 1, "Conv", [512, 3, 2]], [-1, 1, "Conv", [1024, 3, 2]]],
           "head": [[[2, 3, 4], 1, "Detect", ["nc", "anchors"]]]}
    model = DetectionModel(cfg).train()
    loss_fn = ComputeLoss(model.detect, Hyp(), imgsz=64)
    preds = model(torch.rand(2, 3, 64, 64))
    t = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.4], [1, 2, 0.3, 0.6, 0.1, 0.1]])
    total, items = loss_fn(preds, t)
    assert torch.isfinite(total).all() and (items > 0).all()
    total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    # the detection convs receive gradient on every level
    assert all(m.weight.grad.abs().sum() > 0 for m in model.detect.m)
