"""Convert a YOLOv5 v7.0 or Ultralytics detection checkpoint (a pickled model) once to ours: a state dict + model YAML
that loads with weights_only=True. Reading the file runs none of its code (yolobone/utils/pickled_checkpoint.py).

    yolobone convert yolov5s.pt                        # -> yolov5s-yolobone.pt beside it
    yolobone convert yolo11n.pt                        # Ultralytics' files likewise
    python -m yolobone.cli.convert yolov5s.pt -o weights/yolov5s-ours.pt

Every command that takes --weights also reads these files directly; converting saves re-reading the records.
A file that is neither, or names code, exits with code 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from yolobone.utils.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Convert a YOLOv5 v7.0 or Ultralytics checkpoint to a weights-only "
                                "yolobone checkpoint.")
    p.add_argument("weights", help="YOLOv5 or Ultralytics checkpoint (yolov5s.pt, yolo11n.pt, or a best.pt "
                   "their trainers wrote)")
    p.add_argument("-o", "--output", default=None, help="output file (default: <stem>-yolobone.pt beside the input)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    opt = build_parser().parse_args(argv)

    def job() -> None:
        from yolobone.models.loading import convert_checkpoint
        from yolobone.utils.checkpoint import load_checkpoint
        out = convert_checkpoint(opt.weights, opt.output)
        ckpt = load_checkpoint(out)
        print(f"{opt.weights} -> {out}: {len(ckpt['model'])} tensors, {ckpt['nc']} classes, task {ckpt['task']}; "
              f"loads with weights_only=True")

    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
