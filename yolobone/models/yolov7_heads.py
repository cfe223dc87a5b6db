"""YOLOv7's implicit-knowledge heads: IDetect (Detect with a learned additive input and multiplicative output term
per level) and IAuxDetect (IDetect plus auxiliary output convolutions that only training reads, for the P6 models).

Box decoding is our Detect's: the maths is YOLOv5's. `fuse_deploy()` (run by YAMLModel.fuse) folds the implicit terms
into the output convolutions, so the deployed head computes a plain Detect.
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from yolobone.models.heads import Detect, _detect_channels
from yolobone.models.registry import LayerContext, ModelConfigError, register_block


def _implicit_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """ImplicitA/M [mean, std]: the input's channels come first; output channels are unchanged."""
    return [ctx.c1, *args], ctx.c1


class _Implicit(nn.Module):
    """A learned per-channel vector (1, C, 1, 1) drawn from N(mean, std)."""

    def __init__(self, channel: int, mean: float, std: float):
        super().__init__()
        self.implicit = nn.Parameter(torch.empty(1, channel, 1, 1))
        nn.init.normal_(self.implicit, mean=mean, std=std)


@register_block(channels=_implicit_channels)
class ImplicitA(_Implicit):
    """x + a learned per-channel vector (initialised around 0)."""

    def __init__(self, channel: int, mean: float = 0.0, std: float = 0.02):
        super().__init__(channel, mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit + x


@register_block(channels=_implicit_channels)
class ImplicitM(_Implicit):
    """x * a learned per-channel vector (initialised around 1)."""

    def __init__(self, channel: int, mean: float = 1.0, std: float = 0.02):
        super().__init__(channel, mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit * x


@register_block(channels=_detect_channels)
class IDetect(Detect):
    """Detect whose level i computes im_i * conv_i(x + ia_i); after `fuse_deploy()` just conv_i(x)."""

    def __init__(self, nc: int = 80, anchors: Sequence[Sequence[float]] = (), ch: Sequence[int] = (),
                 inplace: bool = True):
        super().__init__(nc, anchors, ch[:len(anchors)], inplace)
        self.ia = nn.ModuleList(ImplicitA(x) for x in ch[:self.nl])
        self.im = nn.ModuleList(ImplicitM(self.no * self.na) for _ in ch[:self.nl])

    def level_conv(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if self.ia is None:
            return self.m[i](x)
        return self.im[i](self.m[i](self.ia[i](x)))

    @torch.no_grad()
    def fuse_deploy(self) -> None:
        """Fold ia into each conv's bias (W @ a) and im into its weight and bias (idempotent)."""
        if self.ia is None:
            return
        for conv, ia, im in zip(self.m, self.ia, self.im):
            scale = im.implicit.view(-1)
            bias = conv.bias + conv.weight.flatten(1) @ ia.implicit.view(-1)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias.copy_(bias * scale)
        self.ia = self.im = None


def _aux_detect_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """IAuxDetect: `from` lists the main levels, then one auxiliary input per level (twice the anchor levels)."""
    half = len(ctx.c_in) // 2
    if len(ctx.c_in) % 2:
        raise ModelConfigError(f"{ctx.name} needs the main inputs then as many auxiliary inputs, got "
                               f"{len(ctx.c_in)} inputs in `from`")
    args, _ = _detect_channels(dataclasses.replace(ctx, c_in=ctx.c_in[:half]), args)
    args[2] = list(ctx.c_in)
    return args, 0


@register_block(channels=_aux_detect_channels)
class IAuxDetect(IDetect):
    """IDetect on the first nl inputs plus plain 1x1 convs `m2` on the next nl (the lead/auxiliary heads of
    YOLOv7's P6 training models). Training returns main + auxiliary maps; eval and export only the main head."""

    def __init__(self, nc: int = 80, anchors: Sequence[Sequence[float]] = (), ch: Sequence[int] = (),
                 inplace: bool = True):
        super().__init__(nc, anchors, ch, inplace)
        if len(ch) != 2 * self.nl:
            raise ModelConfigError(f"IAuxDetect expects {2 * self.nl} inputs for {self.nl} anchor levels, "
                                   f"got {len(ch)}")
        self.m2 = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch[self.nl:])

    def forward(self, x: List[torch.Tensor]) -> Any:
        if not self.training:
            return super().forward(x[:self.nl])
        aux = []
        for i, conv in enumerate(self.m2):
            bs, _, ny, nx = x[self.nl + i].shape
            aux.append(conv(x[self.nl + i]).view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return super().forward(x[:self.nl]) + aux

    def initialize_biases(self, class_freq: Optional[torch.Tensor] = None) -> None:
        """Detect's priors on both the main and the auxiliary convolutions."""
        super().initialize_biases(class_freq)
        main = self.m
        try:
            self.m = self.m2
            super().initialize_biases(class_freq)
        finally:
            self.m = main
