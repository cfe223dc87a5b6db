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

from yolobone.engine.export import ExportConfig
from yolobone.utils.cli import run_cli
from yolobone.utils.options import add_options


def build_parser() -> argparse.ArgumentParser:
    """export.py's parser, generated from ExportConfig."""
    return add_options(argparse.ArgumentParser(description=__doc__.split("\n")[0]), ExportConfig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opt = build_parser().parse_args(argv)

    def job() -> None:  # ExportError, CheckpointError, BackendError (missing runtime), DatasetError: exit 2
        from yolobone.engine.export import export_model
        export_model(ExportConfig(**vars(opt)))

    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
