"""timm models as YOLO backbones: `Timm` builds any timm model that supports `features_only` and returns its maps::

    - [-1, 1, Timm, [convnext_atto]]      # 0: [P3/8, P4/16, P5/32]
    - [0, 1, Index, [0]]                  # 1: P3/8
    - [0, 1, Index, [1]]                  # 2: P4/16
    - [0, 1, Index, [2]]                  # 3: P5/32

Args [model, weights=False, out_indices=None, kwargs={}]. Stages, strides and channels come from timm's
`feature_info` (read from a meta-device build: no memory, no init): by default the last stage at each of the strides
8, 16 and 32; `out_indices` picks timm's feature indices instead (e.g. [1, 2, 3, 4] adds P2). Widths are the
model's own (width_multiple does not apply). `weights`: false; true (timm's default pretrained weights, from the
Hugging Face or torch hub cache, downloaded there on first use with the hash checked); or a local file (a state dict of the timm model, `.pth`,
`.bin` or `.safetensors`). Channels-last outputs (Swin) are returned channels-first.
"""
from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from yolobone.models.backbones.feature_info import TARGET_STRIDES, FeatureInfo
from yolobone.models.backbones.features import FrozenKwargs, freeze_kwargs
from yolobone.models.backbones.pretrained import (SCRATCH_HINT, LoadedWeights, PretrainedWeightsError,
                                                 load_mapped_state, looks_like_path, pretrained_enabled,
                                                 read_state_dict)
from yolobone.models.registry import Channels, LayerContext, ModelConfigError, register_block
from yolobone.utils.download import DownloadError, download_file, download_from_hub, hash_prefix_of

@dataclass(frozen=True)
class TimmFeatures(FeatureInfo):
    """The feature maps a Timm row returns: the FeatureInfo (from timm's own feature_info) and timm's feature indices
    that select them."""

    out_indices: Tuple[int, ...] = ()


def _check_name(name: Any) -> str:
    import timm
    if not isinstance(name, str) or not timm.is_model(name.split(".", 1)[0]):
        close = difflib.get_close_matches(str(name), timm.list_models(), n=3, cutoff=0.6)
        hint = f"closest: {', '.join(close)}" if close else "see timm.list_models()"
        raise ModelConfigError(f"unknown timm model {name!r} ({hint})")
    return name


def create_features(name: str, kwargs: FrozenKwargs = (), out_indices: Optional[Tuple[int, ...]] = None,
                    in_chans: int = 3) -> nn.Module:
    """timm.create_model(name, features_only=True, pretrained=False, ...) with one-line errors."""
    import timm
    _check_name(name)
    extra = dict(kwargs)
    if out_indices is not None:
        extra["out_indices"] = tuple(out_indices)
    try:
        return timm.create_model(name, pretrained=False, features_only=True, in_chans=in_chans, **extra)
    except Exception as e:  # timm raises many types for unsupported options; all are config errors of this row
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "features_only" in text or "feature" in text.lower():
            raise ModelConfigError(f"timm model {name!r} does not support features_only ({text}); pick a model with "
                                   f"a feature pyramid (convnext_*, resnet*, efficientnet_*, mobilenetv3_*, ...)") \
                from None
        raise ModelConfigError(f"timm {name}(features_only=True, **{extra}) failed: {text}") from None


def _build_on_meta(name: str, kwargs: FrozenKwargs, out_indices: Optional[Tuple[int, ...]],
                   in_chans: int = 3) -> nn.Module:
    try:
        with torch.device("meta"):
            return create_features(name, kwargs, out_indices, in_chans)
    except (RuntimeError, NotImplementedError):  # a builder that computes with tensors: build on the CPU
        return create_features(name, kwargs, out_indices, in_chans)


@functools.lru_cache(maxsize=64)
def timm_features(name: str, kwargs: FrozenKwargs = (), out_indices: Optional[Tuple[int, ...]] = None) -> TimmFeatures:
    """Which of timm model `name`'s feature maps a Timm row returns (see the module docstring)."""
    info = _build_on_meta(name, kwargs, out_indices).feature_info
    indices, channels, strides = tuple(info.out_indices), tuple(info.channels()), tuple(info.reduction())
    modules = tuple(info.module_name())
    pick = list(range(len(indices)))
    if out_indices is None:
        last = {s: i for i, s in enumerate(strides)}
        missing = [s for s in TARGET_STRIDES if s not in last]
        if missing:
            raise ModelConfigError(f"timm {name}: its features are at strides {list(strides)}, none at {missing[0]}; "
                                   f"it cannot feed P3/P4/P5 (pass out_indices to choose other maps)")
        pick = [last[s] for s in TARGET_STRIDES]
    return TimmFeatures(channels=tuple(channels[i] for i in pick), strides=tuple(strides[i] for i in pick),
                        modules=tuple(modules[i] for i in pick), out_indices=tuple(indices[i] for i in pick))


def _out_indices(value: Any) -> Optional[Tuple[int, ...]]:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value or \
            any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise ModelConfigError(f"Timm out_indices must be a list of integers (timm feature indices), got {value!r}")
    return tuple(value)


def _timm_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], Channels]:
    """[model, weights, out_indices, kwargs] -> one channel count per returned map."""
    if not args or len(args) > 4:
        raise ModelConfigError(f"{ctx.name} expects [model_name, weights, out_indices, kwargs], got {args}")
    model, _, out_indices, kwargs = (list(args) + [False, None, None][len(args) - 1:])[:4]
    spec = timm_features(_check_name(model), freeze_kwargs(kwargs), _out_indices(out_indices))
    return [ctx.c1, *args], list(spec.channels)


# ---- pretrained weights ----------------------------------------------------------------------------------------

