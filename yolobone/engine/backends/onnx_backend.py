"""ONNX Runtime backend for .onnx files written by export.py (metadata in the model's metadata_props)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from yolobone.engine.core.backend import Backend, BackendError, ModelMeta, fallback_meta
from yolobone.engine.backends.runtime import cpu_threads, require

META_KEY = "yolobone"  # metadata_props key holding ModelMeta as JSON


def meta_from_props(props: Dict[str, str], where: str) -> Optional[ModelMeta]:
    """ModelMeta from an ONNX model's metadata_props; None when the file carries none of ours."""
    if META_KEY not in props:
        return None
    try:
        return ModelMeta.from_dict(json.loads(props[META_KEY]), where)
    except json.JSONDecodeError as e:
        raise BackendError(f"{where}: metadata {META_KEY!r} is not valid JSON ({e})") from None


class OnnxBackend(Backend):
    kind = "onnx"

    def __init__(self, path: Path, device: torch.device):
        ort = require("onnxruntime", f"{path} (ONNX Runtime backend)")
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError(f"{path}: device {device} needs onnxruntime-gpu (pip install onnxruntime-gpu); "
                                   f"this onnxruntime has {ort.get_available_providers()}")
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = cpu_threads()
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise BackendError(f"{path}: ONNX Runtime cannot load it ({str(e).strip().splitlines()[0][:200]})") \
                from None
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        props = self.session.get_modelmeta().custom_metadata_map
        meta = meta_from_props(props, str(path))
        if meta is None:
            meta = foreign_meta(str(path), inp.shape, out.shape)
        super().__init__(meta, device, str(path))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run([self.output_name], {self.input_name: x.cpu().numpy().astype(self.input_dtype)})[0]
        return torch.from_numpy(y.astype(np.float32, copy=False)).to(self.device)


def foreign_meta(where: str, input_shape: List, output_shape: List) -> ModelMeta:
    """Guess the task and class count from the output shape of a model exported elsewhere."""
    if len(output_shape) == 3 and isinstance(output_shape[2], int) and output_shape[2] > 5:
        task, nc = "detect", output_shape[2] - 5
    elif len(output_shape) == 2 and isinstance(output_shape[1], int):
        task, nc = "classify", output_shape[1]
    else:
        raise BackendError(f"{where}: no yolobone metadata and output shape {output_shape} is neither (B, N, 5 + nc) "
                           f"detections nor (B, nc) logits; export it with `python export.py`")
    b, h, w = (input_shape + [None] * 4)[0], (input_shape + [None] * 4)[2], (input_shape + [None] * 4)[3]
    dynamic = not all(isinstance(v, int) for v in (b, h, w))
    imgsz = (h, w) if not dynamic else (640, 640)
    return fallback_meta(where, task, nc, imgsz, b if isinstance(b, int) else 1, dynamic)
