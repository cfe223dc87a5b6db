"""Torchvision classifiers as YOLO backbones: `TorchVision` (any model by name), `MobileNetV2`, `ShuffleNetV2`.

Each returns its stride-8/16/32 feature maps as a list (channels found by `features.probe_features`, never typed);
later rows take one with `Index`::

    - [-1, 1, TorchVision, [efficientnet_b0]]   # 0: [P3/8, P4/16, P5/32]
    - [0, 1, Index, [0]]                         # 1-P3/8
    - [0, 1, Index, [1]]                         # 2-P4/16
    - [0, 1, Index, [2]]                         # 3-P5/32

A model without a stride-32 map (SqueezeNet) returns [P3/8, P4/16]; the YAML makes P5 with a downsampling row
(configs/yolov5s-squeezenet.yaml). Channels-last (Swin), odd-size (SqueezeNet, Inception) and transformer (ViT, MaxViT)
models are adapted so every map is NCHW on the exact H/s x W/s grid (features.py, tv_adapters.py).

TorchVision args: [model, weights=None, last_conv=False, kwargs={}]. `weights`: see yolobone/models/backbones/pretrained.py.
Widths are the network's own (width_multiple does not apply; MobileNetV2 has its own width_mult).

ultralytics' form `[c2, model, weights="DEFAULT", unwrap=True, truncate=2, split=False]` (an integer first) builds
with ultralytics' meaning: the model's children (the first child's children when it is a Sequential) minus the last
`truncate`, run in sequence; split returns [input, output of each child] for `Index [c2, i]` rows.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from yolobone.models.backbones.features import (FeatureSpec, as_nchw_grid, build_torchvision, build_without_init,
                                       feature_body, feature_pyramid, freeze_kwargs, probe_features, probe_unwrapped,
                                       run_unwrapped, unwrap_model)
from yolobone.models.backbones.pretrained import load_backbone_state, read_state_dict, resolve_weights
from yolobone.models.registry import Channels, LayerContext, ModelConfigError, register_block


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _torchvision_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], Channels]:
    """Native [model, weights, last_conv, kwargs] -> a channel per output; ultralytics' [c2, model, ...] -> checked."""
    if not args:
        raise ModelConfigError(f"{ctx.name} expects [model_name, weights, last_conv, kwargs], got no arguments")
    if _is_int(args[0]):
        return _ultralytics_channels(ctx, args)
    if not isinstance(args[0], str):
        raise ModelConfigError(f"{ctx.name} expects a torchvision model name first, got {args[0]!r}")
    if len(args) > 4:
        raise ModelConfigError(f"{ctx.name} expects at most [model_name, weights, last_conv, kwargs], got {args}")
    model, _, last_conv, kwargs = (list(args) + [None, False, None][len(args) - 1:])[:4]
    spec = probe_features(model, freeze_kwargs(kwargs), bool(last_conv))
    return [ctx.c1, *args], list(spec.channels)


def _ultralytics_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], Channels]:
    if len(args) < 2 or len(args) > 6:
        raise ModelConfigError(f"{ctx.name} (ultralytics form) expects [c2, model, weights, unwrap, truncate, split], "
                               f"got {args}")
    c2, model, weights, unwrap, truncate, split = (list(args) + [None, "DEFAULT", True, 2, False][len(args) - 1:])[:6]
    if not _is_int(truncate) or truncate < 0:
        raise ModelConfigError(f"{ctx.name} truncate must be a non-negative integer, got {truncate!r}")
    out = probe_unwrapped(model, (), bool(unwrap), truncate, bool(split))
    if isinstance(out, int) and out != c2:
        raise ModelConfigError(f"{ctx.name} declares c2={c2} but {model} (unwrap={unwrap}, truncate={truncate}) "
                               f"outputs {out} channels")
    channels: Channels = list(out) if isinstance(out, tuple) else out
    return [ctx.c1, model, weights, False, None, bool(unwrap), truncate, bool(split)], channels


