"""Loss of the anchor-free heads (YOLOv8 / YOLO11 / YOLOv5u): task-aligned assignment, CIoU + DFL box loss, BCE class
loss, no objectness. Gains as Ultralytics' defaults: box 7.5, cls 0.5, dfl 1.5 (hyp keys box, cls, dfl).

The head's training output is one map per level, (B, 4 * reg_max + nc, H, W): the box-side distributions (side-major,
reg_max bins each, in grid units of that level), then the class logits.
"""
from __future__ import annotations

from typing import Any, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from yolobone.models.assigner import Assignment, TaskAlignedAssigner
from yolobone.models.box_dist import anchor_points, bbox2dist, dist2bbox, expected_distance
from yolobone.utils.boxes import bbox_iou, xywh2xyxy

LOSS_NAMES = ("box_loss", "cls_loss", "dfl_loss")


def dfl_loss(logits: torch.Tensor, target: torch.Tensor, reg_max: int) -> torch.Tensor:
    """Distribution focal loss (arXiv 2006.04388) per point: logits (N, 4 * reg_max), target distances (N, 4).

    Each side's target t between bins floor(t) and floor(t) + 1 is a two-bin distribution weighted by closeness;
    the loss is its cross-entropy with the predicted bins, averaged over the four sides -> (N, 1).
    """
    t = target.clamp(0, reg_max - 1 - 0.01)
    left = t.long()
    w_right = t - left
    logp = F.log_softmax(logits.view(-1, 4, reg_max), -1)
    lp_left = logp.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    lp_right = logp.gather(-1, (left + 1).unsqueeze(-1)).squeeze(-1)
    return -(lp_left * (1 - w_right) + lp_right * w_right).mean(-1, keepdim=True)


def batch_targets(targets: torch.Tensor, batch_size: int, img_hw: Tuple[int, int]) -> torch.Tensor:
    """(N, 6) [image, class, x, y, w, h] normalised -> (B, M, 5) [class, x1, y1, x2, y2] pixels, zero-padded."""
    device = targets.device
    if targets.shape[0] == 0:
        return torch.zeros(batch_size, 0, 5, device=device)
    img = targets[:, 0].long()
    counts = torch.bincount(img, minlength=batch_size)
    out = torch.zeros(batch_size, int(counts.max()), 5, device=device)
    order = img.argsort(stable=True)
    starts = counts.cumsum(0) - counts
    slot = torch.arange(len(img), device=device) - starts[img[order]]
    h, w = img_hw
    boxes = xywh2xyxy(targets[order, 2:6].float() * torch.tensor([w, h, w, h], device=device, dtype=torch.float32))
    out[img[order], slot] = torch.cat((targets[order, 1:2].float(), boxes), 1)
    return out


class AnchorFreeLoss:
    """Loss for a head with `anchor_free = True` (attributes nc, nl, reg_max, stride).

    Args:
        head: the model's anchor-free detection head (strides are read from it at every call).
        hyp: mapping or object with the gains box, cls, dfl.
        topk, alpha, beta: task-aligned assigner settings.

    Call with the train-mode maps and targets (N, 6) [image, class, x, y, w, h] normalised to the input size;
    returns (sum of the gained terms x batch size, for backward; detached (box, cls, dfl)).
    """

    loss_names = LOSS_NAMES

    def __init__(self, head: nn.Module, hyp: Any, topk: int = 10, alpha: float = 0.5, beta: float = 6.0):
        get = (lambda k: hyp[k]) if isinstance(hyp, dict) else (lambda k: getattr(hyp, k))
        self.head = head
        self.nc, self.reg_max = int(head.nc), int(head.reg_max)
        self.gains = (float(get("box")), float(get("cls")), float(get("dfl")))
        self.topk, self.alpha, self.beta = topk, alpha, beta

    def __call__(self, preds: Sequence[torch.Tensor], targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        preds = list(preds)
        bs = preds[0].shape[0]
        strides = self.head.stride.tolist()
        flat = torch.cat([p.view(bs, p.shape[1], -1) for p in preds], 2)  # (B, no, A)
        dist_logits, cls_logits = flat.split((4 * self.reg_max, self.nc), 1)
        dist_logits = dist_logits.permute(0, 2, 1).contiguous()  # (B, A, 4 * reg_max)
        cls_logits = cls_logits.permute(0, 2, 1).contiguous()  # (B, A, nc)
        points, stride_col = anchor_points(preds, strides)
        img_hw = (int(preds[0].shape[2] * strides[0]), int(preds[0].shape[3] * strides[0]))
        gt = batch_targets(targets.to(flat.device), bs, img_hw)
        gt_labels, gt_boxes = gt.split((1, 4), 2)
        gt_mask = gt_boxes.sum(2, keepdim=True) > 0
        pred_boxes = dist2bbox(expected_distance(dist_logits, self.reg_max), points)  # xyxy, grid units
        assigner = TaskAlignedAssigner(self.nc, self.topk, self.alpha, self.beta, strides)
        a = assigner(cls_logits.detach().sigmoid(), (pred_boxes.detach() * stride_col).to(gt_boxes.dtype),
                     points * stride_col, gt_labels, gt_boxes, gt_mask)
        norm = a.scores.sum().clamp(min=1)
        lcls = F.binary_cross_entropy_with_logits(cls_logits, a.scores.to(cls_logits.dtype), reduction="none")
        lcls = lcls.sum() / norm
        lbox, ldfl = self.box_terms(dist_logits, pred_boxes, points, stride_col, a, norm)
        loss = torch.stack((lbox * self.gains[0], lcls * self.gains[1], ldfl * self.gains[2]))
        return loss.sum() * bs, loss.detach()

    def box_terms(self, dist_logits: torch.Tensor, pred_boxes: torch.Tensor, points: torch.Tensor,
                  stride_col: torch.Tensor, a: Assignment, norm: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(CIoU loss, DFL) over the foreground points, each weighted by its target score sum and divided by norm."""
        fg = a.fg
        target = a.boxes / stride_col  # grid units of each point's level
        weight = a.scores.sum(-1)[fg].unsqueeze(-1)
        iou = bbox_iou(pred_boxes[fg], target[fg], xywh=False, CIoU=True)
        lbox = ((1.0 - iou) * weight).sum() / norm
        target_dist = bbox2dist(points, target, self.reg_max - 1)
        ldfl = (dfl_loss(dist_logits[fg], target_dist[fg], self.reg_max) * weight).sum() / norm
        return lbox, ldfl
