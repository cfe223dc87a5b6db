"""Anchor-free loss: anchor points, distance encoding, DFL, the task-aligned assigner and the loss on hand-made cases.

Parity with Ultralytics' v8DetectionLoss is measured by benchmarks/loss_parity.py (needs the reference venv).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from tests.tolerance import assert_close_scaled
from yolobone.models.assigner import TaskAlignedAssigner
from yolobone.models.box_dist import anchor_points, bbox2dist, dist2bbox, expected_distance
from yolobone.models.loss_af import AnchorFreeLoss, batch_targets, dfl_loss
from yolobone.utils.boxes import bbox_iou

REG_MAX = 16
GAINS = {"box": 7.5, "cls": 0.5, "dfl": 1.5}


def _head(strides, nc: int) -> nn.Module:
    head = nn.Module()
    head.stride, head.nc, head.reg_max, head.anchor_free = torch.tensor(strides, dtype=torch.float32), nc, REG_MAX, True
    return head


def test_anchor_points_are_cell_centres_level_by_level():
    feats = [torch.zeros(1, 3, 2, 3), torch.zeros(1, 3, 1, 2)]
    points, strides = anchor_points(feats, [8.0, 16.0])
    assert points.tolist() == [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5],
                               [0.5, 0.5], [1.5, 0.5]]
    assert strides.view(-1).tolist() == [8.0] * 6 + [16.0] * 2


def test_distance_encoding_round_trip_and_clamp():
    points = torch.tensor([[2.5, 3.5], [10.5, 0.5]])
    boxes = torch.tensor([[1.0, 1.0, 6.0, 4.0], [0.0, 0.0, 40.0, 2.0]])
    dist = bbox2dist(points, boxes)
    assert dist.tolist() == [[1.5, 2.5, 3.5, 0.5], [10.5, 0.5, 29.5, 1.5]]
    assert torch.equal(dist2bbox(dist, points), boxes)
    assert dist2bbox(dist, points, xywh=True)[0].tolist() == [3.5, 2.5, 5.0, 3.0]
    clamped = bbox2dist(points, boxes, REG_MAX - 1)
    assert clamped[1].tolist() == pytest.approx([10.5, 0.5, 14.99, 1.5])


def test_expected_distance_of_peaked_and_flat_bins():
    logits = torch.full((2, 4 * REG_MAX), -1e4)
    for side, k in enumerate((0, 3, 7, 15)):
        logits[0, side * REG_MAX + k] = 0.0
    assert expected_distance(logits, REG_MAX)[0].tolist() == [0.0, 3.0, 7.0, 15.0]
    assert expected_distance(logits, REG_MAX)[1].tolist() == pytest.approx([7.5] * 4)  # uniform: mean bin


def test_dfl_loss_known_values():
    flat = torch.zeros(1, 4 * REG_MAX)
    assert dfl_loss(flat, torch.tensor([[3.25, 0.0, 14.0, 7.5]]), REG_MAX).item() == pytest.approx(math.log(REG_MAX))
    logits = torch.randn(1, 4 * REG_MAX, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([[3.25, 0.0, 14.0, 15.5]])  # the last is beyond the bins: clamped to 14.99
    logp = torch.log_softmax(logits.view(4, REG_MAX), -1)
    want = -(0.75 * logp[0, 3] + 0.25 * logp[0, 4] + logp[1, 0] + logp[2, 14]
             + 0.01 * logp[3, 14] + 0.99 * logp[3, 15]) / 4
    assert dfl_loss(logits, target, REG_MAX).item() == pytest.approx(want.item(), rel=1e-5)


def test_batch_targets_pads_per_image_in_pixels():
    t = torch.tensor([[0, 1, 0.5, 0.5, 0.5, 0.25], [2, 0, 0.25, 0.5, 0.5, 0.5], [2, 3, 0.5, 0.5, 1.0, 1.0]])
    out = batch_targets(t, 3, (32, 64))  # image height 32, width 64
    assert out.shape == (3, 2, 5)
    assert out[0, 0].tolist() == [1, 16, 12, 48, 20]
    assert out[0, 1].abs().sum() == 0 and out[1].abs().sum() == 0  # padding
    assert out[2].tolist() == [[0, 0, 8, 32, 24], [3, 0, 0, 64, 32]]
    assert batch_targets(torch.zeros(0, 6), 2, (32, 32)).shape == (2, 0, 5)


def _grid_points(n: int, stride: float) -> torch.Tensor:
    points, _ = anchor_points([torch.zeros(1, 1, n, n)], [stride])
    return points * stride


def _boxes_around(points: torch.Tensor, size: float) -> torch.Tensor:
    return torch.cat((points - size / 2, points + size / 2), -1)


def test_assigner_picks_the_best_aligned_points_inside_the_box():
    points = _grid_points(8, 8.0)  # 64 px, one level of stride 8: centres 4, 12, ..., 60
    gt = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]])  # centre (24, 24): 16 centres (12..36) inside
    pred = _boxes_around(points, 32.0)[None]  # a 32 px box on every point: IoU falls with the distance to (24, 24)
    scores = torch.full((1, 64, 2), 0.5)
    a = TaskAlignedAssigner(2, topk=4, strides=[8.0])(scores, pred, points, torch.tensor([[[1.0]]]), gt,
                                                       torch.ones(1, 1, 1, dtype=torch.bool))
    chosen = sorted(points[a.fg[0]].tolist())
    assert chosen == [[20.0, 20.0], [20.0, 28.0], [28.0, 20.0], [28.0, 28.0]]
    assert a.labels[0][a.fg[0]].tolist() == [1] * 4
    assert torch.equal(a.boxes[0][a.fg[0]], gt[0].expand(4, 4))
    assert a.scores[0, ~a.fg[0]].abs().sum() == 0 and a.scores[0, a.fg[0], 0].abs().sum() == 0
    # the best-aligned positive's class target equals its IoU with the ground truth (CIoU of equal-shaped boxes)
    iou_centre_offset = (28 * 28) / (2 * 32 * 32 - 28 * 28) - (4 ** 2 + 4 ** 2) / (36 ** 2 + 36 ** 2)
    assert a.scores[0, a.fg[0], 1].max().item() == pytest.approx(iou_centre_offset, rel=1e-4)


def test_assigner_shared_point_goes_to_the_higher_iou_and_padding_gets_nothing():
    points = _grid_points(8, 8.0)
    gts = torch.tensor([[[0.0, 0.0, 40.0, 40.0], [16.0, 16.0, 64.0, 64.0], [0.0, 0.0, 0.0, 0.0]]])
    mask = torch.tensor([[[True], [True], [False]]])
    pred = _boxes_around(points, 40.0)[None]
    a = TaskAlignedAssigner(1, topk=64, strides=[8.0])(torch.full((1, 64, 1), 0.9), pred, points,
                                                       torch.zeros(1, 3, 1), gts, mask)
    for p, fg, idx in zip(points.tolist(), a.fg[0].tolist(), a.gt_index[0].tolist()):
        inside = [gts[0, g, 0] < p[0] < gts[0, g, 2] and gts[0, g, 1] < p[1] < gts[0, g, 3] for g in range(2)]
        assert fg == any(inside)
        if all(inside):  # both claim it: the one its 40 px box overlaps more (CIoU) wins
            box = torch.tensor([[p[0] - 20, p[1] - 20, p[0] + 20, p[1] + 20]])
            ious = [float(bbox_iou(box, gts[0, g:g + 1], xywh=False, CIoU=True)) for g in range(2)]
            assert idx == max(range(2), key=lambda g: ious[g])
    assert (a.gt_index[0][a.fg[0]] != 2).all()


def test_assigner_widens_tiny_boxes_and_handles_no_targets():
    points = _grid_points(8, 8.0)
    tiny = torch.tensor([[[22.0, 22.0, 26.0, 26.0]]])  # 4 px: no centre inside until widened to 16 px
    a = TaskAlignedAssigner(1, strides=[8.0, 16.0, 32.0])(torch.full((1, 64, 1), 0.5),
                                                            tiny.expand(1, 64, 4), points,
                                                            torch.zeros(1, 1, 1), tiny, torch.ones(1, 1, 1).bool())
    assert sorted(points[a.fg[0]].tolist()) == [[20.0, 20.0], [20.0, 28.0], [28.0, 20.0], [28.0, 28.0]]
    empty = TaskAlignedAssigner(3)(torch.rand(2, 64, 3), torch.rand(2, 64, 4), points, torch.zeros(2, 0, 1),
                                   torch.zeros(2, 0, 4), torch.zeros(2, 0, 1).bool())
    assert not empty.fg.any() and empty.scores.abs().sum() == 0 and (empty.labels == 3).all()


def _exact_maps(box_px, stride: float, n: int, nc: int) -> torch.Tensor:
    """One level (1, 4 * REG_MAX + nc, n, n) whose distributions put every point's box exactly on box_px."""
    points, _ = anchor_points([torch.zeros(1, 1, n, n)], [stride])
    dist = bbox2dist(points, torch.tensor(box_px) / stride).clamp(0, REG_MAX - 1).round().long()  # (n*n, 4)
    logits = torch.full((n * n, 4, REG_MAX), -50.0)
    logits.scatter_(-1, dist.unsqueeze(-1), 50.0)
    maps = torch.cat((logits.view(n * n, -1), torch.zeros(n * n, nc)), 1)
    return maps.T.reshape(1, 4 * REG_MAX + nc, n, n).contiguous()


