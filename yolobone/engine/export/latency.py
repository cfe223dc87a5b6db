"""Latency of a model on a deployment runtime: export it (batch 1, static shape), load the backend, time it."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Tuple

import torch
import torch.nn as nn

from yolobone.engine.backends import load_backend
from yolobone.utils.profiling import median_ms

RUNTIMES = ("onnx", "openvino")  # backends timed from an export ('torch' is the model itself)


def runtime_name(kind: str) -> str:
    """'ONNX Runtime 1.x' / 'OpenVINO 2026.x' (the runtime and version a latency was measured with)."""
    if kind == "onnx":
        import onnxruntime
        return f"ONNX Runtime {onnxruntime.__version__}"
    import openvino
    return f"OpenVINO {openvino.__version__.split('-')[0]}"


def export_latency_ms(model: nn.Module, imgsz: int, kind: str, folder: Path, runs: int = 20,
                      warmup: int = 3) -> Tuple[float, str]:
    """Median batch-1 CPU latency (ms) of `model` exported to `kind`, and the runtime's name; model is untouched."""
    from yolobone.engine.backends.torch_backend import model_meta
    from yolobone.engine.export.onnx_format import export_onnx
    from yolobone.engine.export.openvino_format import export_openvino
    from yolobone.engine.export.prepare import dummy_input, export_ready

    folder.mkdir(parents=True, exist_ok=True)
    m = export_ready(copy.deepcopy(model), torch.device("cpu"), half=False)
    x = dummy_input(1, (imgsz, imgsz), torch.device("cpu"), half=False)
    meta = model_meta(m, imgsz=(imgsz, imgsz), dynamic=False)
    path = export_onnx(m, x, folder / "model.onnx", meta)
    if kind == "openvino":
        path = export_openvino(path, folder / "model_openvino_model", meta)
    backend = load_backend(path, "cpu")
    x = torch.rand(1, 3, imgsz, imgsz)
    return median_ms(lambda: backend(x), runs, warmup), runtime_name(kind)
