"""Rebuild a model from a checkpoint written by utils.checkpoint (YAML + state dict, no pickled modules)."""
from __future__ import annotations

import os
from typing import Any, Dict, Union

import torch

from yolobone.models.base import YAMLModel
from yolobone.models.registry import ModelConfigError
from yolobone.utils.checkpoint import CheckpointError, load_checkpoint


def model_from_checkpoint(ckpt: Dict[str, Any], source: str = "<checkpoint>", key: str = "model") -> YAMLModel:
    """Build the model described by ckpt['model_yaml'] and load ckpt[key] strictly."""
    from yolobone.models.backbones.pretrained import no_pretrained
    from yolobone.models.yolo import build_model

    try:
        with no_pretrained():  # the checkpoint holds every weight; never re-read ImageNet files here
            model = build_model(ckpt["model_yaml"], nc=ckpt.get("nc"))
    except ModelConfigError as e:
        raise CheckpointError(f"{source}: its model YAML does not build here: {e}") from None
    state = ckpt.get(key)
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: entry {key!r} is not a state dict")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = "; ".join(f"{label}: {items[:3]}{' ...' if len(items) > 3 else ''}"
                           for label, items in (("missing", missing), ("unexpected", unexpected),
                                                ("shape mismatch", wrong)) if items)
        raise CheckpointError(f"{source}: weights do not match the model built from its YAML ({detail})")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    names = ckpt.get("names")
    if names:
        model.names = list(names.values()) if isinstance(names, dict) else list(names)
    model.task = ckpt.get("task", "detect")
    stride = ckpt.get("stride")  # written by the model's own framework (YOLOv5): ours must measure the same
    if stride is not None and [float(s) for s in stride] != [float(s) for s in getattr(model, "stride", [])]:
        raise CheckpointError(f"{source}: the model built from its YAML has strides "
                              f"{[int(s) for s in model.stride]}, the checkpoint says {[int(s) for s in stride]}")
    for m in model.modules():  # grids cached during the build belong to the pre-load anchors
        if hasattr(m, "reset_grids"):
            m.reset_grids()
    return model


def load_model(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu", fuse: bool = False,
               eval: bool = True) -> YAMLModel:
    """Load a checkpoint file into a ready model (eval mode and optionally fused by default)."""
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, str(path))
    model.to(device)
    if fuse:
        model.fuse()
    return model.eval() if eval else model
