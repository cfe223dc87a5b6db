"""OpenVINO backend for `<stem>_openvino_model/` folders written by export.py (IR .xml/.bin + metadata.yaml)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from yolobone.engine.core.backend import Backend, BackendError, ModelMeta
from yolobone.engine.backends.onnx_backend import foreign_meta
from yolobone.engine.backends.runtime import cpu_threads, require

META_FILE = "metadata.yaml"


def openvino_files(path: Path) -> tuple:
    """(xml, metadata.yaml) for an export folder or an .xml file; BackendError when the IR is not there."""
    xml = path if path.suffix == ".xml" else next(iter(sorted(path.glob("*.xml"))), None) if path.is_dir() else None
    if xml is None or not xml.is_file() or not xml.with_suffix(".bin").is_file():
        raise BackendError(f"{path}: expected an OpenVINO export folder with <name>.xml and <name>.bin "
                           f"(python export.py --include openvino)")
    return xml, xml.parent / META_FILE


class OpenVINOBackend(Backend):
    kind = "openvino"

    def __init__(self, path: Path, device: torch.device):
        ov = require("openvino", f"{path} (OpenVINO backend)")
        if device.type != "cpu":
            raise BackendError(f"{path}: the OpenVINO backend runs on the CPU here, not on {device}")
        xml, meta_file = openvino_files(path)
        core = ov.Core()
        try:
            model = core.read_model(str(xml))
            self.compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": cpu_threads(),
                                                              "PERFORMANCE_HINT": "LATENCY"})
        except Exception as e:  # OpenVINO raises RuntimeError with multi-line details
            raise BackendError(f"{xml}: OpenVINO cannot load it ({str(e).strip().splitlines()[0][:200]})") from None
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)
        if meta_file.is_file():
            meta = ModelMeta.from_dict(yaml.safe_load(meta_file.read_text()) or {}, str(meta_file))
        else:
            shape = lambda p: [d.get_length() if d.is_static else None for d in p]  # noqa: E731
            meta = foreign_meta(str(xml), shape(model.input(0).get_partial_shape()),
                                shape(model.output(0).get_partial_shape()))
        super().__init__(meta, device, str(path))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        y = self.request.infer({0: x.cpu().numpy().astype(np.float32, copy=False)})[self.output]
        return torch.from_numpy(np.array(y, dtype=np.float32))
