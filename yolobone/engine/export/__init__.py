"""export.py: a checkpoint to ONNX, OpenVINO IR, TorchScript, NCNN, TFLite, CoreML and TensorRT, metadata embedded.

    files = export_model(ExportConfig(weights="best.pt", include=("onnx", "openvino"), imgsz=(640, 640)))
    files["onnx"], files["openvino"]       # best.onnx, best_openvino_model/

Every file carries ModelMeta (class names, stride, image size, task, model YAML); engine.backends reads it back.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

from yolobone.engine.backends.torch_backend import model_meta
from yolobone.engine.export.prepare import ExportError, dummy_input, load_for_export
from yolobone.utils.image_size import stride_multiple
from yolobone.utils.logging import LOGGER
from yolobone.utils.options import at_least, check_options, option
from yolobone.utils.torch_utils import select_device

FORMATS = ("onnx", "openvino", "torchscript", "ncnn", "tflite", "coreml", "engine")
INT8_FORMATS = ("onnx", "openvino", "tflite", "engine")  # --int8 writes an INT8 file for each of these
NO_INT8 = {"ncnn": "ncnn's INT8 tools (ncnn2table, ncnn2int8) are not in the ncnn and pnnx wheels",
           "torchscript": "TorchScript has no INT8 file format", "coreml": "CoreML INT8 is not built here"}
HALF_ON_CPU = ("ncnn", "tflite", "coreml")  # FP16 is a storage choice of the file there, so --half needs no CUDA
PathLike = Union[str, os.PathLike]


@dataclass
class ExportConfig:
    """export.py's options (YOLOv5 names where they exist), each declared once: the parser is generated from them."""

    weights: PathLike = option("", "checkpoint path (a train.py best.pt or last.pt)", required=True)
    include: Sequence[str] = option(("onnx",), "formats to write", choices=FORMATS)
    imgsz: Union[int, Sequence[int]] = option(640, "image size: one value, or h w", aliases=("--img", "--img-size"),
                                              nargs="+", type=int)
    batch_size: int = option(1, "batch size (fixed unless --dynamic)", check=at_least(1))
    device: str = option("cpu", "cuda device, i.e. 0, or cpu")
    dynamic: bool = option(False, "dynamic batch size and image size (ONNX, OpenVINO, TorchScript)")
    simplify: bool = option(False, "simplify the ONNX graph with onnxslim")
    half: bool = option(False, "FP16 (CUDA --device for onnx/openvino/torchscript/engine; any device for "
                               "ncnn/tflite/coreml)")
    int8: bool = option(False, "also write INT8 models, calibrated on --data's train images")
    data: Optional[PathLike] = option(None, "data YAML (detection) or classification root whose train images "
                                            "calibrate --int8")
    int8_images: int = option(128, "calibration images for --int8", check=at_least(1))
    skip_int8_val: bool = option(False, "do not validate before/after quantization (benchmarks measure it "
                                        "themselves)", cli=False)
    opset: int = option(17, "ONNX opset (>= 17)")
    workers: int = option(2, "dataloader workers of the INT8 before/after validation", check=at_least(0))

    def check(self) -> Tuple[Tuple[int, int], Tuple[str, ...]]:
        """(h, w) and the formats; bad values raise ExportError naming the flag."""
        include = tuple(dict.fromkeys(f.lower() for f in self.include))
        bad = [f for f in include if f not in FORMATS]
        if bad or not include:
            raise ExportError(f"--include {' '.join(bad) or '(nothing)'}: expected some of {', '.join(FORMATS)}")
        size = [int(self.imgsz)] * 2 if isinstance(self.imgsz, int) else [int(s) for s in self.imgsz]
        size = size * 2 if len(size) == 1 else size
        if len(size) != 2 or min(size) < 1:
            raise ExportError(f"--imgsz expects one or two positive sizes (h w), got {self.imgsz}")
        check_options(self, ExportError)
        if self.int8 and not self.data:
            raise ExportError("--int8 needs --data (the data YAML whose train images calibrate the quantization)")
        if self.int8 and not set(include) & set(INT8_FORMATS):
            raise ExportError(f"--int8 with --include {' '.join(include)}: INT8 is written for "
                              f"{', '.join(INT8_FORMATS)}; {'; '.join(NO_INT8[f] for f in include if f in NO_INT8)}")
        if self.int8 and self.half:
            raise ExportError("--int8 and --half exclude each other: INT8 is quantized from the FP32 export")
        return (size[0], size[1]), include


