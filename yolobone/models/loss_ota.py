"""YOLOv7's detection loss (its `ComputeLossOTA`): YOLOv5's loss terms on targets assigned by SimOTA.

Assignment, per image: YOLOv5's candidates (anchors within `anchor_t`, the target's cell and its two nearest
neighbours, on every level) are scored against each ground truth by cost = class BCE of sqrt(cls x obj) + 3 x
(-log IoU) of the decoded boxes; ground truth g keeps its k_g cheapest candidates, k_g = max(1, int(sum of its 10
best IoUs)), and a candidate claimed by several ground truths goes to the cheapest. The loss then treats the kept
(candidate, ground truth) pairs as YOLOv5 treats its matches, with YOLOv7's CIoU arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from yolobone.models.loss import ComputeLoss
from yolobone.utils.boxes import box_iou, xywh2xyxy

OTA_TOPK_IOU = 10  # IoUs summed for a ground truth's dynamic k
AUX_TOPK_IOU = 20  # the same for YOLOv7's ComputeLossAuxOTA (both of its heads)
OTA_IOU_WEIGHT = 3.0  # weight of -log(IoU) against the class cost
AUX_WEIGHT = 0.25  # weight of the auxiliary head's terms (ComputeLossAuxOTA)
AUX_REACH = 1.0  # the auxiliary head's candidates: the target's cell and all four neighbours


@dataclass
class _Candidates:
    """One image's candidate predictions over all levels (concatenated level by level)."""

    level: List[torch.Tensor] = field(default_factory=list)
    index: List[Tuple[torch.Tensor, ...]] = field(default_factory=list)  # (b, a, gj, gi) per level
    anchors: List[torch.Tensor] = field(default_factory=list)
    boxes: List[torch.Tensor] = field(default_factory=list)  # xyxy in input pixels
    obj: List[torch.Tensor] = field(default_factory=list)
    cls: List[torch.Tensor] = field(default_factory=list)


