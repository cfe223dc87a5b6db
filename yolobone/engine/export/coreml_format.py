"""CoreML export (coremltools): an ML program `<stem>.mlpackage` converted from torch.export, ModelMeta as metadata.

It converts on Linux; its predictions run only on macOS (Core ML), so no backend runs it here.
"""
from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from yolobone.engine.backends.onnx_backend import META_KEY
from yolobone.engine.backends.runtime import require
from yolobone.engine.core.backend import ModelMeta
from yolobone.engine.export.prepare import INPUT_NAME, OUTPUT_NAMES, ExportError
from yolobone.utils.errors import first_line


def export_coreml(model: nn.Module, x: torch.Tensor, path: Path, meta: ModelMeta, half: bool = False) -> Path:
    """Write path (.mlpackage): input 'images' (B, 3, H, W) float, output 'predictions' or 'logits'."""
    ct = require("coremltools", "CoreML export")
    model, x = model.float().cpu(), x.float().cpu()
    logging.getLogger("coremltools").setLevel(logging.ERROR)  # int64->int32 constant notices on every index
    try:
        with warnings.catch_warnings():  # "torch version not tested" and export notices
            warnings.simplefilter("ignore")
            # torch.export, not jit.trace: coremltools 9 fails on traced aten::Int of shape values
            program = torch.export.export(model, (x,)).run_decompositions({})
            ml = ct.convert(program, inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(x.shape))],
                            outputs=[ct.TensorType(name=OUTPUT_NAMES[meta.task])], convert_to="mlprogram",
                            compute_precision=ct.precision.FLOAT16 if half else ct.precision.FLOAT32,
                            minimum_deployment_target=ct.target.iOS15)
    except Exception as e:  # torch.export / the MIL frontend raise many types, naming the op
        raise ExportError(f"CoreML export failed: {first_line(e)[:300]}") from None
    ml.user_defined_metadata[META_KEY] = json.dumps(meta.to_dict())
    ml.short_description = f"yolobone {meta.task} model, {meta.nc} classes, {meta.precision}"
    if path.exists():
        shutil.rmtree(path)
    ml.save(str(path))
    return path
