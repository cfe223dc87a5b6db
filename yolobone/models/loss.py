"""YOLOv5 detection loss: CIoU box loss, objectness BCE against IoU targets, class BCE.

Targets are assigned the YOLOv5 way: a ground-truth box goes to every anchor of a level whose width and height
ratios to it are within `anchor_t`, in its own grid cell and the two neighbouring cells closest to its centre.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

from yolobone.models.heads import Detect
from yolobone.utils.boxes import bbox_iou

# Cells tried for a target: its own, then left, up, right, down (in grid units, scaled by the 0.5 offset).
_NEIGHBOURS = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32)
_OFFSET = 0.5


def level_balance(nl: int) -> List[float]:
    """Objectness weight per output level: P3-P5 [4.0, 1.0, 0.4]; other level counts YOLOv5's 5-entry list."""
    return [4.0, 1.0, 0.4] if nl == 3 else [4.0, 1.0, 0.25, 0.06, 0.02][:nl]


def smooth_bce_targets(eps: float = 0.0) -> Tuple[float, float]:
    """(positive, negative) class targets with label smoothing eps."""
    return 1.0 - 0.5 * eps, 0.5 * eps


@dataclass(frozen=True)
class LossGains:
    """Per-term loss gains after YOLOv5 train.py's scaling by level count, class count and image size."""

    box: float
    obj: float
    cls: float

    @classmethod
    def scaled(cls, box: float, obj: float, cls_gain: float, nl: int, nc: int, imgsz: int) -> "LossGains":
        """box x 3/nl, cls x nc/80 x 3/nl, obj x (imgsz/640)^2 x 3/nl."""
        k = 3.0 / nl
        return cls(box=box * k, obj=obj * (imgsz / 640) ** 2 * k, cls=cls_gain * nc / 80 * k)


class FocalLoss(nn.Module):
    """Focal modulation (1 - p_t)^gamma and alpha weighting around a BCEWithLogitsLoss (mean reduction)."""

    def __init__(self, bce: nn.BCEWithLogitsLoss, gamma: float = 1.5, alpha: float = 0.25):
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss(pos_weight=bce.pos_weight, reduction="none")
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        loss = self.bce(pred, true)
        p = pred.sigmoid()
        p_t = true * p + (1 - true) * (1 - p)
        alpha_factor = true * self.alpha + (1 - true) * (1 - self.alpha)
        return (loss * alpha_factor * (1.0 - p_t) ** self.gamma).mean()


