"""YOLOv7's blocks (WongKinYiu/yolov7 `cfg/training/*.yaml`), each registered with its YAML channel rule.

Pooling rows keep their channels (MP, SP), ReOrg stacks the four pixel phases (4x channels), Shortcut adds two
inputs, and the channel blocks (DownC, SPPCSPC, RepConv) take [c2, ...] scaled like YOLOv5's Conv. RepConv trains
as three branches and `fuse_deploy()` (run by YAMLModel.fuse) turns it into one 3x3 convolution for deployment.
"""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from yolobone.models.activation import make_activation
from yolobone.models.blocks import Conv, autopad, pixel_phases, yolo_bn
from yolobone.models.registry import LayerContext, ModelConfigError, register_block, same_channels, scaled_out
from yolobone.utils.torch_utils import fuse_conv_and_bn


@register_block(channels=same_channels)
class MP(nn.Module):
    """k x k max-pool with stride k: (B, C, H, W) -> (B, C, H/k, W/k)."""

    def __init__(self, k: int = 2):
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


@register_block(channels=same_channels)
class SP(nn.Module):
    """'Same' k x k max-pool with stride s (SPP's pools as separate rows in yolov7-tiny)."""

    def __init__(self, k: int = 3, s: int = 1):
        super().__init__()
        self.m = nn.MaxPool2d(kernel_size=k, stride=s, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


def _reorg_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    if args:
        raise ModelConfigError(f"{ctx.name} takes no arguments, got {args}")
    return [], ctx.c1 * 4


@register_block(channels=_reorg_channels)
class ReOrg(nn.Module):
    """Space-to-depth by 2 without a convolution: (B, C, H, W) -> (B, 4C, H/2, W/2) (the P6 models' stem)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_phases(x)


def _shortcut_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """Shortcut: the sum of two inputs with equal channels."""
    if len(ctx.c_in) != 2 or ctx.c_in[0] != ctx.c_in[1] or isinstance(ctx.c_in[0], (list, tuple)):
        raise ModelConfigError(f"{ctx.name} adds two inputs with equal channels, got inputs with {ctx.c_in} channels")
    return list(args), ctx.c_in[0]


@register_block(channels=_shortcut_channels)
class Shortcut(nn.Module):
    """x[0] + x[1] (YOLOv7-E6E's residual between two ELAN branches); `dimension` is kept for YAML compatibility."""

    def __init__(self, dimension: int = 0):
        super().__init__()
        self.d = dimension

    def forward(self, x: List[torch.Tensor]) -> torch.Tensor:
        return x[0] + x[1]


@register_block(channels=scaled_out, repeat="internal")
class DownC(nn.Module):
    """Stride-k downsampling by two concatenated halves: 1x1 then 3x3/k conv, and k x k max-pool then 1x1 conv."""

    def __init__(self, c1: int, c2: int, n: int = 1, k: int = 2):
        super().__init__()
        self.cv1 = Conv(c1, c1, 1, 1)
        self.cv2 = Conv(c1, c2 // 2, 3, k)
        self.cv3 = Conv(c1, c2 // 2, 1, 1)
        self.mp = nn.MaxPool2d(kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.cv2(self.cv1(x)), self.cv3(self.mp(x))), 1)


@register_block(channels=scaled_out, repeat="internal")
class SPPCSPC(nn.Module):
    """CSP spatial pyramid pooling: a conv stack with parallel max-pools on one path, a 1x1 bypass, fused by cv7."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5,
                 k: Sequence[int] = (5, 9, 13)):
        super().__init__()
        c_ = int(2 * c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(c_, c_, 3, 1)
        self.cv4 = Conv(c_, c_, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k)
        self.cv5 = Conv(4 * c_, c_, 1, 1)
        self.cv6 = Conv(c_, c_, 3, 1)
        self.cv7 = Conv(2 * c_, c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.cv6(self.cv5(torch.cat([x1] + [m(x1) for m in self.m], 1)))
        return self.cv7(torch.cat((y1, self.cv2(x)), 1))


@register_block(channels=scaled_out)
class RepConv(nn.Module):
    """RepVGG block: 3x3 conv+BN, 1x1 conv+BN and (when shapes allow) a BN identity, summed, then the activation.

    `fuse_deploy()` folds the three branches into one 3x3 convolution with bias (deployment; same outputs in eval mode).
    """

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, p: Any = None, g: int = 1, act: Any = True):
        super().__init__()
        if k != 3 or autopad(k, p) != 1:
            raise ModelConfigError(f"RepConv needs kernel 3 with padding 1, got k={k}, p={p}")
        self.dense = Conv(c1, c2, 3, s, 1, g, act=False)
        self.pointwise = Conv(c1, c2, 1, s, 0, g, act=False)
        self.identity = yolo_bn(c1) if c1 == c2 and s == 1 else None
        self.act = make_activation(act)
        self.groups = g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "fused"):
            return self.act(self.fused(x))
        y = self.dense(x) + self.pointwise(x)
        return self.act(y + self.identity(x) if self.identity is not None else y)

    def fuse_deploy(self) -> None:
        """Replace the branches by one Conv2d computing their eval-mode sum (idempotent)."""
        if hasattr(self, "fused"):
            return
        fused = _conv_with_bn(self.dense)
        w, b = fused.weight.detach().clone(), fused.bias.detach().clone()
        one = _conv_with_bn(self.pointwise)
        w += F.pad(one.weight.detach(), [1, 1, 1, 1])
        b += one.bias.detach()
        if self.identity is not None:
            ident = _identity_kernel(self.dense.conv.in_channels, self.groups, w)
            ident = fuse_conv_and_bn(_conv_from_weight(ident, self.dense.conv), self.identity)
            w += ident.weight.detach()
            b += ident.bias.detach()
        fused.weight.copy_(w)
        fused.bias.copy_(b)
        self.fused = fused
        del self.dense, self.pointwise, self.identity


def _conv_with_bn(block: Conv) -> nn.Conv2d:
    """A Conv block's conv with its BatchNorm folded in (it may already be folded by YAMLModel.fuse)."""
    return fuse_conv_and_bn(block.conv, block.bn) if hasattr(block, "bn") else block.conv


def _identity_kernel(channels: int, groups: int, like: torch.Tensor) -> torch.Tensor:
    """The 3x3 grouped kernel whose convolution returns its input."""
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, 3, 3, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels, device=like.device)
    kernel[idx, idx % per_group, 1, 1] = 1.0
    return kernel


def _conv_from_weight(weight: torch.Tensor, like: nn.Conv2d) -> nn.Conv2d:
    conv = nn.Conv2d(like.in_channels, like.out_channels, 3, like.stride, 1, groups=like.groups, bias=False)
    conv = conv.to(weight.device, weight.dtype).requires_grad_(False)
    conv.weight.copy_(weight)
    return conv
