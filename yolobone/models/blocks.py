"""YOLOv5's convolutional blocks, each registered with its YAML channel rule.

Channel rules (see yolobone/models/registry.py): `scaled_out` blocks take YAML args [c2, *rest] and are built as
Block(c1, c2 * width_multiple, *rest); `repeat="internal"` blocks also receive the YAML `number` as their
third argument (C3(c1, c2, n, ...)), the others are repeated as a chain of n copies.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from yolobone.models.activation import ActivationSpec, default_activation, make_activation
from yolobone.models.registry import (LayerContext, chain_channels, concat_channels, register_block, same_channels,
                                      scaled_out)

IntOrPair = Union[int, Sequence[int]]

BN_EPS, BN_MOMENTUM = 1e-3, 0.03  # YOLOv5's BatchNorm settings


def yolo_bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def autopad(k: IntOrPair, p: Optional[IntOrPair] = None, d: int = 1) -> IntOrPair:
    """'Same' padding for kernel k and dilation d (stride 1 keeps the size; stride s divides it by s)."""
    if d > 1:
        k = d * (k - 1) + 1 if isinstance(k, int) else [d * (x - 1) + 1 for x in k]
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


def conv_out(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """scaled_out for Conv; YOLOv7 rows give the activation as the 6th YAML argument, where YOLOv5's Conv has its
    dilation, so an activation there moves to `act` with dilation 1 (YOLOv7's Conv has no dilation)."""
    args, c2 = scaled_out(ctx, args)
    if len(args) == 7 and isinstance(args[6], ActivationSpec):
        args = [*args[:6], 1, args[6]]
    return args, c2


@register_block(channels=conv_out, repeat_args=chain_channels)
class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> activation."""

    def __init__(self, c1: int, c2: int, k: IntOrPair = 1, s: IntOrPair = 1, p: Optional[IntOrPair] = None,
                 g: int = 1, d: int = 1, act: Any = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = yolo_bn(c2)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def forward_fuse(self, x: torch.Tensor) -> torch.Tensor:
        """Forward after `fuse()` folded the BatchNorm into the conv."""
        return self.act(self.conv(x))


@register_block(channels=scaled_out)
class DWConv(Conv):
    """Depth-wise convolution: groups = gcd(c1, c2)."""

    def __init__(self, c1: int, c2: int, k: IntOrPair = 1, s: IntOrPair = 1, d: int = 1, act: Any = True):
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), d=d, act=act)


@register_block(channels=scaled_out)
class DWConvTranspose2d(nn.ConvTranspose2d):
    """Depth-wise transposed convolution."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p1: int = 0, p2: int = 0):
        super().__init__(c1, c2, k, s, p1, p2, groups=math.gcd(c1, c2))


@register_block(channels=scaled_out)
class Focus(nn.Module):
    """Space-to-depth (four pixel-phase slices concatenated) then Conv: (B, C, H, W) -> (B, c2, H/2, W/2)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: Optional[int] = None, g: int = 1,
                 act: Any = True):
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, s, p, g, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(pixel_phases(x))


def pixel_phases(x: torch.Tensor) -> torch.Tensor:
    """The four 2x2 pixel phases stacked on channels: (B, C, H, W) -> (B, 4C, H/2, W/2)."""
    return torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1)


@register_block(channels=scaled_out)
class Bottleneck(nn.Module):
    """Conv to c2*e then Conv to c2 (kernels k: 1x1 then 3x3 in YOLOv5, 3x3 twice in C2f/C3k2), with a residual
    add when shortcut and c1 == c2."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5,
                 k: Tuple[IntOrPair, IntOrPair] = (1, 3)):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


@register_block(channels=scaled_out)
class CrossConv(nn.Module):
    """A (1 x k) then (k x 1) convolution pair, optionally residual."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, g: int = 1, e: float = 1.0,
                 shortcut: bool = False):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, (1, k), (1, s))
        self.cv2 = Conv(c_, c2, (k, 1), (s, 1), g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


@register_block(channels=scaled_out, repeat="internal")
class BottleneckCSP(nn.Module):
    """The original CSP bottleneck (YOLOv4/v5 up to v5.0): two paths, BN + activation on the concatenation."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv4 = Conv(2 * c_, c2, 1, 1)
        self.bn = yolo_bn(2 * c_)
        self.act = default_activation()
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y1 = self.cv3(self.m(self.cv1(x)))
        y2 = self.cv2(x)
        return self.cv4(self.act(self.bn(torch.cat((y1, y2), 1))))


