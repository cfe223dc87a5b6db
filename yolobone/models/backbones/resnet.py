"""ResNet written as YAML rows: `ResStem`, `BasicBlock` (ResNet18/34) and `ResBottleneck` (ResNet50/101/152).

Widths are ResNet's published ones: these blocks use `fixed_out`, so `width_multiple` does not scale them (it still
scales the YOLOv5 neck). The YAML `number` column repeats a block as a chain in which only the first copy is strided
and projects its shortcut, as in ResNet's stages::

    - [-1, 1, ResStem, [64]]           # 0-P2/4: 7x7/2 conv + 3x3/2 max-pool
    - [-1, 2, BasicBlock, [64, 1]]     # 1
    - [-1, 2, BasicBlock, [128, 2]]    # 2-P3/8
"""
from __future__ import annotations

from typing import Any, List

import torch
import torch.nn as nn

from yolobone.models.backbones.common import ActArg, block_activation
from yolobone.models.blocks import Conv
from yolobone.models.registry import fixed_out, register_block


def _first_copy_strided(args: List[Any]) -> List[Any]:
    """Args of copies 2..n in a stage: input = output channels and stride 1 (only the first block downsamples)."""
    c2 = args[1]
    return [c2, c2, 1, *args[3:]]


def _shortcut(c1: int, c2: int, s: int) -> nn.Module:
    """Identity when shapes match, else ResNet's 1x1 conv + BN projection (strided like the block)."""
    if s == 1 and c1 == c2:
        return nn.Identity()
    return Conv(c1, c2, 1, s, act=False)


@register_block(channels=fixed_out)
class ResStem(nn.Module):
    """ResNet stem: k x k stride-2 Conv + BN + activation, then a 3x3 stride-2 max-pool (stride 4 in total)."""

    def __init__(self, c1: int, c2: int = 64, k: int = 7, act: ActArg = "ReLU", pool: bool = True):
        super().__init__()
        self.conv = Conv(c1, c2, k, 2, act=block_activation(act))
        self.pool = nn.MaxPool2d(3, 2, 1) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))  # (B, c2, H/4, W/4)


@register_block(channels=fixed_out, repeat_args=_first_copy_strided)
class BasicBlock(nn.Module):
    """ResNet18/34 block: 3x3 conv (stride s) + BN + act, 3x3 conv + BN, add the shortcut, act.

    The shortcut is the identity when s == 1 and c1 == c2, otherwise a strided 1x1 conv + BN projection.
    `act` defaults to ResNet's ReLU; True uses the model's activation.
    """

    def __init__(self, c1: int, c2: int, s: int = 1, act: ActArg = "ReLU"):
        super().__init__()
        a = block_activation(act)
        self.cv1 = Conv(c1, c2, 3, s, act=a)
        self.cv2 = Conv(c2, c2, 3, 1, act=False)
        self.shortcut = _shortcut(c1, c2, s)
        self.act = a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.cv2(self.cv1(x)) + self.shortcut(x))  # (B, c2, H/s, W/s)


@register_block(channels=fixed_out, repeat_args=_first_copy_strided)
class ResBottleneck(nn.Module):
    """ResNet50+ block: 1x1 conv to c2/e, 3x3 conv (stride s, as torchvision's ResNet v1.5), 1x1 conv to c2, add
    the shortcut (identity or strided 1x1 projection), act. c2 is the block's output width (256 ... 2048)."""

    def __init__(self, c1: int, c2: int, s: int = 1, e: int = 4, act: ActArg = "ReLU"):
        super().__init__()
        if c2 % e:
            raise ValueError(f"ResBottleneck output channels {c2} must be divisible by the expansion {e}")
        a = block_activation(act)
        c_ = c2 // e
        self.cv1 = Conv(c1, c_, 1, 1, act=a)
        self.cv2 = Conv(c_, c_, 3, s, act=a)
        self.cv3 = Conv(c_, c2, 1, 1, act=False)
        self.shortcut = _shortcut(c1, c2, s)
        self.act = a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.cv3(self.cv2(self.cv1(x))) + self.shortcut(x))  # (B, c2, H/s, W/s)
