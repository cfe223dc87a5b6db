"""Anchor points and the (left, top, right, bottom) distance encoding of boxes used by anchor-free heads.

Every output cell of an anchor-free head is one anchor point at the cell centre; a box is the four distances from
that point to its sides, in grid units of the cell's level.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch


def anchor_points(feats: Sequence[torch.Tensor], strides: Union[Sequence[float], torch.Tensor],
                  offset: float = 0.5) -> Tuple[torch.Tensor, torch.Tensor]:
    """(A, 2) xy cell centres in grid units and (A, 1) strides for maps (B, C, H_i, W_i), levels then rows.
    A strides tensor is used as a tensor (no .item()), so torch.export-based exports (TFLite) trace through."""
    points, stride_col = [], []
    ref = feats[0]
    for i, f in enumerate(feats):
        h, w = f.shape[2:]
        ys = torch.arange(h, device=ref.device, dtype=ref.dtype) + offset
        xs = torch.arange(w, device=ref.device, dtype=ref.dtype) + offset
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((gx, gy), -1).view(-1, 2))
        s = strides[i]
        column = torch.ones((h * w, 1), device=ref.device, dtype=ref.dtype)
        stride_col.append(column * s.to(ref.dtype) if isinstance(s, torch.Tensor) else column * float(s))
    return torch.cat(points), torch.cat(stride_col)


def dist2bbox(dist: torch.Tensor, points: torch.Tensor, xywh: bool = False) -> torch.Tensor:
    """Boxes (..., 4) xyxy (or xywh) from ltrb distances (..., 4) around points (..., 2)."""
    lt, rb = dist.chunk(2, -1)
    x1y1, x2y2 = points - lt, points + rb
    if xywh:
        return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), -1)
    return torch.cat((x1y1, x2y2), -1)


def bbox2dist(points: torch.Tensor, boxes: torch.Tensor, max_dist: Optional[float] = None) -> torch.Tensor:
    """ltrb distances (..., 4) from points (..., 2) to xyxy boxes (..., 4), clamped to [0, max_dist - 0.01] if given.

    The 0.01 margin keeps the largest distance strictly below the last bin, so both of its DFL bins exist.
    """
    x1y1, x2y2 = boxes.chunk(2, -1)
    dist = torch.cat((points - x1y1, x2y2 - points), -1)
    return dist if max_dist is None else dist.clamp(0, max_dist - 0.01)


def expected_distance(logits: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(..., 4 * reg_max) bin logits, side-major -> (..., 4) distances: the softmax-weighted mean bin per side."""
    bins = torch.arange(reg_max, device=logits.device, dtype=logits.dtype)
    return logits.view(*logits.shape[:-1], 4, reg_max).softmax(-1).matmul(bins)
