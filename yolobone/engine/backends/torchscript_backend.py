"""TorchScript backend for .torchscript files written by export.py (metadata in the archive's extra files)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from yolobone.engine.core.backend import Backend, BackendError, ModelMeta

EXTRA_FILE = "config.txt"  # _extra_files entry holding ModelMeta as JSON


class TorchScriptBackend(Backend):
    kind = "torchscript"

    def __init__(self, path: Path, device: torch.device):
        extra = {EXTRA_FILE: ""}
        try:
            with warnings.catch_warnings():  # torch.jit.load's deprecation notice: TorchScript is the format asked for
                warnings.simplefilter("ignore")
                self.model = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
        except Exception as e:  # torch raises RuntimeError / ValueError for foreign or damaged archives
            raise BackendError(f"{path}: not a loadable TorchScript archive ({str(e).strip().splitlines()[0][:200]})") \
                from None
        if not extra[EXTRA_FILE]:
            raise BackendError(f"{path}: TorchScript archive without yolobone metadata ({EXTRA_FILE}); export it with "
                               f"`python export.py --include torchscript`")
        try:
            meta = ModelMeta.from_dict(json.loads(extra[EXTRA_FILE]), str(path))
        except json.JSONDecodeError as e:
            raise BackendError(f"{path}: metadata {EXTRA_FILE} is not valid JSON ({e})") from None
        super().__init__(meta, device, str(path))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, dtype=torch.float16 if self.fp16 else torch.float32)
        with torch.inference_mode():
            out = self.model(x)
        return out.float()
