"""Inference backends behind one interface; the weights' suffix picks the runtime.

    backend = load_backend("best.onnx", device="cpu")      # .pt, .onnx, .torchscript, .engine (CUDA), or a folder:
                                                            # *_openvino_model/, *_ncnn_model/, *_tflite_model/
    pred = backend(torch.zeros(1, 3, 640, 640))            # raw predictions: (B, N, 5 + nc) or (B, nc) logits
    backend.names, backend.stride, backend.task, backend.meta.imgsz
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn

from yolobone.engine.core.backend import Backend, BackendError, ModelMeta
from yolobone.engine.backends.torch_backend import TorchBackend, model_meta
from yolobone.utils.torch_utils import select_device

FORMATS = {".pt": "torch", ".onnx": "onnx", ".torchscript": "torchscript", ".xml": "openvino",
           ".tflite": "tflite", ".mlpackage": "coreml", ".engine": "tensorrt"}
OPENVINO_SUFFIX = "_openvino_model"
NCNN_SUFFIX = "_ncnn_model"
TFLITE_SUFFIX = "_tflite_model"


def backend_kind(weights: Union[str, os.PathLike]) -> str:
    """'torch', 'onnx', 'openvino' or 'torchscript' from the weights' name; BackendError for anything else."""
    p = Path(str(weights))
    if p.name.endswith(OPENVINO_SUFFIX) or (p.is_dir() and any(p.glob("*.xml"))):
        return "openvino"
    if p.name.endswith(NCNN_SUFFIX) or (p.is_dir() and any(p.glob("*.ncnn.param"))):
        return "ncnn"
    if p.name.endswith(TFLITE_SUFFIX) or (p.is_dir() and any(p.glob("*.tflite"))):
        return "tflite"
    kind = FORMATS.get(p.suffix.lower())
    if kind is None:
        raise BackendError(f"{weights}: unknown format; expected a .pt checkpoint, a .onnx file, a "
                           f"*{OPENVINO_SUFFIX}/ folder or a .torchscript file")
    return kind


def load_backend(weights: Union[str, os.PathLike, nn.Module], device: Union[str, torch.device] = "",
                 half: bool = False, fuse: bool = True, channels_last: Optional[bool] = None,
                 compile: str = "off") -> Backend:
    """The backend for `weights` (a path, or an in-memory model for the PyTorch backend) on `device`.

    compile ('auto' | 'on' | 'off') is the PyTorch backend's torch.compile choice (yolobone/engine/backends/compiled.py);
    the exported formats ignore it."""
    device = select_device(device)
    if isinstance(weights, nn.Module):
        return TorchBackend(weights, device, fuse=fuse, half=half, channels_last=channels_last, compile=compile)
    kind = backend_kind(weights)
    path = Path(str(weights))
    if kind == "coreml":
        raise BackendError(f"{weights}: CoreML predictions run only on macOS (Core ML); run the .mlpackage there "
                           f"with coremltools or Xcode, or export --include onnx/ncnn/tflite to run it here")
    if kind == "torch":
        return TorchBackend.load(path, device, half=half, fuse=fuse, channels_last=channels_last, compile=compile)
    if not path.exists():
        raise BackendError(f"{weights}: file not found")
    if kind == "tensorrt":
        from yolobone.engine.backends.tensorrt_backend import TensorRTBackend
        return TensorRTBackend(path, device)
    if kind == "onnx":
        from yolobone.engine.backends.onnx_backend import OnnxBackend
        return OnnxBackend(path, device)
    if kind == "openvino":
        from yolobone.engine.backends.openvino_backend import OpenVINOBackend
        return OpenVINOBackend(path, device)
    if kind == "ncnn":
        from yolobone.engine.backends.ncnn_backend import NcnnBackend
        return NcnnBackend(path, device)
    if kind == "tflite":
        from yolobone.engine.backends.tflite_backend import TFLiteBackend
        return TFLiteBackend(path, device)
    from yolobone.engine.backends.torchscript_backend import TorchScriptBackend
    return TorchScriptBackend(path, device)


__all__ = ["Backend", "BackendError", "ModelMeta", "TorchBackend", "backend_kind", "load_backend", "model_meta"]
