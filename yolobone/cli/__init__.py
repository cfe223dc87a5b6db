"""The command line: `yolobone train|val|detect|export|compare|dataset ARGS`, the same commands as the top-level scripts
(`python train.py ARGS`), with YOLOv5's flags."""
from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

COMMANDS = {
    "train": "train a detector or classifier from a model YAML or checkpoint",
    "val": "validate a checkpoint or an exported model on a dataset",
    "detect": "run inference on images, videos, folders or streams",
    "export": "export a checkpoint to ONNX, OpenVINO or TorchScript",
    "compare": "train, validate and profile several configs (backbones) under one protocol",
    "dataset": "convert a set between YOLO txt, COCO JSON and VOC XML, or report what it holds",
}


def _usage() -> str:
    rows = "\n".join(f"  {name:<8} {text}" for name, text in COMMANDS.items())
    return f"usage: yolobone COMMAND [ARGS ...]\n\ncommands:\n{rows}\n\n'yolobone COMMAND --help' lists a command's flags."


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Dispatch `yolobone COMMAND ARGS` to yolobone.cli.COMMAND.main(ARGS)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] not in COMMANDS:
        print(f"yolobone: unknown command '{args[0]}' (expected one of {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    command = importlib.import_module(f"yolobone.cli.{args[0]}")
    return command.main(args[1:])
