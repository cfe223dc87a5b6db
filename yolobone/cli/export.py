"""Export a trained checkpoint to ONNX, OpenVINO, TorchScript, NCNN, TFLite, CoreML or TensorRT (FP32/FP16/INT8).

    python export.py --weights runs/train/exp/weights/best.pt --include onnx openvino torchscript
    python export.py --weights best.pt --include onnx openvino --int8 --data configs/data/shapes.yaml --imgsz 256
    python export.py --weights best.pt --include onnx --dynamic --simplify
    python export.py --weights best.pt --include ncnn tflite coreml --half   # FP16 weights, any device
    python export.py --weights best.pt --include engine --device 0 --half   # TensorRT (CUDA + pip install tensorrt)

Files go beside the weights: best.onnx, best_openvino_model/, best.torchscript, best_int8.onnx,
best_int8_openvino_model/, best_ncnn_model/, best_tflite_model/, best.mlpackage (runs on macOS only), best.engine,
best_int8.engine. detect.py, val.py and compare.py run them through --weights. A bad option, a
checkpoint that does not load or a block that cannot be exported exits with code 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from yolobone.engine.export import FORMATS, ExportConfig
from yolobone.utils.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    d = ExportConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=str, required=True, help="checkpoint path (a train.py best.pt or last.pt)")
    p.add_argument("--include", nargs="+", default=["onnx"], choices=FORMATS, help="formats to write")
    p.add_argument("--imgsz", "--img", "--img-size", nargs="+", type=int, default=[640], help="image (h, w)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="batch size (fixed unless --dynamic)")
    p.add_argument("--device", default=d.device, help="cuda device, i.e. 0, or cpu")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch size and image size")
    p.add_argument("--simplify", action="store_true", help="simplify the ONNX graph with onnxslim")
    p.add_argument("--half", action="store_true", help="FP16 (CUDA --device for onnx/openvino/torchscript/engine)")
    p.add_argument("--int8", action="store_true", help="also write an INT8 (QDQ) ONNX model, calibrated on --data")
    p.add_argument("--data", type=str, default=None, help="data YAML whose train images calibrate --int8")
    p.add_argument("--int8-images", type=int, default=d.int8_images, help="calibration images for --int8")
    p.add_argument("--opset", type=int, default=d.opset, help="ONNX opset (>= 17)")
    p.add_argument("--workers", type=int, default=d.workers, help="dataloader workers of the INT8 validation")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    opt = build_parser().parse_args(argv)

    def job() -> None:  # ExportError, CheckpointError, BackendError (missing runtime), DatasetError: exit 2
        from yolobone.engine.export import export_model
        export_model(ExportConfig(**vars(opt)))

    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