def export_model(cfg: ExportConfig) -> Dict[str, Path]:
    """Export cfg.weights to every format in cfg.include (ONNX is written too when OpenVINO or INT8 needs it)."""
    from yolobone.engine.export.onnx_format import export_onnx

    imgsz, include = cfg.check()
    device = select_device(cfg.device)
    if cfg.half and device.type != "cuda" and not set(include) <= set(HALF_ON_CPU):
        raise ExportError(f"--half exports FP16 on a CUDA device only for {', '.join(set(include) - set(HALF_ON_CPU))}"
                          f"; --device {cfg.device or 'cpu'} is {device.type} (drop --half, or use --device 0 on a "
                          f"GPU machine)")
    weights = Path(str(cfg.weights))
    half_model = cfg.half and device.type == "cuda"  # on the CPU, --half is the edge files' FP16 storage only
    model = load_for_export(weights, device, half_model)
    meta = model_meta(model, batch=cfg.batch_size, dynamic=cfg.dynamic, precision="fp16" if cfg.half else "fp32")
    meta.imgsz = stride_multiple(tuple(imgsz), meta.stride) if meta.task == "detect" else imgsz
    x = dummy_input(cfg.batch_size, meta.imgsz, device, half_model)
    model(x)  # one pass: shapes settle, and a model that does not run fails here, before any file is written
    files: Dict[str, Path] = {}
    t0 = time.time()
    if "torchscript" in include:
        from yolobone.engine.export.torchscript_format import export_torchscript

        files["torchscript"] = _logged("TorchScript", export_torchscript(model, x, weights.with_suffix(".torchscript"),
                                                                         meta))
    if {"onnx", "openvino", "engine"} & set(include):
        files["onnx"] = _logged("ONNX", export_onnx(model, x, weights.with_suffix(".onnx"), meta, cfg.dynamic,
                                                    cfg.simplify, cfg.opset))
    if "openvino" in include:
        from yolobone.engine.export.openvino_format import export_openvino

        out = weights.with_name(f"{weights.stem}_openvino_model")
        files["openvino"] = _logged("OpenVINO", export_openvino(files["onnx"], out, meta, cfg.half))
    files.update(_edge_formats(cfg, model, x, meta, weights, include))
    if "engine" in include:
        files.update(_export_engine(cfg, meta, files["onnx"]))
    if cfg.int8:
        files.update(_export_int8(cfg, model, meta, files, include))
    LOGGER.info(f"Export complete ({time.time() - t0:.1f}s): " + ", ".join(str(p) for p in files.values()))
    return files


def _edge_formats(cfg: ExportConfig, model, x, meta, weights: Path, include: Tuple[str, ...]) -> Dict[str, Path]:
    """NCNN, TFLite, CoreML and TensorRT files (each converter imported only when its format is asked for)."""
    files: Dict[str, Path] = {}
    if "ncnn" in include:
        from yolobone.engine.export.ncnn_format import export_ncnn

        out = weights.with_name(f"{weights.stem}{'_fp16' if cfg.half else ''}_ncnn_model")
        files["ncnn"] = _logged("NCNN", export_ncnn(model, x, out, meta, cfg.half))
    if "tflite" in include:
        from yolobone.engine.export.tflite_format import export_tflite

        out = weights.with_name(f"{weights.stem}{'_fp16' if cfg.half else ''}_tflite_model")
        files["tflite"] = _logged("TFLite", export_tflite(model, x, out, meta, cfg.half))
    if "coreml" in include:
        from yolobone.engine.export.coreml_format import export_coreml

        out = weights.with_name(f"{weights.stem}{'_fp16' if cfg.half else ''}.mlpackage")
        files["coreml"] = _logged("CoreML", export_coreml(model, x, out, meta, cfg.half))
    return files


