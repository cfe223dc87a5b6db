"""The CSP blocks of YOLOv8 and YOLO11: C2f, C3k2 (and its inner C3k), each registered with its channel rule.

C2f splits a 1x1 conv's output in two halves, runs n bottlenecks on the second half one after another and
concatenates both halves with every bottleneck's output before a final 1x1 conv; C3k2 is C2f whose inner blocks
are 3x3/3x3 bottlenecks with a halved middle, or (c3k) small C3 blocks.
"""
from __future__ import annotations

from typing import Any, List, Tuple

import torch
import torch.nn as nn

from yolobone.models.blocks import Bottleneck, Conv, _C3Base
from yolobone.models.psa import PSABlock
from yolobone.models.registry import LayerContext, register_block, scaled_out

_C3K_SCALES = ("m", "l", "x")  # Ultralytics turns C3k2's c3k on for these scales, whatever the row says


@register_block(channels=scaled_out, repeat="internal")
class C2f(nn.Module):
    """cv1 to 2c channels, split; n bottlenecks (3x3, 3x3) chained on the second half; cv2 fuses all (2 + n) c."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, g, e=1.0, k=(3, 3)) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).split((self.c, self.c), 1))  # 2 x (B, c, H, W)
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


@register_block(channels=scaled_out, repeat="internal")
class C3k(_C3Base):
    """C3 whose n inner bottlenecks use k x k kernels twice (YOLO11's inner block of C3k2)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5, k: int = 3):
        super().__init__(c1, c2, e)
        self.m = nn.Sequential(*(Bottleneck(self.c_, self.c_, shortcut, g, e=1.0, k=(k, k)) for _ in range(n)))


def _c3k2_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """scaled_out, and c3k switched on for the m/l/x rows of a `scales:` model (Ultralytics' rule)."""
    args, c2 = scaled_out(ctx, args)
    if ctx.scale in _C3K_SCALES:
        args[2:3] = [True]  # (c1, c2, c3k, ...): supplies c3k when the row omits it
    return args, c2


@register_block(channels=_c3k2_channels, repeat="internal")
class C3k2(C2f):
    """C2f with inner blocks chosen by c3k: C3k(n=2) when on, else a bottleneck (3x3, 3x3) halving its middle;
    attn adds a PSABlock after each bottleneck (Ultralytics' YOLO26 rows)."""

    def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False, e: float = 0.5, attn: bool = False,
                 g: int = 1, shortcut: bool = True):
        super().__init__(c1, c2, n, shortcut, g, e)
        self.m = nn.ModuleList(self._inner(c3k, attn, g, shortcut) for _ in range(n))

    def _inner(self, c3k: bool, attn: bool, g: int, shortcut: bool) -> nn.Module:
        if attn:
            return nn.Sequential(Bottleneck(self.c, self.c, shortcut, g, k=(3, 3)),
                                 PSABlock(self.c, attn_ratio=0.5, num_heads=max(self.c // 64, 1)))
        if c3k:
            return C3k(self.c, self.c, 2, shortcut, g)
        return Bottleneck(self.c, self.c, shortcut, g, k=(3, 3))
