"""TensorRT export (CUDA only): the ONNX file built into a serialized `<stem>.engine`, FP32, FP16 or INT8.

INT8 uses TensorRT's entropy calibrator fed with the data YAML's train images (the same sampling and letterbox as
the ONNX Runtime INT8 path). The file is a 4-byte little-endian length, ModelMeta as JSON, then the engine bytes.
tensorrt is not in requirements.txt (it needs CUDA); it is imported here only, with a one-line error when missing.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Optional

import torch

from yolobone.engine.backends.runtime import require
from yolobone.engine.core.backend import ModelMeta
from yolobone.engine.export.int8 import ImageCalibration, calibration_images
from yolobone.engine.export.prepare import ExportError

WORKSPACE = 4 << 30  # bytes of GPU scratch TensorRT may use while choosing kernels


def _calibrator(trt, data: str, meta: ModelMeta, n: int, cache: Path):
    """An IInt8EntropyCalibrator2 over n training images; the calibration cache is written beside the engine."""
    reader = ImageCalibration(calibration_images(data, meta.task, n), meta.task, tuple(meta.imgsz), meta.batch)

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.buffer: Optional[torch.Tensor] = None

        def get_batch_size(self) -> int:
            return meta.batch

        def get_batch(self, names):  # a device pointer per input, or None when the images are used up
            feed = reader.get_next()
            if feed is None:
                return None
            self.buffer = torch.from_numpy(next(iter(feed.values()))).cuda().contiguous()
            return [int(self.buffer.data_ptr())]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, blob) -> None:
            cache.write_bytes(bytes(blob))

    return Calibrator()


def export_engine(onnx_path: Path, path: Path, meta: ModelMeta, half: bool = False, int8_data: Optional[str] = None,
                  int8_images: int = 128) -> Path:
    """Build onnx_path into path (.engine) on the current CUDA device; ExportError names what failed."""
    if not torch.cuda.is_available():
        raise ExportError("--include engine needs a CUDA GPU (TensorRT builds for the GPU it runs on)")
    trt = require("tensorrt", "TensorRT export (--include engine; pip install tensorrt on a CUDA machine)")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)  # TensorRT 8 needs it, 10 ignores
    network = builder.create_network(0 if explicit is None else 1 << int(explicit))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors.splitlines()[0][:300] if errors else '?'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE)
    if half or int8_data:
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16, not FP32, where INT8 has no kernel
    if int8_data:
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, int8_data, meta, int8_images, path.with_suffix(".cache"))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path} (see the TensorRT log above)")
    blob = json.dumps(meta.to_dict()).encode()
    path.write_bytes(struct.pack("<I", len(blob)) + blob + bytes(serialized))
    return path