def timm_weights_file(name: str, weights: Any) -> Optional[Path]:
    """The YAML `weights` value -> a local file (None: random init). True means timm's default pretrained weights:
    found in the Hugging Face or torch hub cache, else downloaded (the Hub first, as timm does, then timm's URL)."""
    if weights is None or weights is False or (isinstance(weights, str) and weights.lower() in ("", "none", "false")):
        return None
    if not pretrained_enabled():
        return None
    if isinstance(weights, str) and looks_like_path(weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(f"timm {name}: weights file {path} not found")
        return path
    if weights is not True:
        raise PretrainedWeightsError(f"timm {name}: weights must be true/false or a file path, got {weights!r} (a "
                                     f"pretrained tag goes in the model name, e.g. convnext_atto.d2_in1k)")
    from timm.models import get_pretrained_cfg
    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise PretrainedWeightsError(f"timm {name}: timm knows no pretrained weights for it; pass a local file path")
    return _cached_timm_file(cfg) or _download_timm_file(name, cfg)


def _hub_filename(cfg: Any) -> str:
    return cfg.hf_hub_filename or "model.safetensors"


def _url_cache_path(cfg: Any) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)


def _cached_timm_file(cfg: Any) -> Optional[Path]:
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache
        for filename in dict.fromkeys((_hub_filename(cfg), "model.safetensors", "pytorch_model.bin")):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    if cfg.url and _url_cache_path(cfg).is_file():
        return _url_cache_path(cfg)
    return None


def _download_timm_file(name: str, cfg: Any) -> Path:
    """From the Hugging Face Hub, else timm's URL into the torch hub cache; one line naming both when both fail."""
    why, ways = [], []
    if cfg.hf_hub_id:
        try:
            return download_from_hub(cfg.hf_hub_id, _hub_filename(cfg))
        except DownloadError as e:
            why.append(str(e))
        ways.append(f"fetch https://huggingface.co/{cfg.hf_hub_id}/resolve/main/{_hub_filename(cfg)} into the "
                    f"Hugging Face cache (huggingface-cli download {cfg.hf_hub_id})")
    if cfg.url:
        path = _url_cache_path(cfg)
        try:
            return download_file(cfg.url, path, hash_prefix_of(path.name))
        except DownloadError as e:
            why.append(str(e))
        ways.insert(0, f"put {path.name} (from {cfg.url}) in {path.parent}/")
    raise PretrainedWeightsError(f"timm {name}: pretrained weights are not cached and could not be downloaded "
                                 f"({'; '.join(dict.fromkeys(why))}): {' or '.join(ways)}, {SCRATCH_HINT}")


def _read_weights(path: Path) -> Dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as e:  # a corrupt or foreign file
            raise PretrainedWeightsError(f"{path}: cannot read as safetensors ({str(e).splitlines()[0]})") from None
    return read_state_dict(path)


def _normalized(key: str) -> str:
    """timm's feature wrappers flatten `stages.0` into `stages_0` and FeatureGetterNet nests the model as `model.`;
    compare names with both spellings folded."""
    return key.replace("_", ".")


def load_timm_state(module: nn.Module, state: Dict[str, torch.Tensor], source: str) -> Tuple[List[str], int]:
    """Copy `state` (keys of the full timm model) into a features_only `module` (load_mapped_state): a module key is
    found as it is, without FeatureGetterNet's `model.` prefix, or with `_` and `.` folded. Returns (loaded module
    keys, number of file tensors not used)."""
    by_norm: Dict[str, Optional[str]] = {}
    for k in state:
        n = _normalized(k)
        by_norm[n] = None if n in by_norm else k  # None: two file keys fold to the same name

    def key_of(name: str, _: torch.Tensor) -> Optional[str]:
        candidates = [name] + ([name[len("model."):]] if name.startswith("model.") else [])
        return next((c for c in candidates if c in state), None) or \
            next((by_norm.get(_normalized(c)) for c in candidates if by_norm.get(_normalized(c))), None)

    return load_mapped_state(module, state, key_of, source)


@register_block(channels=_timm_channels)
class Timm(nn.Module):
    """A timm model with features_only=True; forward returns its selected feature maps, channels-first.

    Args:
        model: a timm model name (`timm.list_models()`), optionally with a pretrained tag (convnext_atto.d2_in1k).
        weights: false, true (timm's pretrained weights, downloaded once into the cache) or a local file.
        out_indices: timm feature indices to return (default: the last stage at strides 8, 16 and 32).
        kwargs: extra timm.create_model arguments, e.g. {drop_path_rate: 0.1}.
    """

    def __init__(self, c1: int, model: str, weights: Any = False, out_indices: Optional[Sequence[int]] = None,
                 kwargs: Optional[Dict[str, Any]] = None):
        super().__init__()
        frozen = freeze_kwargs(kwargs)
        self.spec = timm_features(_check_name(model), frozen, _out_indices(out_indices))
        self.model_name = model
        path = timm_weights_file(model, weights)
        # with a weights file every tensor is replaced, so skip the (slow) random init
        build = _build_on_meta if path is not None else create_features
        self.body = build(model, frozen, self.spec.out_indices, c1)
        self.channels_last = str(getattr(self.body, "output_fmt", "NCHW")).endswith("NHWC")
        self.loaded_weights: Optional[LoadedWeights] = None
        if path is not None:
            keys, unused = load_timm_state(self.body, _read_weights(path), f"timm {model} weights {path}")
            self.loaded_weights = LoadedWeights(f"file {path}", [f"body.{k}" for k in keys], unused)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = self.body(x)  # [(B, C, H/s, W/s) for each selected stride]
        return [o.permute(0, 3, 1, 2).contiguous() for o in outs] if self.channels_last else list(outs)
