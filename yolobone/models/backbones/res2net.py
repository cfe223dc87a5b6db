"""Res2Net blocks for YOLOv5 YAMLs: `Bottle2neck` and `C3_Res2Block` (a C3 whose inner blocks are Bottle2neck).

Both scale with width_multiple like C3 (`scaled_out`), so `yolov5s-res2net.yaml` is yolov5s.yaml with C3 replaced.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from yolobone.models.activation import default_activation
from yolobone.models.blocks import Conv, _C3Base
from yolobone.models.registry import register_block, scaled_out


@register_block(channels=scaled_out)
class Bottle2neck(nn.Module):
    """Res2Net bottleneck with `scale` hierarchical groups.

    1x1 Conv c1 -> w*scale (w = floor(c2 * base_width / 64)), split into `scale` groups of w channels; groups
    0..scale-2 each pass a 3x3 Conv after adding the previous group's output (group 0 adds nothing); the last group is
    passed through unchanged; concat, 1x1 Conv + BN to c2, add the input when shortcut and c1 == c2, activation.
    Res2Net's expansion-4 bottleneck uses planes = c2 / 4 in the width formula; here c2 takes that role because,
    like YOLOv5's Bottleneck inside C3, the block keeps c1 == c2.
    """

    def __init__(self, c1: int, c2: int, shortcut: bool = True, base_width: int = 26, scale: int = 4):
        super().__init__()
        if scale < 2:
            raise ValueError(f"Bottle2neck scale must be >= 2 (groups), got {scale}")
        w = int(math.floor(c2 * base_width / 64.0))
        if w < 1:
            raise ValueError(f"Bottle2neck width floor({c2} * {base_width} / 64) is 0; raise base_width or c2")
        self.width, self.scale = w, scale
        self.cv1 = Conv(c1, w * scale, 1, 1)
        self.convs = nn.ModuleList(Conv(w, w, 3, 1) for _ in range(scale - 1))
        self.cv3 = Conv(w * scale, c2, 1, 1, act=False)
        self.add = shortcut and c1 == c2
        self.act = default_activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.cv1(x).split(self.width, 1)  # scale x (B, w, H, W)
        outs, y = [], None
        for conv, g in zip(self.convs, groups):
            y = conv(g if y is None else y + g)
            outs.append(y)
        outs.append(groups[-1])  # the last group is passed through
        y = self.cv3(torch.cat(outs, 1))  # (B, c2, H, W)
        return self.act(y + x if self.add else y)


@register_block(channels=scaled_out, repeat="internal")
class C3_Res2Block(_C3Base):  # noqa: N801 - the YAML name users know
    """C3 with n Bottle2neck inner blocks; same arguments as C3 plus Res2Net's base_width and scale."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5,
                 base_width: int = 26, scale: int = 4):
        super().__init__(c1, c2, e)
        if g != 1:
            raise ValueError(f"C3_Res2Block does not support grouped convolutions, got g={g}")
        self.m = nn.Sequential(*(Bottle2neck(self.c_, self.c_, shortcut, base_width, scale) for _ in range(n)))
