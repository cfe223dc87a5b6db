"""Validate a trained detector on a data split: P, R, mAP50, mAP50-95 (COCOeval's definition), speed, plots.

    python val.py --weights runs/train/exp/weights/best.pt --data data.yaml --imgsz 640
    python val.py --weights best.pt --save-json --coco-eval     # also score the JSON with pycocotools
    python val.py --weights best.pt --task speed                 # time pre-process / inference / NMS at batch 1
    python val.py --task classify --weights cls.pt --data root   # classifier: top-1 / top-5 (yolobone/engine/classify/val_run.py)

Outputs go to runs/val/exp*. A bad input (missing weights or data, a checkpoint that does not fit) exits with
code 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from yolobone.utils.cli import run_cli, task_of
from yolobone.utils.options import add_options


def build_parser() -> argparse.ArgumentParser:
    """val.py's detection parser, generated from ValConfig."""
    from yolobone.engine.detect.val_run import ValConfig
    p = argparse.ArgumentParser(description="Validate a detection checkpoint on a YOLO-format dataset.")
    return add_options(p, ValConfig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    if task_of(args, "val") == "classify":
        from yolobone.engine.classify.val_run import main as classify_main
        return classify_main(args)
    opt = build_parser().parse_args(args)

    def job() -> None:  # CheckpointError, DatasetError, ValRunError, bad --device, unwritable folder: exit 2
        from yolobone.engine.detect.val_run import ValConfig, run_val
        run_val(ValConfig(**vars(opt)))

    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