@register_block(channels=_torchvision_channels)
class TorchVision(nn.Module):
    """A torchvision classification model cut at its stride-8/16/32 stages; forward returns [P3, P4, P5] (or [P3, P4]).

    Args:
        model: torchvision model name (`torchvision.models.list_models()`), e.g. resnet50, convnext_tiny.
        weights: None/False, True or a weights name (from the torch hub cache), or a local state-dict file.
        last_conv: keep a trailing 1x1 conv after the last stage (MobileNet/EfficientNet head conv).
        kwargs: extra builder arguments, e.g. {width_mult: 0.75}.
        unwrap, truncate, split: ultralytics' TorchVision options (unwrap=None means feature-map mode).
    """

    def __init__(self, c1: int, model: str, weights: Any = None, last_conv: bool = False,
                 kwargs: Optional[Dict[str, Any]] = None, unwrap: Optional[bool] = None, truncate: int = 2,
                 split: bool = False):
        super().__init__()
        if c1 != 3:
            raise ModelConfigError(f"torchvision {model} takes 3-channel images, but its input has {c1} channels")
        frozen = freeze_kwargs(kwargs)
        source = resolve_weights(model, weights)
        self.model_name = model
        self.spec: Optional[FeatureSpec] = None
        self.pyramid: Optional[nn.Module] = None  # ViT: strides 8/16/32 from its one map (not in the weights file)
        self.split = bool(split and unwrap)
        # with a weights file every tensor is replaced, so skip the (slow) random init
        net = build_without_init(model, frozen) if source is not None else build_torchvision(model, frozen)
        original_names = {id(t): n for n, t in net.state_dict(keep_vars=True).items()}  # before cutting
        if unwrap is None:
            self.spec = probe_features(model, frozen, bool(last_conv))
            self.body = feature_body(net, self.spec)
            self.pyramid = feature_pyramid(net, self.spec)
        else:
            self.body = unwrap_model(net, bool(unwrap), truncate)
        if source is not None:
            load_backbone_state(self.body, original_names, read_state_dict(source), f"{model} weights {source!r}")

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        if self.spec is None:
            return run_unwrapped(self.body, x, self.split)
        out = self.body(x)
        maps = list(out.values()) if isinstance(out, dict) else out
        if self.pyramid is not None:
            maps = self.pyramid(maps)
        return as_nchw_grid(maps, x.shape[-2:], self.spec)  # [(B, C3, H/8, W/8), (B, C4, H/16, W/16), ...]


def _mobilenet_v2(width_mult: float = 1.0, weights: Any = None, last_conv: bool = False):
    return "mobilenet_v2", {"width_mult": float(width_mult)}, weights, bool(last_conv)


def _shufflenet_v2(width: float = 1.0, weights: Any = None, last_conv: bool = False):
    return f"shufflenet_v2_x{float(width):.1f}".replace(".", "_"), None, weights, bool(last_conv)


def _family_rule(family):
    """Channel rule of a fixed torchvision family whose YAML args are the family's options."""
    def rule(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], Channels]:
        try:
            name, kwargs, _, last_conv = family(*args)
        except (TypeError, ValueError) as e:
            raise ModelConfigError(f"{ctx.name}: bad arguments {args} ({e})") from None
        spec = probe_features(name, freeze_kwargs(kwargs), last_conv)
        return [ctx.c1, *args], list(spec.channels)
    return rule


@register_block(channels=_family_rule(_mobilenet_v2))
class MobileNetV2(TorchVision):
    """torchvision MobileNetV2 (`width_mult`) -> features[:7], [7:14], [14:18]: 32/96/320 channels at width 1.0;
    last_conv=True also keeps the final 1x1 conv (1280 channels on P5). Args [width_mult, weights, last_conv]."""

    def __init__(self, c1: int, width_mult: float = 1.0, weights: Any = None, last_conv: bool = False):
        name, kwargs, weights, last_conv = _mobilenet_v2(width_mult, weights, last_conv)
        super().__init__(c1, name, weights, last_conv, kwargs)


@register_block(channels=_family_rule(_shufflenet_v2))
class ShuffleNetV2(TorchVision):
    """torchvision ShuffleNetV2 x`width` (0.5, 1.0, 1.5, 2.0) -> stage2/3/4 (48/96/192 at x0.5, 116/232/464 at x1.0);
    last_conv=True also keeps conv5 (1024 channels on P5). Args [width, weights, last_conv]."""

    def __init__(self, c1: int, width: float = 1.0, weights: Any = None, last_conv: bool = False):
        name, kwargs, weights, last_conv = _shufflenet_v2(width, weights, last_conv)
        super().__init__(c1, name, weights, last_conv, kwargs)
