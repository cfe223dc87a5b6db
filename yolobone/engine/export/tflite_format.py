"""TFLite export through LiteRT: litert-torch converts the model (NCHW input kept) to `<stem>_tflite_model/`.

FP16 is weight-only FP16 (ai-edge-quantizer's float-casting recipe): weights stored in half, compute in float.
INT8 (`<stem>_int8_tflite_model/`) is ai-edge-quantizer's static a8w8 recipe (int8 activations, per-channel int8
weights, min/max calibration on training images); the input is int8 (the backend quantizes it) and a detector's
decode stays float, as in the INT8 ONNX export (engine/export/int8.py: boxes in pixels beside scores in [0, 1]).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
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


# Detection heads' own ops (the decode after their convs: Detect_24;12, DetectAF_24;48, IDetect_105;7), the DFL and
# the model output keep float; the head's convs sit in sub-scopes (DetectAF_24/...Conv2d...) and are quantized.
FLOAT_SCOPES = r"(Detect\w*_\d+;|DFL_dfl|^serving_default_output)"


def _a8w8_recipe(task: str) -> list:
    aeq = require("ai_edge_quantizer", "TFLite INT8 export")
    recipe = json.loads((Path(aeq.__file__).parent / "recipes" / "default_a8w8_recipe.json").read_text())
    if task == "detect":
        recipe.append({"regex": FLOAT_SCOPES, "operation": "*", "algorithm_key": "no_quantize", "op_config": {}})
    return recipe


def quantize_tflite(fp32_dir: Path, out_dir: Path, meta: ModelMeta, data: str, n_images: int = 128) -> Path:
    """Write out_dir (model.tflite + metadata.yaml) with the static INT8 model of fp32_dir's, calibrated on up to
    n_images training images of `data`."""
    aeq = require("ai_edge_quantizer", "TFLite INT8 export")
    litert = require("ai_edge_litert.interpreter", "TFLite INT8 export")
    from yolobone.engine.export.int8 import calibration_batches, calibration_files

    src = fp32_dir / MODEL_FILE
    signature = litert.Interpreter(model_path=str(src)).get_signature_list()
    key = next(iter(signature))
    name = signature[key]["inputs"][0]
    files = calibration_files(data, meta, n_images)
    samples = [{name: x} for x in calibration_batches(files, meta.task, tuple(meta.imgsz), meta.batch)]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):  # its progress bars
            warnings.simplefilter("ignore")
            quantizer = aeq.quantizer.Quantizer(str(src), _a8w8_recipe(meta.task))
            result = quantizer.quantize(quantizer.calibrate({key: samples}, num_threads=1),
                                        enable_progress_report=False)
        (out_dir / MODEL_FILE).write_bytes(bytes(result.quantized_model))
    except Exception as e:  # the quantizer raises ValueError/RuntimeError naming the op
        raise ExportError(f"TFLite INT8 quantization of {src} failed: {first_line(e)[:300]}") from None
    int8_meta = dataclasses.replace(meta, precision="int8")
    (out_dir / META_FILE).write_text(yaml.safe_dump(int8_meta.to_dict(), sort_keys=False))
    return out_dir


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
