"""Freezing layers for `train.py --freeze`: YOLOv5's layer-count meaning, 'backbone', and frozen BatchNorm.

    --freeze 10         layers model.0 ... model.9 (YOLOv5's meaning of a single number)
    --freeze 0 1 2      exactly those layers (a list of several numbers)
    --freeze backbone   every row under the YAML's `backbone:` key (for the backbone configs: the feature extractor,
                        without SPPF and the neck)

Frozen BatchNorm layers must also stop updating their running statistics: call `set_frozen_bn_eval(model)` after every
`model.train()`.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import torch.nn as nn

from yolobone.utils.errors import YoloboneError

FreezeSpec = Union[str, int, Sequence[Union[int, str]], None]
_BN = nn.modules.batchnorm._BatchNorm


class FreezeSpecError(YoloboneError, ValueError):
    """A --freeze value that names no valid layers."""


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside DataParallel/DistributedDataParallel wrappers."""
    return model.module if isinstance(getattr(model, "module", None), nn.Module) else model


def backbone_layer_count(model: nn.Module) -> int:
    """Index of the first neck layer: the number of rows under the model YAML's `backbone:` key."""
    m = _unwrap(model)
    rows = (getattr(m, "yaml", None) or {}).get("backbone")
    layers = getattr(m, "model", None)
    if not isinstance(rows, list) or not rows or not isinstance(layers, nn.Sequential):
        raise FreezeSpecError(f"{type(m).__name__} has no YAML 'backbone' rows to freeze")
    return min(len(rows), len(layers))


def freeze_indices(model: nn.Module, spec: FreezeSpec) -> List[int]:
    """The layer indices a --freeze value selects (see the module docstring); [] freezes nothing."""
    m = _unwrap(model)
    n_layers = len(m.model)
    items = list(spec) if isinstance(spec, (list, tuple)) else [] if spec in (None, "") else [spec]
    if any(isinstance(x, str) and x.strip().lower() == "backbone" for x in items):
        if len(items) != 1:
            raise FreezeSpecError(f"--freeze backbone cannot be combined with layer numbers, got {list(items)}")
        return list(range(backbone_layer_count(m)))
    numbers = []
    for x in items:
        try:
            if isinstance(x, bool) or isinstance(x, float):
                raise ValueError
            numbers.append(int(x))
        except (TypeError, ValueError):
            raise FreezeSpecError(f"--freeze expects 'backbone', a layer count or layer indices, got {x!r}") from None
    if any(i < 0 for i in numbers):
        raise FreezeSpecError(f"--freeze layer numbers must be >= 0, got {numbers}")
    indices = list(range(numbers[0])) if len(numbers) == 1 else sorted(set(numbers))
    if indices and indices[-1] >= n_layers:
        raise FreezeSpecError(f"--freeze {spec} reaches layer {indices[-1]} but the model has layers 0..{n_layers - 1}")
    return indices


def freeze_layers(model: nn.Module, spec: FreezeSpec) -> List[str]:
    """Set requires_grad False for every parameter under model.<i>. for the selected layers (all others True, as
    YOLOv5 does); returns the names of the frozen parameters."""
    m = _unwrap(model)
    prefixes = tuple(f"model.{i}." for i in freeze_indices(m, spec))
    frozen = []
    for name, p in m.named_parameters():
        p.requires_grad = not name.startswith(prefixes) if prefixes else True
        if not p.requires_grad:
            frozen.append(name)
    return frozen


def set_frozen_bn_eval(model: nn.Module) -> int:
    """Put frozen BatchNorm layers in eval mode (running statistics stay fixed); returns how many. A BatchNorm is
    frozen when its affine parameters are, or (affine=False) when every parameter of its YAML layer is. Call after
    model.train()."""
    m = _unwrap(model)
    frozen_norms = set()
    for layer in getattr(m, "model", []):
        params = list(layer.parameters())
        if params and not any(p.requires_grad for p in params):
            frozen_norms.update(id(x) for x in layer.modules() if isinstance(x, _BN))
    count = 0
    for module in m.modules():
        if isinstance(module, _BN):
            own = list(module.parameters(recurse=False))
            if id(module) in frozen_norms or (own and not any(p.requires_grad for p in own)):
                module.eval()
                count += 1
    return count
