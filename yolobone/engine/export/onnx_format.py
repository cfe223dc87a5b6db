"""ONNX export: TorchScript-based torch.onnx exporter (opset 17), metadata_props, optional onnxslim."""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any, Dict

import torch
import torch.nn as nn

from yolobone.engine.core.backend import ModelMeta
from yolobone.engine.backends.onnx_backend import META_KEY
from yolobone.engine.backends.runtime import require
from yolobone.engine.export.diagnose import locate_export_failure
from yolobone.engine.export.prepare import INPUT_NAME, OUTPUT_NAMES, ExportError
from yolobone.utils.errors import first_line
from yolobone.utils.logging import LOGGER

OPSET = 17


def dynamic_axes(task: str) -> Dict[str, Dict[int, str]]:
    out = {0: "batch", 1: "anchors"} if task == "detect" else {0: "batch"}
    return {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAMES[task]: out}


def _torch_onnx_export(model: nn.Module, args: tuple, f: Any, input_names=None, output_names=None,
                       axes=None, opset: int = OPSET) -> None:
    """torch.onnx.export with dynamo=False.

    The TorchScript-based exporter needs no extra package (torch 2.14's dynamo exporter wants onnxscript) and
    exports these plain CNNs in about 2 s; its deprecation warnings are silenced because we chose it on purpose.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, f, dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=input_names, output_names=output_names, dynamic_axes=axes)


def set_metadata(proto: Any, meta: ModelMeta) -> Any:
    """Write ModelMeta as JSON into a ModelProto's metadata_props (key 'yolobone'), replacing an older entry."""
    for p in [p for p in proto.metadata_props if p.key == META_KEY]:
        proto.metadata_props.remove(p)
    proto.metadata_props.add(key=META_KEY, value=json.dumps(meta.to_dict()))
    return proto


def add_metadata(path: Path, meta: ModelMeta) -> None:
    """set_metadata on an ONNX file in place."""
    onnx = require("onnx", "ONNX export")
    onnx.save(set_metadata(onnx.load(str(path)), meta), str(path))


def export_onnx(model: nn.Module, x: torch.Tensor, path: Path, meta: ModelMeta, dynamic: bool = False,
                simplify: bool = False, opset: int = OPSET) -> Path:
    """Write `model` traced on `x` to path (named input 'images', output 'predictions' or 'logits')."""
    onnx = require("onnx", "ONNX export")
    if opset < 17:
        raise ExportError(f"--opset {opset}: this exporter writes opset 17 or newer")
    buffer = io.BytesIO()  # in memory: the file is written once, with its metadata
    try:
        _torch_onnx_export(model, (x,), buffer, [INPUT_NAME], [OUTPUT_NAMES[meta.task]],
                           dynamic_axes(meta.task) if dynamic else None, opset)
    except Exception as e:  # find the YAML row (and op) to blame, then one line
        where = locate_export_failure(model, x, lambda m, a, f: _torch_onnx_export(m, a, f, opset=opset))
        raise ExportError(f"ONNX export failed: {where or first_line(e)[:300]}") from None
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    if simplify:
        slim = require("onnxslim", "--simplify")
        try:
            proto = slim.slim(proto)
        except Exception as e:  # a simplifier failure leaves the plain export, which is valid
            LOGGER.warning(f"WARNING: onnxslim failed ({first_line(e)[:200]}); keeping the unsimplified model")
    onnx.save(set_metadata(proto, meta), str(path))
    return path
