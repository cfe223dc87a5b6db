"""TFLite backend (LiteRT's Interpreter from ai-edge-litert) for `<stem>_tflite_model/` folders written by export.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from yolobone.engine.core.backend import Backend, BackendError, ModelMeta
from yolobone.engine.backends.runtime import cpu_threads, export_folder_files, require

META_FILE = "metadata.yaml"
MODEL_FILE = "model.tflite"


def tflite_files(path: Path) -> tuple:
    """(model.tflite, metadata.yaml) of a TFLite export folder or a .tflite file; BackendError when missing."""
    return export_folder_files(path, MODEL_FILE, (META_FILE,), "tflite")


class TFLiteBackend(Backend):
    kind = "tflite"

    def __init__(self, path: Path, device: torch.device):
        litert = require("ai_edge_litert.interpreter", f"{path} (TFLite backend)")
        if device.type != "cpu":
            raise BackendError(f"{path}: the TFLite backend runs on the CPU here, not on {device}")
        model, meta_file = tflite_files(path)
        meta = ModelMeta.from_dict(yaml.safe_load(meta_file.read_text()) or {}, str(meta_file))
        try:
            self.interpreter = litert.Interpreter(model_path=str(model), num_threads=cpu_threads())
            self.interpreter.allocate_tensors()
        except Exception as e:  # LiteRT raises ValueError/RuntimeError for foreign or damaged flatbuffers
            raise BackendError(f"{model}: LiteRT cannot load it ({str(e).strip().splitlines()[0][:200]})") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        super().__init__(meta, device, str(path))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        self.interpreter.set_tensor(self.input["index"], _to_input(x.cpu().numpy(), self.input))
        self.interpreter.invoke()
        return torch.from_numpy(_from_output(self.interpreter.get_tensor(self.output["index"]), self.output))


def _to_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """The float batch in the input's dtype: an INT8 model's integer input is quantized with its scale and zero
    point (x / scale + zero_point, rounded and clipped)."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return np.ascontiguousarray(x, dtype=np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _from_output(y: np.ndarray, detail: dict) -> np.ndarray:
    """An integer output dequantized ((y - zero_point) * scale); float outputs as float32."""
    if np.issubdtype(detail["dtype"], np.floating):
        return np.array(y, dtype=np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale
