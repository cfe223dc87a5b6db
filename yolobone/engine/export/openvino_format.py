"""OpenVINO export: the ONNX file converted to IR (.xml + .bin) in `<stem>_openvino_model/` with metadata.yaml."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from yolobone.engine.core.backend import ModelMeta
from yolobone.engine.backends.openvino_backend import META_FILE
from yolobone.engine.backends.runtime import require
from yolobone.engine.export.prepare import ExportError
from yolobone.utils.errors import first_line


def export_openvino(onnx_path: Path, out_dir: Path, meta: ModelMeta, half: bool = False) -> Path:
    """Convert onnx_path to out_dir/<stem>.xml (FP16-compressed weights with half) and write metadata.yaml."""
    ov = require("openvino", "OpenVINO export")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    try:
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(out_dir / f"{onnx_path.stem}.xml"), compress_to_fp16=half)
    except Exception as e:  # OpenVINO raises RuntimeError/OpConversionFailure with the failing node
        raise ExportError(f"OpenVINO conversion of {onnx_path} failed: {first_line(e)[:300]}") from None
    (out_dir / META_FILE).write_text(yaml.safe_dump(meta.to_dict(), sort_keys=False))
    return out_dir
