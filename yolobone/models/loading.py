"""Rebuild a model from a checkpoint written by utils.checkpoint (YAML + state dict, no pickled modules), and
convert a YOLOv5 v7.0 checkpoint to that form once (`yolobone convert`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Union

import torch

from yolobone.models.base import YAMLModel
from yolobone.models.registry import ModelConfigError
from yolobone.utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


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


def convert_checkpoint(src: Union[str, os.PathLike], dst: Union[str, os.PathLike, None] = None) -> Path:
    """Write a YOLOv5 v7.0 checkpoint once as ours (state dict + YAML, weights_only-loadable): dst defaults to
    `<stem>-yolobone.pt` beside src. The model is built from the file's YAML first, so a file that does not fit
    is refused before anything is written."""
    src = Path(src)
    ckpt = load_checkpoint(src)
    source_format = ckpt.pop("source_format", None)
    if source_format is None:
        raise CheckpointError(f"{src}: already a yolobone checkpoint (loads with weights_only=True); "
                              f"nothing to convert")
    model_from_checkpoint(ckpt, str(src))
    dst = Path(dst) if dst else src.with_name(f"{src.stem}-yolobone.pt")
    if dst.resolve() == src.resolve():
        raise CheckpointError(f"{dst}: the output would replace the {source_format} file it is converted from")
    ckpt["converted_from"] = {"format": source_format, "file": src.name}
    return save_checkpoint(ckpt, dst, step="convert")
