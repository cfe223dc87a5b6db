"""YOLO11's position-sensitive attention: Attention, PSABlock and the C2PSA block, each registered with its rule."""
from __future__ import annotations

from typing import Any, List, Tuple

import torch
import torch.nn as nn

from yolobone.models.blocks import Conv
from yolobone.models.registry import LayerContext, ModelConfigError, register_block, same_args, scaled_out


def _width_first(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """Blocks that keep their width: args [*rest] -> [c1, *rest]; output c1."""
    return [ctx.c1, *args], ctx.c1


@register_block(channels=_width_first, repeat_args=same_args)
class Attention(nn.Module):
    """Multi-head self-attention over all H*W positions of a feature map, queries/keys of head_dim * attn_ratio
    channels, plus a depth-wise 3x3 positional term on the values; 1x1 convs in and out (no activation)."""

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ModelConfigError(f"Attention: {dim} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim ** -0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w)
        q, k, v = qkv.split((self.key_dim, self.key_dim, self.head_dim), 2)  # (B, heads, d, HW) each
        weights = (q.transpose(-2, -1) @ k * self.scale).softmax(-1)  # (B, heads, HW, HW): query x key
        out = (v @ weights.transpose(-2, -1)).view(b, c, h, w)
        return self.proj(out + self.pe(v.reshape(b, c, h, w)))


@register_block(channels=_width_first, repeat_args=same_args)
class PSABlock(nn.Module):
    """Attention then a 1x1 feed-forward (2x expansion), each with a residual add when shortcut."""

    def __init__(self, c: int, attn_ratio: float = 0.5, num_heads: int = 4, shortcut: bool = True):
        super().__init__()
        self.attn = Attention(c, num_heads=num_heads, attn_ratio=attn_ratio)
        self.ffn = nn.Sequential(Conv(c, c * 2, 1), Conv(c * 2, c, 1, act=False))
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


def _c2psa_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """scaled_out, and the output must equal the input (the block adds nothing to the width)."""
    args, c2 = scaled_out(ctx, args)
    if args[0] != c2:
        raise ModelConfigError(f"{ctx.name} keeps its width: its input has {args[0]} channels but the row asks "
                               f"for {c2}")
    return args, c2


@register_block(channels=_c2psa_channels, repeat="internal")
class C2PSA(nn.Module):
    """cv1 to 2c, split; n PSABlocks (c // 64 heads) on the second half; cv2 fuses both halves back to c1."""

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5):
        super().__init__()
        if c1 != c2:
            raise ModelConfigError(f"C2PSA needs c1 == c2, got {c1} and {c2}")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, attn_ratio=0.5, num_heads=max(self.c // 64, 1)) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), 1)
        return self.cv2(torch.cat((a, self.m(b)), 1))
