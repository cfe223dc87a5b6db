"""Export a trained checkpoint to ONNX, OpenVINO IR and TorchScript (FP32, FP16 on CUDA, INT8 with --int8).

The YOLOv5-style entry point: `python export.py ARGS` is `yolobone export ARGS` (flags: `python export.py --help`)."""
import sys

from yolobone.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
