"""Adapters that let torchvision's transformer classifiers feed P3/P4/P5 (used by `features.py` and `TorchVision`).

- ViT has one token map (stride = its patch, 16 or 32; 14 counts as 16) and is built for one image size. `ViTMap` runs
  its encoder on any image whose sides are multiples of that stride, interpolating the position embeddings to the
  token grid (the class token is kept, as in pretraining), and returns the tokens as an NCHW map. `SimplePyramid`
  makes strides 8/16/32 from that one map as ViTDet does: 2x transposed convs up, identity, max-pooling down.
- MaxViT attends within 7x7 windows and a 7x7 grid at every stage, and torchvision fixes those partitions for the size
  it was built with. `SquarePadded` pads the image to a square multiple of 32 x 7 = 224 px, sets every attention
  layer's grid for that size, and crops the maps back to the image (like letterbox padding).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from yolobone.utils.errors import YoloboneError


class ImageSizeError(YoloboneError, ValueError):
    """An image size the backbone cannot take."""


def nearest_power_of_two(n: float) -> int:
    return 2 ** max(0, round(math.log2(n)))


def is_vit(model: nn.Module) -> bool:
    from torchvision.models.vision_transformer import VisionTransformer
    return isinstance(model, VisionTransformer)


def sizes_hint(stride: int, count: int = 4) -> str:
    """'multiples of 16 (e.g. 224, 256, 320, 640)': a few sizes that are also multiples of the detector's 32."""
    base = [n for n in (224, 256, 320, 640) if n % stride == 0][:count] or [stride * k for k in (8, 16, 20)]
    return f"multiples of {stride} (e.g. {', '.join(map(str, base))})"


class ViTMap(nn.Module):
    """A torchvision VisionTransformer without its heads, on any image size that fits its patch grid:
    (B, 3, H, W) -> (B, hidden_dim, H/s, W/s), s = the patch size rounded to a power of two (vit_h_14: images are
    resized by 14/16 first, so each 14 px patch covers 16 px of the image)."""

    def __init__(self, vit: nn.Module, name: str):
        super().__init__()
        self.conv_proj = vit.conv_proj  # original attribute names: state dicts and weights files line up
        self.class_token = vit.class_token
        self.encoder = vit.encoder
        self.patch = int(vit.patch_size)
        self.stride = nearest_power_of_two(self.patch)
        self.model_name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if h % self.stride or w % self.stride:
            raise ImageSizeError(f"torchvision {self.model_name} takes image sides that are "
                                 f"{sizes_hint(self.stride)}, got {h}x{w}")
        gh, gw = h // self.stride, w // self.stride
        if self.patch != self.stride:
            x = F.interpolate(x, size=(gh * self.patch, gw * self.patch), mode="bilinear", align_corners=False)
        tokens = self.conv_proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(b, -1, -1), tokens], dim=1)
        enc = self.encoder
        tokens = enc.ln(enc.layers(enc.dropout(tokens + self.position_embedding(gh, gw))))
        return tokens[:, 1:].transpose(1, 2).reshape(b, -1, gh, gw)

    def position_embedding(self, gh: int, gw: int) -> torch.Tensor:
        """The learned embeddings (class token + a square grid) with the grid resized bicubically to gh x gw."""
        pos = self.encoder.pos_embedding
        n = math.isqrt(pos.shape[1] - 1)
        if (gh, gw) == (n, n):
            return pos
        grid = pos[:, 1:].reshape(1, n, n, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)


def _upsample(c: int, steps: int) -> nn.Module:
    """`steps` 2x transposed convs, each halving the channels, with BatchNorm + GELU between them (ViTDet's stride-4
    branch, with BatchNorm in place of its channel LayerNorm)."""
    layers: List[nn.Module] = []
    for i in range(steps):
        if i:
            layers += [nn.BatchNorm2d(c), nn.GELU()]
        layers.append(nn.ConvTranspose2d(c, c // 2, 2, 2))
        c //= 2
    return nn.Sequential(*layers)


class SimplePyramid(nn.Module):
    """ViTDet's simple feature pyramid: one (B, C, H/s, W/s) map -> a map per stride in `strides`: transposed convs
    for finer strides (C/2 per 2x), the map itself for s, max-pooling for coarser ones. Channel rule: out_channels()."""

    def __init__(self, c: int, stride: int, strides: Sequence[int]):
        super().__init__()
        branches = []
        for s in strides:
            if s < stride:
                branches.append(_upsample(c, int(math.log2(stride // s))))
            elif s == stride:
                branches.append(nn.Identity())
            else:
                branches.append(nn.MaxPool2d(s // stride, s // stride))
        self.branches = nn.ModuleList(branches)
        self.c, self.stride, self.strides = c, stride, tuple(strides)

    def out_channels(self) -> List[int]:
        return [self.c * min(s, self.stride) // self.stride for s in self.strides]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [branch(x) for branch in self.branches]


# ---- MaxViT -------------------------------------------------------------------------------------------------

def window_unit(model: nn.Module) -> Optional[int]:
    """MaxViT's image side unit: 32 x its partition size (224 for maxvit_t); None for other models."""
    from torchvision.models.maxvit import MaxVit
    return 32 * int(model.partition_size) if isinstance(model, MaxVit) else None


def set_partition_grids(model: nn.Module, side: int) -> None:
    """Point every attention layer of MaxViT stage k (`model.blocks[k]`, stride 2**(k+2)) at the token grid of a
    side x side image; torchvision reads the grid, not the input, to partition."""
    from torchvision.models.maxvit import PartitionAttentionLayer
    for stage, block in enumerate(model.blocks.children()):
        g = side // 2 ** (stage + 2)
        for m in block.modules():
            if isinstance(m, PartitionAttentionLayer):
                size = m.p if m.partition_type == "window" else m.g  # the partition size (7)
                m.grid_size, m.n_partitions = (g, g), g // size
                if m.partition_type == "grid":
                    m.p = m.n_partitions
                else:
                    m.g = m.n_partitions


class SquarePadded(nn.Module):
    """Runs a MaxViT feature body on the image zero-padded (right, bottom) to a square multiple of `unit` px and crops
    each returned map back to ceil(H/s) x ceil(W/s)."""

    def __init__(self, body: nn.Module, unit: int):
        super().__init__()
        self.body = body
        self.unit = unit

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        h, w = x.shape[-2:]
        side = self.unit * math.ceil(max(h, w) / self.unit)
        set_partition_grids(self.body, side)
        maps = self.body(F.pad(x, (0, side - w, 0, side - h)))
        return [m[..., :math.ceil(h * m.shape[-2] / side), :math.ceil(w * m.shape[-1] / side)] for m in maps]
