"""Fold BatchNorm into the convolution before it inside wrapped torchvision backbones (inference only).

YOLOv5's `Conv` blocks are folded by `YAMLModel.fuse()` itself. torchvision models hold their conv + BN pairs in
three shapes, and only where the data flow is certain is a pair folded:
  - consecutive children of an `nn.Sequential` that keeps Sequential's forward (Conv2dNormActivation, ShuffleNetV2
    branches, ResNet downsample paths);
  - consecutive entries of a `StageFeatures` chain (a backbone cut into stages, run in chain order);
  - `conv<k>` / `bn<k>` attributes of torchvision's ResNet blocks, whose forward applies bn<k> right after conv<k>.
The folded BatchNorm is replaced by `nn.Identity`, so the module's own forward still runs unchanged.
"""
from __future__ import annotations

from typing import Iterator, List, Tuple

import torch.nn as nn

from yolobone.models.backbones.features import StageFeatures, replace_module
from yolobone.utils.torch_utils import fuse_conv_and_bn

RESNET_BLOCK_MODULE = "torchvision.models.resnet"  # BasicBlock / Bottleneck: out = bn_k(conv_k(...)) for every k


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and bn.num_features == conv.out_channels)


def _pairs(module: nn.Module) -> Iterator[Tuple[str, str]]:
    """(conv path, bn path) of the pairs `module` itself runs back to back (paths relative to `module`)."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        names = [n for n, _ in module.named_children()]
        yield from zip(names, names[1:])
    elif isinstance(module, StageFeatures):
        yield from zip(module.chain, module.chain[1:])
    elif type(module).__module__ == RESNET_BLOCK_MODULE:
        children = dict(module.named_children())
        for name in children:
            if name.startswith("conv") and f"bn{name[4:]}" in children:
                yield name, f"bn{name[4:]}"


def fold_batchnorms(model: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d (see the module docstring); returns how many.

    Pass one layer at a time, never a YAML model's layer list: its rows run by their `from` index, not in order."""
    todo: List[Tuple[nn.Module, str, str]] = [
        (owner, a, b) for owner in model.modules() for a, b in _pairs(owner)
        if _foldable(owner.get_submodule(a), owner.get_submodule(b))]
    for owner, a, b in todo:
        replace_module(owner, a, fuse_conv_and_bn(owner.get_submodule(a), owner.get_submodule(b)))
        replace_module(owner, b, nn.Identity())
    return len(todo)
