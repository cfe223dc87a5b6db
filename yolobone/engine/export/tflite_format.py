"""TFLite export through LiteRT: litert-torch converts the model (NCHW input kept) to `<stem>_tflite_model/`.

FP16 is weight-only FP16 (ai-edge-quantizer's float-casting recipe): weights stored in half, compute in float.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import yaml

from yolobone.engine.backends.runtime import require
from yolobone.engine.backends.tflite_backend import META_FILE, MODEL_FILE
from yolobone.engine.core.backend import ModelMeta
from yolobone.engine.export.prepare import ExportError
from yolobone.utils.errors import first_line


def _fp16_weights(path: Path) -> None:
    """Rewrite the FP32 .tflite at path with FP16 weights (float compute)."""
    aeq = require("ai_edge_quantizer", "TFLite FP16 export")
    rm = aeq.recipe_manager.RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=aeq.qtyping.TFLOperationName.ALL_SUPPORTED,
                              num_bits=16, algorithm_key=aeq.algorithm_manager.AlgorithmName.FLOAT_CASTING)
    quantizer = aeq.quantizer.Quantizer(str(path), rm.get_quantization_recipe())
    result = quantizer.quantize(enable_progress_report=False)
    path.write_bytes(bytes(result.quantized_model))


def export_tflite(model: nn.Module, x: torch.Tensor, out_dir: Path, meta: ModelMeta, half: bool = False) -> Path:
    """Convert `model` traced on `x` (float32, CPU) to out_dir/model.tflite and write metadata.yaml beside it."""
    litert_torch = require("litert_torch", "TFLite export")
    model, x = model.float().cpu(), x.float().cpu()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    try:
        # converter notices about the traced graph, and its step-by-step progress printed to stdout
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            litert_torch.convert(model, (x,)).export(str(out_dir / MODEL_FILE))
        if half:
            _fp16_weights(out_dir / MODEL_FILE)
    except Exception as e:  # torch.export and the MLIR passes raise ValueError/RuntimeError naming the op
        raise ExportError(f"TFLite export failed: {first_line(e)[:300]}") from None
    (out_dir / META_FILE).write_text(yaml.safe_dump(meta.to_dict(), sort_keys=False))
    return out_dir