def _export_engine(cfg: ExportConfig, meta, onnx_path: Path) -> Dict[str, Path]:
    """<stem>.engine (FP32, or FP16 with --half) and, with --int8, <stem>_int8.engine calibrated on --data."""
    from yolobone.engine.export.engine_format import export_engine

    files = {"engine": _logged("TensorRT", export_engine(onnx_path, onnx_path.with_suffix(".engine"), meta,
                                                         cfg.half))}
    if cfg.int8:
        int8_meta = dataclasses.replace(meta, precision="int8")
        path = onnx_path.with_name(f"{onnx_path.stem}_int8.engine")
        files["int8_engine"] = _logged("INT8 TensorRT", export_engine(onnx_path, path, int8_meta,
                                                                      int8_data=str(cfg.data),
                                                                      int8_images=cfg.int8_images))
    return files


def _logged(fmt: str, path: Path) -> Path:
    size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
    LOGGER.info(f"{fmt}: saved {path} ({size / 1e6:.1f} MB)")
    return path


def _export_int8(cfg: ExportConfig, model, meta, files: Dict[str, Path], include: Tuple[str, ...]
                 ) -> Dict[str, Path]:
    """The INT8 files of the included formats (ONNX QDQ and its OpenVINO IR, TFLite a8w8), each validated before and
    after quantization unless skip_int8_val; TensorRT's INT8 engine is _export_engine's."""
    written: Dict[str, Path] = {}
    for fmt in (f for f in include if f in NO_INT8):
        LOGGER.warning(f"--int8: no INT8 {fmt} file ({NO_INT8[fmt]})")
    if {"onnx", "openvino"} & set(include):
        from yolobone.engine.export.int8 import quantize_onnx

        onnx_path = files["onnx"]
        int8_path = onnx_path.with_name(f"{onnx_path.stem}_int8.onnx")
        head = len(model.model) - 1 if meta.task == "detect" else None
        written["int8_onnx"] = _logged("INT8 ONNX", quantize_onnx(onnx_path, int8_path, meta, str(cfg.data),
                                                                  cfg.int8_images, head))
        _compare_int8(cfg, meta, onnx_path, int8_path, "ONNX")
    if "openvino" in include:
        from yolobone.engine.export.openvino_format import export_openvino

        out = files["onnx"].with_name(f"{files['onnx'].stem}_int8_openvino_model")
        int8_meta = dataclasses.replace(meta, precision="int8")
        written["int8_openvino"] = _logged("INT8 OpenVINO", export_openvino(written["int8_onnx"], out, int8_meta))
    if "tflite" in include:
        from yolobone.engine.export.tflite_format import quantize_tflite

        weights = Path(str(cfg.weights))
        out = weights.with_name(f"{weights.stem}_int8_tflite_model")
        written["int8_tflite"] = _logged("INT8 TFLite", quantize_tflite(files["tflite"], out, meta, str(cfg.data),
                                                                        cfg.int8_images))
        _compare_int8(cfg, meta, files["tflite"], out, "TFLite")
    return written


def _compare_int8(cfg: ExportConfig, meta, fp32: Path, int8: Path, fmt: str) -> None:
    """Log the validation score of an FP32 export and of its INT8 file on --data (unless skip_int8_val)."""
    if cfg.skip_int8_val:
        return
    before, after = score(fp32, cfg), score(int8, cfg)
    label = "mAP50-95" if meta.task == "detect" else "top-1"
    LOGGER.info(f"INT8 {fmt} validation {label}: FP32 {before:.4f} -> INT8 {after:.4f} ({after - before:+.4f}) on "
                f"{cfg.data}")


def score(weights: Path, cfg: ExportConfig) -> float:
    """Validation mAP50-95 (detection) or top-1 (classification) of an export on cfg.data's val split."""
    from yolobone.engine.backends import load_backend

    backend = load_backend(weights, "cpu")
    size = backend.meta.imgsz[0]
    if backend.task == "classify":
        from yolobone.engine.classify.val_run import val_classifier

        return val_classifier(model=backend, data=cfg.data, imgsz=size, batch_size=cfg.batch_size, device="cpu",
                              workers=cfg.workers, plots=False, verbose=False).top1
    from yolobone.engine.detect.val_run import ValConfig, run_val

    with tempfile.TemporaryDirectory() as tmp:
        report = run_val(ValConfig(weights=weights, data=cfg.data, imgsz=size, batch_size=cfg.batch_size,
                                   device="cpu", workers=cfg.workers, plots=False, project=tmp), model=backend)
    return report.result.map50_95


__all__ = ["ExportConfig", "ExportError", "FORMATS", "export_model"]
