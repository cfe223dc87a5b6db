"""GhostNet blocks (Han et al., 2020) as used by yolov5s-ghost."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from yolobone.models.blocks import Conv, DWConv, _C3Base
from yolobone.models.registry import register_block, scaled_out


@register_block(channels=scaled_out)
class GhostConv(nn.Module):
    """Half the output channels from a regular conv, the other half from a cheap 5x5 depth-wise conv on them."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1, act: Any = True):
        super().__init__()
        c_ = c2 // 2
        self.cv1 = Conv(c1, c_, k, s, None, g, act=act)
        self.cv2 = Conv(c_, c_, 5, 1, None, c_, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        return torch.cat((y, self.cv2(y)), 1)


@register_block(channels=scaled_out)
class GhostBottleneck(nn.Module):
    """GhostConv -> (depth-wise stride-2 conv) -> GhostConv, with an identity or conv shortcut."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1):
        super().__init__()
        c_ = c2 // 2
        self.conv = nn.Sequential(
            GhostConv(c1, c_, 1, 1),
            DWConv(c_, c_, k, s, act=False) if s == 2 else nn.Identity(),
            GhostConv(c_, c2, 1, 1, act=False))
        self.shortcut = (nn.Sequential(DWConv(c1, c1, k, s, act=False), Conv(c1, c2, 1, 1, act=False))
                         if s == 2 else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.shortcut(x)


@register_block(channels=scaled_out, repeat="internal")
class C3Ghost(_C3Base):
    """C3 with GhostBottleneck inner blocks."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__(c1, c2, e)
        self.m = nn.Sequential(*(GhostBottleneck(self.c_, self.c_) for _ in range(n)))
