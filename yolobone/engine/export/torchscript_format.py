"""TorchScript export: torch.jit.trace of the fused model, metadata in the archive's extra files."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from yolobone.engine.core.backend import ModelMeta
from yolobone.engine.backends.torchscript_backend import EXTRA_FILE
from yolobone.engine.export.prepare import ExportError
from yolobone.utils.errors import first_line


def export_torchscript(model: nn.Module, x: torch.Tensor, path: Path, meta: ModelMeta) -> Path:
    """Trace `model` on `x` and save it with ModelMeta as JSON in `config.txt`."""
    try:
        with warnings.catch_warnings():  # jit.trace's deprecation notice and tracer shape warnings
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, x, strict=False, check_trace=False)
    except Exception as e:  # the tracer raises RuntimeError / TypeError naming the op
        raise ExportError(f"TorchScript export failed: {first_line(e)[:300]}") from None
    traced.save(str(path), _extra_files={EXTRA_FILE: json.dumps(meta.to_dict())})
    return path
