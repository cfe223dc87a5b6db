"""Output heads: YOLOv5's anchor-based `Detect` and the `Classify` head."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from yolobone.models.blocks import Conv, autopad
from yolobone.models.registry import LayerContext, ModelConfigError, register_block


def _detect_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """Detect(nc, anchors, ch): the input channels of every level are appended; an int anchors means n per level."""
    for j, c in enumerate(ctx.c_in):
        if isinstance(c, (list, tuple)):
            raise ModelConfigError(f"{ctx.name} input {j} produces several feature maps; select one with Index")
    args = list(args) + [None] * (2 - len(args))
    nc, anchors = args[0], args[1]
    nl = len(ctx.c_in)
    if isinstance(anchors, bool) or not isinstance(anchors, (int, list, tuple)):
        raise ModelConfigError(f"{ctx.name} expects anchors as a list per level or an integer count, got {anchors!r}")
    if isinstance(anchors, int):
        anchors = [list(range(anchors * 2))] * nl  # placeholders: AutoAnchor computes real ones
    if len(anchors) != nl:
        raise ModelConfigError(f"{ctx.name} has {len(anchors)} anchor levels but {nl} inputs in `from`")
    return [nc, anchors, list(ctx.c_in), *args[2:]], 0


@register_block(channels=_detect_channels)
class Detect(nn.Module):
    """Per-level 1x1 conv to na * (5 + nc) outputs; decodes boxes in eval mode.

    Train mode returns the raw maps [(B, na, H, W, 5 + nc)] per level; eval mode returns
    (decoded (B, N, 5 + nc) with xywh in input pixels and sigmoid scores, raw maps).
    """

    anchor_free = False  # YOLOv5's anchors and objectness (yolobone/models/heads_af.py: the anchor-free head)
    export = False  # set on an instance to return only the decoded tensor

    def __init__(self, nc: int = 80, anchors: Sequence[Sequence[float]] = (), ch: Sequence[int] = (),
                 inplace: bool = True):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        if any(len(a) != 2 * self.na for a in anchors):
            raise ModelConfigError(f"Detect expects the same number of anchors (w, h pairs) on every level, "
                                   f"got {[len(a) // 2 for a in anchors]}")
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2))
        self.register_buffer("stride", torch.ones(self.nl), persistent=False)  # set by the model after a dry run
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
        self.inplace = inplace
        self._grids: Dict[Tuple[int, int, int, torch.device, torch.dtype], Tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, x: List[torch.Tensor]) -> Any:
        z = []
        for i in range(self.nl):
            x[i] = self.level_conv(i, x[i])
            bs, _, ny, nx = x[i].shape
            x[i] = x[i].view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()  # (B, na, H, W, no)
            if not self.training:
                grid, anchor_grid = self._grid(nx, ny, i, x[i])
                xy, wh, conf = x[i].sigmoid().split((2, 2, self.nc + 1), 4)
                xy = (xy * 2 + grid) * self.stride[i]
                wh = wh * 2
                wh = wh * wh * anchor_grid  # a product, not ** 2: TFLite's converter rejects tfl.pow
                z.append(torch.cat((xy, wh, conf), 4).view(bs, self.na * nx * ny, self.no))
        if self.training:
            return x
        return torch.cat(z, 1) if self.export else (torch.cat(z, 1), x)

    def level_conv(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Level i's output convolution (subclasses add terms around it)."""
        return self.m[i](x)

    def _grid(self, nx: int, ny: int, i: int, ref: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        key = (i, nx, ny, ref.device, ref.dtype)
        cached = self._grids.get(key)
        if cached is not None:
            return cached
        y, x = torch.meshgrid(torch.arange(ny, device=ref.device, dtype=ref.dtype),
                              torch.arange(nx, device=ref.device, dtype=ref.dtype), indexing="ij")
        grid = torch.stack((x, y), 2).expand(1, self.na, ny, nx, 2) - 0.5  # cell offsets, so xy*2 spans -0.5..1.5
        anchor_grid = (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2).expand(1, self.na, ny, nx, 2)
        anchor_grid = anchor_grid.to(ref.dtype)
        self._grids[key] = (grid, anchor_grid)
        return grid, anchor_grid

    def reset_grids(self) -> None:
        """Drop cached grids (after anchors or strides change)."""
        self._grids.clear()

    def initialize_biases(self, class_freq: Optional[torch.Tensor] = None) -> None:
        """YOLOv5 priors: objectness ~8 objects per 640 image per level, classes ~0.6 / nc (or class frequency)."""
        for mi, s in zip(self.m, self.stride.tolist()):
            b = mi.bias.view(self.na, -1)
            with torch.no_grad():
                b[:, 4] += math.log(8 / (640 / s) ** 2)
                if class_freq is None:
                    b[:, 5:5 + self.nc] += math.log(0.6 / (self.nc - 0.99999))
                else:
                    b[:, 5:5 + self.nc] += torch.log(class_freq / class_freq.sum())
            mi.bias = nn.Parameter(b.view(-1), requires_grad=True)

    def _apply(self, fn, *args, **kwargs):  # noqa: D401 - keep cached grids consistent with device/dtype moves
        self._grids = {}
        return super()._apply(fn, *args, **kwargs)


def _classify_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """Classify(c1, nc, ...): the input channels come first, output = number of classes."""
    if not args:
        raise ModelConfigError(f"{ctx.name} expects [nc, ...], got no arguments")
    c1 = ctx.c1 if len(ctx.c_in) == 1 else sum(ctx.c_in)
    return [c1, *args], int(args[0])


@register_block(channels=_classify_channels)
class Classify(nn.Module):
    """Conv to 1280 -> global average pool -> dropout -> linear: (B, C, H, W) -> (B, nc) logits."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: Optional[int] = None, g: int = 1,
                 dropout_p: float = 0.0):
        super().__init__()
        c_ = 1280  # efficientnet_b0 size
        self.conv = Conv(c1, c_, k, s, autopad(k, p), g)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(p=dropout_p, inplace=True)
        self.linear = nn.Linear(c_, c2)

    def forward(self, x: Any) -> torch.Tensor:
        if isinstance(x, list):
            x = torch.cat(x, 1)
        return self.linear(self.drop(self.pool(self.conv(x)).flatten(1)))
