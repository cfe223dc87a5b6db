"""NCNN backend for `<stem>_ncnn_model/` folders written by export.py (model.ncnn.param/.bin + metadata.yaml)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from yolobone.engine.core.backend import Backend, BackendError, ModelMeta
from yolobone.engine.backends.runtime import cpu_threads, export_folder_files, require

META_FILE = "metadata.yaml"
PARAM_FILE = "model.ncnn.param"


def ncnn_files(path: Path) -> tuple:
    """(param, bin, metadata.yaml) of an NCNN export folder; BackendError when a file is missing."""
    return export_folder_files(path, PARAM_FILE, (PARAM_FILE.replace(".param", ".bin"), META_FILE), "ncnn")


class NcnnBackend(Backend):
    """One image per ncnn Extractor call (ncnn graphs carry no batch axis); a batch is run image by image."""

    kind = "ncnn"

    def __init__(self, path: Path, device: torch.device):
        ncnn = require("ncnn", f"{path} (NCNN backend)")
        if device.type != "cpu":
            raise BackendError(f"{path}: the NCNN backend runs on the CPU here, not on {device}")
        param, weights, meta_file = ncnn_files(path)
        meta = ModelMeta.from_dict(yaml.safe_load(meta_file.read_text()) or {}, str(meta_file))
        self.ncnn, self.net = ncnn, ncnn.Net()
        self.net.opt.num_threads = cpu_threads()
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(weights)) != 0:
            raise BackendError(f"{path}: ncnn cannot load {param.name} / {weights.name}")
        self.input_name, self.output_name = self.net.input_names()[0], self.net.output_names()[0]
        super().__init__(meta, device, str(path))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._one(im) for im in x.cpu().float()])

    def _one(self, image: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(image.numpy())  # ncnn.Mat borrows this memory: keep it alive until extract
        ex = self.net.create_extractor()
        ex.input(self.input_name, self.ncnn.Mat(array))
        ret, out = ex.extract(self.output_name)
        if ret != 0:
            raise BackendError(f"{self.source}: ncnn failed on output {self.output_name} (code {ret})")
        return torch.from_numpy(np.array(out, dtype=np.float32))