class _C3Base(nn.Module):
    """C3 skeleton: cv1 -> inner blocks `m`, cv2 as the bypass, cv3 fuses the concatenation."""

    def __init__(self, c1: int, c2: int, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.c_ = c_
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


@register_block(channels=scaled_out, repeat="internal")
class C3(_C3Base):
    """CSP bottleneck with 3 convolutions (YOLOv5 v6.0+)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__(c1, c2, e)
        self.m = nn.Sequential(*(Bottleneck(self.c_, self.c_, shortcut, g, e=1.0) for _ in range(n)))


@register_block(channels=scaled_out, repeat="internal")
class C3x(_C3Base):
    """C3 with CrossConv inner blocks."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__(c1, c2, e)
        self.m = nn.Sequential(*(CrossConv(self.c_, self.c_, 3, 1, g, 1.0, shortcut) for _ in range(n)))


@register_block(channels=scaled_out)
class SPP(nn.Module):
    """Spatial pyramid pooling: parallel max-pools of several kernel sizes, concatenated."""

    def __init__(self, c1: int, c2: int, k: Sequence[int] = (5, 9, 13)):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * (len(k) + 1), c2, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


@register_block(channels=scaled_out)
class SPPF(nn.Module):
    """SPP-Fast: three chained k x k max-pools (same output as SPP(k, 2k-1, 3k-2), fewer operations)."""

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


@register_block(channels=scaled_out)
class C3SPP(_C3Base):
    """C3 whose inner block is an SPP."""

    def __init__(self, c1: int, c2: int, k: Sequence[int] = (5, 9, 13), n: int = 1, shortcut: bool = True,
                 g: int = 1, e: float = 0.5):
        super().__init__(c1, c2, e)
        self.m = SPP(self.c_, self.c_, k)


@register_block(channels=scaled_out)
class MixConv2d(nn.Module):
    """Mixed depth-wise convolution: channel groups with different kernel sizes, residual."""

    def __init__(self, c1: int, c2: int, k: Sequence[int] = (1, 3), s: int = 1, equal_ch: bool = True):
        super().__init__()
        n = len(k)
        if equal_ch:  # equal channels per group
            idx = torch.linspace(0, n - 1e-6, c2).floor()
            c_ = [int((idx == g).sum()) for g in range(n)]
        else:  # equal weight count per group
            b = [c2] + [0] * n
            a = np.eye(n + 1, n, k=-1)
            a -= np.roll(a, 1, axis=1)
            a *= np.array(k) ** 2
            a[0] = 1
            c_ = [int(round(v)) for v in np.linalg.lstsq(a, b, rcond=None)[0]]
        self.m = nn.ModuleList(nn.Conv2d(c1, int(c), kk, s, kk // 2, groups=math.gcd(c1, int(c)), bias=False)
                               for kk, c in zip(k, c_))
        self.bn = yolo_bn(c2)
        self.act = default_activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.bn(torch.cat([m(x) for m in self.m], 1)))


@register_block(channels=concat_channels)
class Concat(nn.Module):
    """Concatenate a list of tensors along `dimension` (channels by default)."""

    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, x: List[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.d)


def _space_rule(expand: bool):
    def rule(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
        gain = int(args[0]) if args else 2
        return list(args), ctx.c1 // gain ** 2 if expand else ctx.c1 * gain ** 2
    return rule


@register_block(channels=_space_rule(expand=False))
class Contract(nn.Module):
    """Space-to-depth by `gain`: (B, C, H, W) -> (B, C*g*g, H/g, W/g)."""

    def __init__(self, gain: int = 2):
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.gain
        x = x.view(b, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4).contiguous()
        return x.view(b, c * s * s, h // s, w // s)


@register_block(channels=_space_rule(expand=True))
class Expand(nn.Module):
    """Depth-to-space by `gain`: (B, C, H, W) -> (B, C/g/g, H*g, W*g)."""

    def __init__(self, gain: int = 2):
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.gain
        x = x.view(b, s, s, c // s ** 2, h, w).permute(0, 3, 4, 1, 5, 2).contiguous()
        return x.view(b, c // s ** 2, h * s, w * s)


@register_block(channels=same_channels)
class Identity(nn.Identity):
    """Pass-through (handy as a placeholder row that keeps layer indices of a pasted YAML)."""
