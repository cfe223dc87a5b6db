"""PP-HGNetV2 blocks as YAML rows: `HGStem`, `HGBlock` (plain or light/depth-wise convs + aggregation) and
`DWDown` (the depth-wise stride-2 conv that opens stages 2-4).

Widths are HGNetV2's published ones (`fixed_out`-style rules): width_multiple does not scale these blocks. HGNetV2-B0
(stem 16/16; stages mid/out 16/64, 32/256, 64/512, 128/1024; 1, 1, 2, 1 blocks; 3 layers per block; light 5x5 blocks
in stages 3-4) is configs/yolov5s-hgnetv2.yaml. The learnable affine blocks (LAB) of PaddlePaddle's B0/B1 are not
included.
"""
from __future__ import annotations

from typing import Any, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from yolobone.models.backbones.common import ActArg, block_activation
from yolobone.models.blocks import Conv
from yolobone.models.registry import LayerContext, ModelConfigError, register_block, same_args


def _mid_out_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """[cm, c2, *rest] -> [c1, cm, c2, *rest]; output c2 taken literally (published widths)."""
    if len(args) < 2 or any(isinstance(a, bool) or not isinstance(a, int) for a in args[:2]):
        raise ModelConfigError(f"{ctx.name} expects [mid_channels, out_channels, ...] as integers, got {args}")
    return [ctx.c1, *args], int(args[1])


def _keep_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """[k, s] -> [c1, k, s]; output channels = input channels."""
    return [ctx.c1, *args], ctx.c1


_HG_DEFAULTS = (3, 6, False)  # k, n, light: HGBlock's defaults, to fill rows that stop early


def _residual_copies(args: List[Any]) -> List[Any]:
    """Blocks 2..n of a stage take c2 in and add their input (HGNetV2: only a stage's first block has no residual)."""
    c1, cm, c2, *rest = args
    k, n, light = list(rest[:3]) + list(_HG_DEFAULTS[len(rest[:3]):])
    return [c2, cm, c2, k, n, light, True, *rest[4:]]


@register_block(channels=_mid_out_channels)
class HGStem(nn.Module):
    """HGNetV2 stem (stride 4): 3x3/2 Conv to cm; a 2x2 Conv pair branch and a 2x2 max-pool branch, concatenated;
    3x3/2 Conv to cm; 1x1 Conv to c2."""

    def __init__(self, c1: int, cm: int, c2: int, act: ActArg = "ReLU"):
        super().__init__()
        a = block_activation(act)
        self.stem1 = Conv(c1, cm, 3, 2, act=a)
        self.stem2a = Conv(cm, cm // 2, 2, 1, p=0, act=a)
        self.stem2b = Conv(cm // 2, cm, 2, 1, p=0, act=a)
        self.stem3 = Conv(cm * 2, cm, 3, 2, act=a)
        self.stem4 = Conv(cm, c2, 1, 1, act=a)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=1, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(self.stem1(x), (0, 1, 0, 1))  # (B, cm, H/2 + 1, W/2 + 1): the 2x2 kernels keep H/2
        x2 = self.stem2b(F.pad(self.stem2a(x), (0, 1, 0, 1)))
        x1 = self.pool(x)
        return self.stem4(self.stem3(torch.cat((x1, x2), 1)))  # (B, c2, H/4, W/4)


class LightConv(nn.Module):
    """1x1 Conv + BN without activation, then a depth-wise k x k Conv + BN + activation."""

    def __init__(self, c1: int, c2: int, k: int, act: nn.Module):
        super().__init__()
        self.conv1 = Conv(c1, c2, 1, 1, act=False)
        self.conv2 = Conv(c2, c2, k, 1, g=c2, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


@register_block(channels=_mid_out_channels, repeat_args=_residual_copies)
class HGBlock(nn.Module):
    """HGNetV2 block: n chained k x k convs (light = 1x1 + depth-wise) of width cm; the input and every conv output
    are concatenated and aggregated by a 1x1 squeeze Conv to c2/2 and a 1x1 excitation Conv to c2; optional residual.

    YAML args [cm, c2, k, n, light, shortcut, act]; the `number` column stacks blocks, the 2nd.. with residuals.
    """

    def __init__(self, c1: int, cm: int, c2: int, k: int = 3, n: int = 6, light: bool = False,
                 shortcut: bool = False, act: ActArg = "ReLU"):
        super().__init__()
        a = block_activation(act)
        self.m = nn.ModuleList(
            (LightConv(c1 if i == 0 else cm, cm, k, a) if light else Conv(c1 if i == 0 else cm, cm, k, 1, act=a))
            for i in range(n))
        self.sc = Conv(c1 + n * cm, c2 // 2, 1, 1, act=a)  # squeeze
        self.ec = Conv(c2 // 2, c2, 1, 1, act=a)  # excitation
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [x]
        for m in self.m:
            y.append(m(y[-1]))
        out = self.ec(self.sc(torch.cat(y, 1)))  # (B, c2, H, W)
        return out + x if self.add else out


@register_block(channels=_keep_channels, repeat_args=same_args)
class DWDown(nn.Module):
    """Depth-wise k x k stride-s Conv + BN, no activation: HGNetV2's stage downsampling (channels unchanged)."""

    def __init__(self, c1: int, k: int = 3, s: int = 2):
        super().__init__()
        self.conv = Conv(c1, c1, k, s, g=c1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, C, H/s, W/s)
