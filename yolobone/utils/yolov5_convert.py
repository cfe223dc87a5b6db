"""A YOLOv5 v7.0 or Ultralytics checkpoint's records (utils/pickled_checkpoint.py) as our checkpoint dict: the state
dict (fp32), the model YAML (its `yaml` dict, or rows read back from the layers for a YOLOv5 classification model),
names, nc, stride and anchors. `source_format: yolov5` (or `ultralytics`) marks the result; `yolobone convert`
writes it once as a file of ours.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import torch

from yolobone.utils.pickled_checkpoint import FORMAT_NAMES, ForeignCheckpointError, Record, module_tensors, read_records
from yolobone.utils.yolov5_rows import classify_yaml

SOURCE_FORMAT = "yolov5"  # the "source_format" entry of a converted checkpoint
# Ultralytics models other than detection (segment, pose, obb, classify, world, RT-DETR) have heads we do not build
ULTRALYTICS_MODELS = ("ultralytics.nn.tasks.DetectionModel",)


def _names(model: Record, nc: int) -> List[str]:
    names = model.state.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, (list, tuple)) or len(names) != nc:
        return [str(i) for i in range(nc)]
    return [str(n) for n in names]


def _model_record(ckpt: Any, where: str, fmt: str = SOURCE_FORMAT) -> Record:
    """ckpt['ema'] when present (what YOLOv5's and Ultralytics' detect and val run), else ckpt['model']."""
    label = FORMAT_NAMES[fmt]
    if isinstance(ckpt, Record):  # torch.save(model) itself
        return ckpt
    if not isinstance(ckpt, dict):
        raise ForeignCheckpointError(f"{where}: expected a {label} checkpoint dict, found {type(ckpt).__name__}")
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, Record):
        raise ForeignCheckpointError(f"{where}: no {label} model under 'ema' or 'model' (keys {sorted(ckpt)[:8]})")
    return model


def _head_record(model: Record) -> Optional[Record]:
    layers = (model.state.get("_modules") or {}).get("model")
    last = list((layers.state.get("_modules") or {}).values())[-1] if isinstance(layers, Record) else None
    return last if isinstance(last, Record) else None


def convert_records(ckpt: Any, where: str) -> Dict[str, Any]:
    """Our checkpoint dict (model, model_yaml, names, nc, task, stride) from a YOLOv5 checkpoint's records."""
    model = _model_record(ckpt, where)
    kind = model.qualname.rsplit(".", 1)[1]
    state = module_tensors(model, where)
    if kind == "ClassificationModel":  # no yaml dict: rows read back from the layers; no strides to check
        nc = int(model.state.get("nc") or 0)
        cfg, task, stride = classify_yaml(model, nc, where), "classify", None
    else:
        cfg, task, stride = model.state.get("yaml"), "detect", model.state.get("stride")
        if not isinstance(cfg, dict) or "backbone" not in cfg or "head" not in cfg:
            raise ForeignCheckpointError(f"{where}: the YOLOv5 {kind} holds no model YAML dict with backbone and head")
        nc = int(model.state.get("nc") or cfg.get("nc") or 0)
    out = {"model": state, "model_yaml": {**cfg, "nc": nc}, "nc": nc, "names": _names(model, nc), "task": task,
           "epoch": -1, "source_format": SOURCE_FORMAT,
           "stride": [float(s) for s in stride.tolist()] if isinstance(stride, torch.Tensor) else None}
    head = _head_record(model)
    if task == "detect" and head is not None and isinstance((head.state.get("_buffers") or {}).get("anchors"),
                                                            torch.Tensor):
        out["anchors"] = head.state["_buffers"]["anchors"].float()  # (levels, anchors, 2) in stride units
    opt = ckpt.get("opt") if isinstance(ckpt, dict) else None
    if isinstance(opt, dict):
        out["yolov5_opt"] = {k: v for k, v in opt.items() if isinstance(v, (str, int, float, bool, type(None)))}
    return out


def convert_ultralytics_records(ckpt: Any, where: str) -> Dict[str, Any]:
    """Our checkpoint dict from an Ultralytics detection checkpoint's records: its `yaml` dict (Ultralytics' own rows,
    with `scale`) builds here, and its module names equal ours, so the state dict loads as it is."""
    model = _model_record(ckpt, where, "ultralytics")
    if model.qualname not in ULTRALYTICS_MODELS:
        raise ForeignCheckpointError(f"{where}: an Ultralytics {model.qualname.rsplit('.', 1)[1]}; only detection "
                                     f"models ({', '.join(ULTRALYTICS_MODELS)}) are read")
    cfg, stride = model.state.get("yaml"), model.state.get("stride")
    if not isinstance(cfg, dict) or "backbone" not in cfg or "head" not in cfg:
        raise ForeignCheckpointError(f"{where}: the Ultralytics DetectionModel holds no model YAML dict with backbone "
                                     f"and head")
    nc = int(model.state.get("nc") or cfg.get("nc") or 0)
    cfg = {k: v for k, v in cfg.items() if k not in ("yaml_file", "channels")}  # bookkeeping, not architecture
    out = {"model": module_tensors(model, where), "model_yaml": {**cfg, "nc": nc}, "nc": nc,
           "names": _names(model, nc), "task": "detect", "epoch": -1, "source_format": "ultralytics",
           "stride": [float(s) for s in stride.tolist()] if isinstance(stride, torch.Tensor) else None}
    args = ckpt.get("train_args") if isinstance(ckpt, dict) else None
    if isinstance(args, dict):
        out["ultralytics_args"] = {k: v for k, v in args.items() if isinstance(v, (str, int, float, bool, type(None)))}
    return out


def load_yolov5_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
    """A YOLOv5 v7.0 checkpoint file as our checkpoint dict, read without running anything it names."""
    return convert_records(read_records(path), str(path))


def load_ultralytics_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
    """An Ultralytics detection checkpoint (yolo11n.pt, a run's best.pt) as our checkpoint dict, likewise."""
    return convert_ultralytics_records(read_records(path, "ultralytics"), str(path))