def test_loss_of_an_exact_prediction_has_no_box_or_dfl_term():
    # corners on half cells: every inside centre is a whole number of cells from each side
    box = [12.0, 12.0, 44.0, 36.0]
    maps = _exact_maps(box, 8.0, 8, 2).requires_grad_(True)
    t = torch.tensor([[0, 1, 28 / 64, 24 / 64, 32 / 64, 24 / 64]])
    loss = AnchorFreeLoss(_head([8.0], 2), GAINS)
    total, items = loss([maps], t)
    assert items[0].item() == pytest.approx(0.0, abs=1e-5)  # 1 - CIoU
    assert items[2].item() == pytest.approx(0.0, abs=1e-5)  # DFL
    assert items[1].item() > 0  # class logits 0: probability 0.5 where the target is 1 or 0
    assert_close_scaled(total.detach(), items.sum() * 1)
    total.backward()
    assert torch.isfinite(maps.grad).all()


def test_loss_without_targets_is_the_class_term_only():
    maps = [torch.zeros(2, 4 * REG_MAX + 3, s, s, requires_grad=True) for s in (4, 2)]
    total, items = AnchorFreeLoss(_head([8.0, 16.0], 3), GAINS)(maps, torch.zeros(0, 6))
    n_logits = 2 * (16 + 4) * 3  # every class logit 0 against target 0: BCE log 2; divided by max(sum, 1) = 1
    assert items.tolist() == pytest.approx([0.0, 0.5 * math.log(2) * n_logits, 0.0], rel=1e-6)
    assert total.item() == pytest.approx(items.sum().item() * 2, rel=1e-6)  # x batch size
    total.backward()
    assert maps[0].grad[:, 4 * REG_MAX:].abs().sum() > 0 and maps[0].grad[:, :4 * REG_MAX].abs().sum() == 0


def test_loss_gains_scale_their_terms():
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 4 * REG_MAX + 3, s, s, generator=g) for s in (8, 4, 2)]
    t = torch.tensor([[0, 1, 0.5, 0.5, 0.4, 0.3], [1, 2, 0.3, 0.6, 0.2, 0.5]])
    head = _head([8.0, 16.0, 32.0], 3)
    base = AnchorFreeLoss(head, GAINS)(maps, t)[1]
    doubled = AnchorFreeLoss(head, {"box": 15.0, "cls": 0.25, "dfl": 3.0})(maps, t)[1]
    assert base.min() > 0
    assert_close_scaled(doubled, base * torch.tensor([2.0, 0.5, 2.0]))