class ComputeLossOTA(ComputeLoss):
    """YOLOv7's loss for a model ending in (I)Detect; same arguments, call and return value as ComputeLoss."""

    corner_wh = True
    topk_iou = OTA_TOPK_IOU

    def build_targets(self, preds: Sequence[torch.Tensor], targets: torch.Tensor, reach: float = 0.5):
        """Per level: class ids, boxes (xy offset in cell, wh) in grid units, (b, a, gj, gi), anchors - of the
        SimOTA-matched pairs, images in batch order (candidates as ComputeLoss.build_targets with `reach`)."""
        _, _, indices, anchors = super().build_targets(preds, targets, reach)
        per_level: List[List[Tuple[torch.Tensor, ...]]] = [[] for _ in preds]
        stride = self.detect.stride.to(targets.device)
        imgsz = preds[0].shape[2] * stride[0]  # YOLOv7 scales targets by the input height
        with torch.no_grad():
            for bi in range(preds[0].shape[0]):
                gts = targets[targets[:, 0] == bi]
                if not gts.shape[0]:
                    continue
                cand = self._candidates(preds, indices, anchors, bi, stride)
                if cand is None:
                    continue
                level, index, anch, gt_idx = self._match(cand, gts, imgsz)
                for i in range(len(preds)):
                    on = level == i
                    per_level[i].append((*(t[on] for t in index), anch[on], gts[gt_idx[on]]))
        return self._level_targets(preds, per_level, targets)

    def _candidates(self, preds: Sequence[torch.Tensor], indices, anchors, bi: int, stride: torch.Tensor):
        c = _Candidates()
        for i, pi in enumerate(preds):
            on = indices[i][0] == bi
            b, a, gj, gi = (t[on] for t in indices[i])
            ps = pi[b, a, gj, gi]
            grid = torch.stack((gi, gj), 1)
            xy = (ps[:, :2].sigmoid() * 2.0 - 0.5 + grid) * stride[i]
            wh = (ps[:, 2:4].sigmoid() * 2) ** 2 * anchors[i][on] * stride[i]
            c.level.append(torch.full((b.shape[0],), i, device=pi.device))
            c.index.append((b, a, gj, gi))
            c.anchors.append(anchors[i][on])
            c.boxes.append(xywh2xyxy(torch.cat((xy, wh), 1)))
            c.obj.append(ps[:, 4:5])
            c.cls.append(ps[:, 5:])
        boxes = torch.cat(c.boxes)
        return c if boxes.shape[0] else None

    def _match(self, c: _Candidates, gts: torch.Tensor, imgsz: torch.Tensor):
        """SimOTA for one image -> (level, (b, a, gj, gi), anchors, matched ground-truth row) of kept candidates."""
        boxes = torch.cat(c.boxes)
        iou = box_iou(xywh2xyxy(gts[:, 2:6] * imgsz), boxes, eps=0.0)  # (G, N)
        k = torch.clamp(torch.topk(iou, min(self.topk_iou, iou.shape[1]), dim=1)[0].sum(1).int(), min=1)
        g, n = iou.shape
        one_hot = F.one_hot(gts[:, 1].to(torch.int64), self.nc).float().unsqueeze(1).expand(g, n, self.nc)
        score = (torch.cat(c.cls).float().sigmoid() * torch.cat(c.obj).sigmoid()).sqrt()
        score = score.unsqueeze(0).expand(g, n, self.nc)
        cls_cost = F.binary_cross_entropy_with_logits(torch.log(score / (1 - score)), one_hot, reduction="none")
        cost = cls_cost.sum(-1) + OTA_IOU_WEIGHT * -torch.log(iou + 1e-8)
        matching = torch.zeros_like(cost)
        for gt in range(g):
            matching[gt, torch.topk(cost[gt], k=int(k[gt]), largest=False)[1]] = 1.0
        shared = matching.sum(0) > 1
        if shared.any():
            cheapest = torch.min(cost[:, shared], dim=0)[1]
            matching[:, shared] = 0.0
            matching[cheapest, shared] = 1.0
        kept = matching.sum(0) > 0
        index = tuple(torch.cat(parts)[kept] for parts in zip(*c.index))
        return torch.cat(c.level)[kept], index, torch.cat(c.anchors)[kept], matching[:, kept].argmax(0)

    def _level_targets(self, preds: Sequence[torch.Tensor], per_level, targets: torch.Tensor):
        tcls, tbox, indices, anch = [], [], [], []
        device = targets.device
        for i, pi in enumerate(preds):
            parts = per_level[i]
            if parts:
                b, a, gj, gi, anchors, gts = (torch.cat(t) for t in zip(*parts))
            else:
                b = a = gj = gi = torch.zeros(0, dtype=torch.int64, device=device)
                anchors, gts = torch.zeros(0, 2, device=device), torch.zeros(0, 6, device=device)
            gain = torch.tensor(pi.shape, device=device)[[3, 2, 3, 2]]
            box = gts[:, 2:6] * gain
            box[:, :2] -= torch.stack((gi, gj), 1)
            tcls.append(gts[:, 1].long())
            tbox.append(box)
            indices.append((b, a, gj, gi))
            anch.append(anchors)
        return tcls, tbox, indices, anch


class ComputeLossAuxOTA(ComputeLossOTA):
    """YOLOv7's loss for IAuxDetect (its ComputeLossAuxOTA): called with the nl lead maps then the nl auxiliary maps.

    Both heads' targets come from SimOTA on the lead predictions; the auxiliary head's candidates reach all four
    neighbour cells, and its terms weigh AUX_WEIGHT. Dynamic k sums the 20 best IoUs here (10 in ComputeLossOTA).
    """

    topk_iou = AUX_TOPK_IOU

    def __call__(self, preds: Sequence[torch.Tensor], targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if len(preds) == self.nl:  # eval-mode maps (validation loss): the lead head's terms only
            return super().__call__(preds, targets)
        if len(preds) != 2 * self.nl:
            raise ValueError(f"ComputeLossAuxOTA expects {self.nl} lead and {self.nl} auxiliary maps, got {len(preds)}")
        device = preds[0].device
        lead, aux = preds[:self.nl], preds[self.nl:]
        lbox, lobj, lcls = (torch.zeros(1, device=device) for _ in range(3))
        targets = targets.to(device)
        aux_targets = self.build_targets(lead, targets, reach=AUX_REACH)
        lead_targets = self.build_targets(lead, targets)
        for i in range(self.nl):
            box, cls, obj = self.level_terms(lead[i], *(t[i] for t in lead_targets))
            box_aux, cls_aux, obj_aux = self.level_terms(aux[i], *(t[i] for t in aux_targets))
            for term, weight, acc in ((box, 1.0, lbox), (cls, 1.0, lcls), (box_aux, AUX_WEIGHT, lbox),
                                      (cls_aux, AUX_WEIGHT, lcls)):
                if term is not None:
                    acc += weight * term
            lobj += obj * self.balance[i] + AUX_WEIGHT * obj_aux * self.balance[i]
        return self.total(lbox, lobj, lcls, preds[0].shape[0])
