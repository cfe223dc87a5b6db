"""Vision-transformer blocks on feature maps (C3TR, as used by yolov5s-transformer)."""
from __future__ import annotations

import torch
import torch.nn as nn

from yolobone.models.blocks import Conv, _C3Base
from yolobone.models.registry import register_block, scaled_out


class TransformerLayer(nn.Module):
    """Multi-head self-attention + a 2-layer feed-forward, both residual, without LayerNorm (YOLOv5's variant)."""

    def __init__(self, c: int, num_heads: int):
        super().__init__()
        self.q = nn.Linear(c, c, bias=False)
        self.k = nn.Linear(c, c, bias=False)
        self.v = nn.Linear(c, c, bias=False)
        self.ma = nn.MultiheadAttention(embed_dim=c, num_heads=num_heads)
        self.fc1 = nn.Linear(c, c, bias=False)
        self.fc2 = nn.Linear(c, c, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (HW, B, C)
        x = self.ma(self.q(x), self.k(x), self.v(x))[0] + x
        return self.fc2(self.fc1(x)) + x


@register_block(channels=scaled_out)
class TransformerBlock(nn.Module):
    """Optional 1x1 Conv to c2, a learned position embedding, then `num_layers` TransformerLayers."""

    def __init__(self, c1: int, c2: int, num_heads: int = 4, num_layers: int = 1):
        super().__init__()
        self.conv = Conv(c1, c2) if c1 != c2 else None
        self.linear = nn.Linear(c2, c2)
        self.tr = nn.Sequential(*(TransformerLayer(c2, num_heads) for _ in range(num_layers)))
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        b, _, h, w = x.shape
        p = x.flatten(2).permute(2, 0, 1)  # (HW, B, C)
        return self.tr(p + self.linear(p)).permute(1, 2, 0).reshape(b, self.c2, h, w)


@register_block(channels=scaled_out, repeat="internal")
class C3TR(_C3Base):
    """C3 whose inner block is a TransformerBlock with 4 heads and n layers."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__(c1, c2, e)
        self.m = TransformerBlock(self.c_, self.c_, 4, n)