class ComputeLoss:
    """YOLOv5 loss for a model ending in `Detect`.

    Args:
        detect: the model's Detect head (anchors are read from it at every call, in grid units).
        hyp: mapping or object with box, obj, cls, cls_pw, obj_pw, fl_gamma, anchor_t (unscaled gains).
        imgsz: training image size (scales the objectness gain).
        label_smoothing: class label smoothing epsilon.

    Call with the train-mode outputs [(B, na, H, W, 5 + nc)] and targets (N, 6) [img, cls, cx, cy, w, h]
    normalised; returns (total loss x batch size, detached (box, obj, cls)).
    """

    gr = 1.0  # objectness target = gr * IoU + (1 - gr)
    corner_wh = False  # CIoU arithmetic of YOLOv5 v7.0 (True: YOLOv7's, see bbox_iou)

    def __init__(self, detect: Detect, hyp, imgsz: int = 640, label_smoothing: float = 0.0):
        get = (lambda k: hyp[k]) if isinstance(hyp, dict) else (lambda k: getattr(hyp, k))
        self.detect = detect
        self.nc, self.nl, self.na = detect.nc, detect.nl, detect.na
        device = detect.anchors.device
        self.bce_cls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([float(get("cls_pw"))], device=device))
        self.bce_obj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([float(get("obj_pw"))], device=device))
        gamma = float(get("fl_gamma"))
        if gamma > 0:
            self.bce_cls, self.bce_obj = FocalLoss(self.bce_cls, gamma), FocalLoss(self.bce_obj, gamma)
        self.cp, self.cn = smooth_bce_targets(label_smoothing)
        self.balance = level_balance(self.nl)
        if len(self.balance) < self.nl:
            raise ValueError(f"ComputeLoss: at most 5 detection levels are supported, the model has {self.nl}")
        self.anchor_t = float(get("anchor_t"))
        self.gains = LossGains.scaled(float(get("box")), float(get("obj")), float(get("cls")), self.nl, self.nc,
                                      int(imgsz))

    def __call__(self, preds: Sequence[torch.Tensor], targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        device = preds[0].device
        lbox = torch.zeros(1, device=device)
        lobj = torch.zeros(1, device=device)
        lcls = torch.zeros(1, device=device)
        tcls, tbox, indices, anchors = self.build_targets(preds, targets.to(device))
        for i, pi in enumerate(preds):  # (B, na, H, W, no)
            box, cls, obj = self.level_terms(pi, tcls[i], tbox[i], indices[i], anchors[i])
            if box is not None:
                lbox += box
            if cls is not None:
                lcls += cls
            lobj += obj * self.balance[i]
        return self.total(lbox, lobj, lcls, preds[0].shape[0])

    def level_terms(self, pi: torch.Tensor, tcls: torch.Tensor, tbox: torch.Tensor, index, anchors: torch.Tensor):
        """One level's (box, cls, obj) terms before gains; box and cls are None without matches (cls also for a
        single class)."""
        b, a, gj, gi = index
        tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype, device=pi.device)
        n = b.shape[0]
        box = cls = None
        if n:
            pxy, pwh, _, pcls = pi[b, a, gj, gi].split((2, 2, 1, self.nc), 1)
            pxy = pxy.sigmoid() * 2 - 0.5
            pwh = (pwh.sigmoid() * 2) ** 2 * anchors
            iou = bbox_iou(torch.cat((pxy, pwh), 1), tbox, CIoU=True, corner_wh=self.corner_wh).squeeze(1)
            box = (1.0 - iou).mean()
            iou = iou.detach().clamp(0).to(tobj.dtype)
            tobj[b, a, gj, gi] = (1.0 - self.gr) + self.gr * iou
            if self.nc > 1:  # a single class needs no class loss
                t = torch.full_like(pcls, self.cn)
                t[torch.arange(n, device=pi.device), tcls] = self.cp
                cls = self.bce_cls(pcls, t)
        return box, cls, self.bce_obj(pi[..., 4], tobj)

    def total(self, lbox: torch.Tensor, lobj: torch.Tensor, lcls: torch.Tensor, bs: int):
        """Gains applied: (sum x batch size, detached (box, obj, cls))."""
        lbox *= self.gains.box
        lobj *= self.gains.obj
        lcls *= self.gains.cls
        return (lbox + lobj + lcls) * bs, torch.cat((lbox, lobj, lcls)).detach()

    def build_targets(self, preds: Sequence[torch.Tensor], targets: torch.Tensor, reach: float = _OFFSET):
        """Per level: class ids, boxes (xy offset in cell, wh) in grid units, (b, a, gj, gi) indices, anchors.

        reach: a neighbour cell is taken when the centre is within `reach` of it (0.5: the two nearest; 1.0: all
        four, YOLOv7's auxiliary head)."""
        na, nt = self.na, targets.shape[0]
        device = targets.device
        tcls, tbox, indices, anch = [], [], [], []
        gain = torch.ones(7, device=device)
        ai = torch.arange(na, device=device, dtype=torch.float32).view(na, 1).repeat(1, nt)
        targets = torch.cat((targets.float().repeat(na, 1, 1), ai[..., None]), 2)  # (na, nt, 7): + anchor index
        off = _NEIGHBOURS.to(device) * reach
        anchors_all = self.detect.anchors.to(device).float()
        for i in range(self.nl):
            anchors, shape = anchors_all[i], preds[i].shape
            gain[2:6] = torch.tensor(shape, device=device, dtype=torch.float32)[[3, 2, 3, 2]]  # W, H, W, H
            t = targets * gain  # boxes in grid units
            if nt:
                r = t[..., 4:6] / anchors[:, None]  # wh ratio (na, nt, 2)
                keep = torch.max(r, 1 / r).max(2)[0] < self.anchor_t
                t = t[keep]
                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy  # distance from the far edges
                j, k = ((gxy % 1 < reach) & (gxy > 1)).T  # left / upper neighbour is within reach
                l, m = ((gxi % 1 < reach) & (gxi > 1)).T  # right / lower neighbour is within reach
                sel = torch.stack((torch.ones_like(j), j, k, l, m))
                t = t.repeat((5, 1, 1))[sel]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[sel]
            else:
                t = targets[0]
                offsets = 0
            bc, gxy, gwh, a = t.split((2, 2, 2, 1), 1)
            a, (b, c) = a.long().view(-1), bc.long().T
            gij = (gxy - offsets).long()
            gi, gj = gij.T
            gi, gj = gi.clamp(0, shape[3] - 1), gj.clamp(0, shape[2] - 1)
            indices.append((b, a, gj, gi))
            tbox.append(torch.cat((gxy - torch.stack((gi, gj), 1), gwh), 1))
            anch.append(anchors[a])
            tcls.append(c)
        return tcls, tbox, indices, anch
