"""The anchor-free decoupled head of YOLOv5u / YOLOv8 / YOLO11 (`DetectAF`) and its DFL decoder.

Ultralytics writes this head as `[[P3, P4, P5], 1, Detect, [nc]]`, the same name as YOLOv5's anchor-based head:
a `Detect` row without an anchors argument builds DetectAF (the registry's variant_of), so their YAMLs paste in
unchanged. Per level a box branch predicts a 16-bin distribution over each of the four distances (left, top,
right, bottom) from the cell centre and a class branch predicts nc logits; there is no objectness.

    train: [(B, 4 * reg_max + nc, H_i, W_i)] per level, the box distribution channels first
    eval:  (decoded (B, N, 4 + nc): xywh in input pixels and sigmoid class scores, the train-mode maps)
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from yolobone.models.blocks import Conv, DWConv
from yolobone.models.box_dist import anchor_points, dist2bbox
from yolobone.models.registry import LayerContext, ModelConfigError, register_block

REG_MAX = 16  # distribution bins per box side
_DW_CLS_BLOCKS = ("C3k2", "C2fCIB", "A2C2f")  # a model with any of these gets YOLO11's depth-wise class branch


def _dfl_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """DFL(c1): 4 * c1 input channels (one c1-bin distribution per box side) -> 4 distances."""
    c1 = int(args[0]) if args else REG_MAX
    if ctx.c1 != 4 * c1:
        raise ModelConfigError(f"{ctx.name} expects 4 x {c1} = {4 * c1} input channels, got {ctx.c1}")
    return [c1], 4


@register_block(channels=_dfl_channels)
class DFL(nn.Module):
    """Expected value of each side's softmax distribution over bins 0..c1-1 (a fixed 1x1 conv, not trained):
    (B, 4 * c1, A) -> (B, 4, A), or (B, 4 * c1, H, W) -> (B, 4, H, W)."""

    fixed = True  # its weight holds the bin values 0..c1-1: never trained (yolobone/models/freeze.py keeps it so)

    def __init__(self, c1: int = REG_MAX):
        super().__init__()
        self.c1 = c1
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(c1, dtype=torch.float32).view(1, c1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            b, _, h, w = x.shape
            return self.forward(x.flatten(2)).view(b, 4, h, w)
        b, _, a = x.shape
        p = x.view(b, 4, self.c1, a).transpose(1, 2).softmax(1)  # (B, c1 bins, 4 sides, A)
        return self.conv(p).view(b, 4, a)


def is_anchor_free_row(args: List[Any]) -> bool:
    """A `Detect` row is Ultralytics' anchor-free head when it passes no anchors: args [nc]."""
    return len(args) < 2


def _detect_af_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """DetectAF(nc, ch, reg_max, dw_cls): every input's channels; dw_cls when the model uses YOLO11's blocks."""
    for j, c in enumerate(ctx.c_in):
        if isinstance(c, (list, tuple)):
            raise ModelConfigError(f"{ctx.name} input {j} produces several feature maps; select one with Index")
    if not args:
        raise ModelConfigError(f"{ctx.name} expects [nc] (anchor-free head), got no arguments")
    reg_max = args[1] if len(args) > 1 else REG_MAX
    dw_cls = any(name in _DW_CLS_BLOCKS for name in ctx.previous)
    return [args[0], list(ctx.c_in), reg_max, dw_cls], 0


@register_block(channels=_detect_af_channels, variant_of=("Detect", is_anchor_free_row))
class DetectAF(nn.Module):
    """Anchor-free decoupled head: per level a box branch (two 3x3 Convs, 1x1 to 4 * reg_max) and a class branch
    (two 3x3 Convs, or YOLO11's depth-wise 3x3 + 1x1 pairs, then 1x1 to nc); boxes decoded by DFL."""

    anchor_free = True
    export = False  # set on an instance to return only the decoded tensor

    def __init__(self, nc: int = 80, ch: Sequence[int] = (), reg_max: int = REG_MAX, dw_cls: bool = True):
        super().__init__()
        if not ch:
            raise ModelConfigError("DetectAF needs at least one input level")
        self.nc, self.nl, self.reg_max = nc, len(ch), reg_max
        self.no = nc + 4 * reg_max
        self.register_buffer("stride", torch.ones(self.nl), persistent=False)  # set by the model's build probe
        c2, c3 = max(16, ch[0] // 4, 4 * reg_max), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
                                 for x in ch)
        self.cv3 = nn.ModuleList(_class_branch(x, c3, nc, dw_cls) for x in ch)
        self.dfl = DFL(reg_max) if reg_max > 1 else nn.Identity()
        self._points: Dict[Tuple[Any, ...], Tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, x: List[torch.Tensor]) -> Any:
        for i in range(self.nl):
            x[i] = torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1)  # (B, 4 * reg_max + nc, H_i, W_i)
        if self.training:
            return x
        y = self.decode(x)
        return y if self.export else (y, x)

    def decode(self, maps: List[torch.Tensor]) -> torch.Tensor:
        """Per-level maps -> (B, N, 4 + nc): xywh in input pixels, sigmoid class scores (levels in order, each
        row-major over its cells)."""
        flat = torch.cat([m.flatten(2) for m in maps], 2)  # (B, no, N)
        box, cls = flat.split((4 * self.reg_max, self.nc), 1)
        points, strides = self._anchor_points(maps)  # (N, 2) cell centres in grid units, (N, 1)
        dist = self.dfl(box).transpose(1, 2)  # (B, N, 4) ltrb distances in grid units
        xywh = dist2bbox(dist, points, xywh=True) * strides
        return torch.cat((xywh, cls.sigmoid().transpose(1, 2)), 2)

    def _anchor_points(self, maps: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """box_dist.anchor_points for these maps, cached per map shapes, device and dtype."""
        ref = maps[0]
        key = (tuple(tuple(m.shape[2:]) for m in maps), ref.device, ref.dtype)
        if key not in self._points:
            self._points[key] = anchor_points(maps, self.stride.to(ref.device))
        return self._points[key]

    def reset_grids(self) -> None:
        """Drop cached anchor points (after strides change, or before tracing an export)."""
        self._points.clear()

    def initialize_biases(self) -> None:
        """Published priors: box logits 2.0; class logits log(5 / nc / (640 / stride)^2) (~5 objects per 640 image)."""
        with torch.no_grad():
            for box, cls, s in zip(self.cv2, self.cv3, self.stride.tolist()):
                box[-1].bias.fill_(2.0)
                cls[-1].bias[:self.nc].fill_(math.log(5 / self.nc / (640 / s) ** 2))

    def _apply(self, fn, *args, **kwargs):  # noqa: D401 - keep cached points consistent with device/dtype moves
        self._points = {}
        return super()._apply(fn, *args, **kwargs)


def _class_branch(c1: int, c3: int, nc: int, dw_cls: bool) -> nn.Sequential:
    if dw_cls:
        return nn.Sequential(nn.Sequential(DWConv(c1, c1, 3), Conv(c1, c3, 1)),
                             nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)), nn.Conv2d(c3, nc, 1))
    return nn.Sequential(Conv(c1, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1))
