"""Task-aligned assignment (TOOD, arXiv 2108.07755) of ground-truth boxes to the anchor points of an anchor-free head.

For every ground truth, the anchor points whose centres lie inside it are ranked by the alignment metric
score^alpha x CIoU^beta (score: the predicted probability of the ground truth's class); the top-k become its
positives. A point claimed by several ground truths keeps the one it overlaps most. Class targets are one-hot, scaled
per ground truth so that its best-aligned positive gets that positive's IoU.
Published settings for YOLOv8 / YOLO11: top-k 10, alpha 0.5, beta 6.0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from yolobone.utils.boxes import bbox_iou, xywh2xyxy, xyxy2xywh


@dataclass
class Assignment:
    """Per anchor point: (B, A) labels, (B, A, 4) xyxy boxes (pixels), (B, A, nc) soft scores, fg mask, gt index."""

    labels: torch.Tensor
    boxes: torch.Tensor
    scores: torch.Tensor
    fg: torch.Tensor
    gt_index: torch.Tensor


class TaskAlignedAssigner:
    """Assigns targets to anchor points by the task-aligned metric.

    Args:
        nc: class count.
        topk: positives per ground truth (at most).
        alpha, beta: exponents of the class score and of the CIoU in the metric.
        strides: the head's strides; a ground-truth side shorter than the second stride is widened to it (about its
            centre) when testing which points lie inside, so small boxes keep candidates on the coarser levels too.
    """

    eps = 1e-9

    def __init__(self, nc: int, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 strides: Sequence[float] = (8.0, 16.0, 32.0)):
        self.nc, self.topk, self.alpha, self.beta = nc, topk, alpha, beta
        strides = [float(s) for s in strides]
        self.min_side = strides[1] if len(strides) > 1 else strides[0]

    @torch.no_grad()
    def __call__(self, scores: torch.Tensor, pred_boxes: torch.Tensor, points: torch.Tensor, gt_labels: torch.Tensor,
                 gt_boxes: torch.Tensor, gt_mask: torch.Tensor) -> Assignment:
        """scores (B, A, nc) probabilities, pred_boxes (B, A, 4) and gt_boxes (B, M, 4) xyxy pixels, points (A, 2)
        pixels, gt_labels (B, M, 1), gt_mask (B, M, 1) true for real (not padding) ground truths."""
        b, a = scores.shape[:2]
        m = gt_boxes.shape[1]
        if m == 0:
            return Assignment(torch.full((b, a), self.nc, dtype=torch.long, device=scores.device),
                              torch.zeros_like(pred_boxes), torch.zeros_like(scores),
                              torch.zeros((b, a), dtype=torch.bool, device=scores.device),
                              torch.zeros((b, a), dtype=torch.long, device=scores.device))
        gt_mask = gt_mask.bool()
        inside = self.points_inside(points, gt_boxes, gt_mask)  # (B, M, A)
        metric, overlaps = self.alignment(scores, pred_boxes, gt_labels, gt_boxes, inside & gt_mask)
        pos = self.top_candidates(metric, gt_mask) & inside & gt_mask  # (B, M, A)
        pos = self.resolve_shared(pos, overlaps)
        fg, gt_index = pos.max(1)  # (B, A)
        labels, boxes, target_scores = self.targets(gt_labels, gt_boxes, gt_index, fg)
        # soft targets: each ground truth's positives scaled so that its best metric maps to its best IoU
        metric = metric * pos
        overlaps = overlaps * pos
        norm = metric * overlaps.amax(-1, keepdim=True) / (metric.amax(-1, keepdim=True) + self.eps)
        target_scores = target_scores * norm.amax(1).unsqueeze(-1)
        return Assignment(labels, boxes, target_scores, fg, gt_index)

    def points_inside(self, points: torch.Tensor, gt_boxes: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
        """(B, M, A): the point lies strictly inside the ground truth (sides widened to min_side)."""
        xywh = xyxy2xywh(gt_boxes)
        narrow = (xywh[..., 2:] < self.min_side) & gt_mask
        xywh[..., 2:] = torch.where(narrow, torch.full_like(xywh[..., 2:], self.min_side), xywh[..., 2:])
        lt, rb = xywh2xyxy(xywh).unsqueeze(2).chunk(2, -1)  # (B, M, 1, 2)
        return torch.cat((points - lt, rb - points), -1).amin(-1) > self.eps

    def alignment(self, scores: torch.Tensor, pred_boxes: torch.Tensor, gt_labels: torch.Tensor,
                  gt_boxes: torch.Tensor, candidates: torch.Tensor):
        """(metric, CIoU) as dense (B, M, A) tensors, zero outside the candidate pairs."""
        bi, gi, ai = candidates.nonzero(as_tuple=True)
        cls_score = scores[bi, ai, gt_labels[bi, gi, 0].long()]
        iou = bbox_iou(gt_boxes[bi, gi], pred_boxes[bi, ai], xywh=False, CIoU=True).squeeze(-1).clamp(0)
        metric = torch.zeros(candidates.shape, dtype=scores.dtype, device=scores.device)
        overlaps = torch.zeros(candidates.shape, dtype=pred_boxes.dtype, device=pred_boxes.device)
        metric[bi, gi, ai] = cls_score.pow(self.alpha) * iou.pow(self.beta)
        overlaps[bi, gi, ai] = iou
        return metric, overlaps

    def top_candidates(self, metric: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
        """(B, M, A) bool: the topk points by metric of every real ground truth."""
        idx = metric.topk(min(self.topk, metric.shape[-1]), dim=-1).indices
        chosen = torch.zeros(metric.shape, dtype=torch.bool, device=metric.device)
        chosen.scatter_(-1, idx, True)
        return chosen & gt_mask

    @staticmethod
    def resolve_shared(pos: torch.Tensor, overlaps: torch.Tensor) -> torch.Tensor:
        """A point positive for several ground truths keeps only the one with the highest IoU."""
        shared = (pos.sum(1, keepdim=True) > 1).expand_as(pos)
        best = torch.zeros_like(pos).scatter_(1, overlaps.argmax(1, keepdim=True), True)
        return torch.where(shared, best, pos)

    def targets(self, gt_labels: torch.Tensor, gt_boxes: torch.Tensor, gt_index: torch.Tensor, fg: torch.Tensor):
        """Labels (B, A), boxes (B, A, 4) and one-hot scores (B, A, nc) of each point's ground truth."""
        labels = gt_labels[..., 0].long().gather(1, gt_index).clamp(0)
        boxes = gt_boxes.gather(1, gt_index.unsqueeze(-1).expand(-1, -1, 4))
        scores = torch.zeros((*labels.shape, self.nc), dtype=gt_boxes.dtype, device=gt_boxes.device)
        scores.scatter_(-1, labels.unsqueeze(-1), 1.0)
        return labels, boxes, scores * fg.unsqueeze(-1)
