"""TensorRT backend for `.engine` files written by export.py --include engine (CUDA only)."""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Tuple

import torch

from yolobone.engine.core.backend import Backend, BackendError, ModelMeta
from yolobone.engine.backends.runtime import require


def read_engine_file(path: Path) -> Tuple[ModelMeta, bytes]:
    """(ModelMeta, serialized engine) from our .engine layout: uint32 length, JSON metadata, engine bytes."""
    raw = path.read_bytes()
    n = struct.unpack("<I", raw[:4])[0] if len(raw) >= 4 else -1
    try:
        meta = json.loads(raw[4:4 + n].decode()) if 0 < n < len(raw) else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not isinstance(meta, dict):
        raise BackendError(f"{path}: not an engine written by export.py (no metadata header); export it with "
                           f"`python export.py --include engine`")
    return ModelMeta.from_dict(meta, str(path)), raw[4 + n:]


class TensorRTBackend(Backend):
    kind = "tensorrt"

    def __init__(self, path: Path, device: torch.device):
        if device.type != "cuda":
            raise BackendError(f"{path}: a TensorRT engine runs on a CUDA device (--device 0), not on {device}")
        trt = require("tensorrt", f"{path} (TensorRT backend; pip install tensorrt on a CUDA machine)")
        meta, blob = read_engine_file(path)
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(blob)
        if self.engine is None:
            raise BackendError(f"{path}: TensorRT cannot deserialize it (built by another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = lambda n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT  # noqa: E731
        self.input_name = next(n for n in names if is_input(n))
        self.output_name = next(n for n in names if not is_input(n))
        self.input_half = self.engine.get_tensor_dtype(self.input_name) == trt.DataType.HALF
        super().__init__(meta, device, str(path))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, dtype=torch.float16 if self.input_half else torch.float32).contiguous()
        self.context.set_input_shape(self.input_name, tuple(x.shape))
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), device=self.device,
                          dtype=torch.float16 if self.input_half else torch.float32)
        self.context.set_tensor_address(self.input_name, x.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendError(f"{self.source}: TensorRT execution failed")
        stream.synchronize()
        return out.float()
