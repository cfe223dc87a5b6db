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

from yolobone.engine.backends.compiled import add_compile_arg
from yolobone.engine.detect.options import DEFAULT_DATA
from yolobone.utils.cli import add_run_folder_args, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Validate a detection checkpoint on a YOLO-format dataset.")
    p.add_argument("--data", type=str, default=DEFAULT_DATA, help="data YAML or built-in name (default shapes)")
    p.add_argument("--weights", type=str, required=True, help="checkpoint path (a train.py best.pt or last.pt)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=640, help="inference size (pixels)")
    p.add_argument("--conf-thres", type=float, default=0.001, help="confidence threshold")
    p.add_argument("--iou-thres", type=float, default=0.6, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=300, help="maximum detections per image")
    p.add_argument("--task", default="val", choices=("val", "test", "train", "speed", "classify"),
                   help="data split (val, test, train), 'speed' (timing at batch 1), or 'classify' (classifiers)")
    p.add_argument("--device", default="", help="cuda device, i.e. 0 or 0,1,2,3 or cpu")
    p.add_argument("--workers", type=int, default=8, help="max dataloader workers")
    p.add_argument("--single-cls", action="store_true", help="treat as single-class dataset")
    p.add_argument("--agnostic", "--agnostic-nms", action="store_true", help="class-agnostic NMS")
    p.add_argument("--verbose", action="store_true", help="report mAP by class even with 50 classes or more")
    p.add_argument("--save-txt", action="store_true", help="save results to labels/*.txt")
    p.add_argument("--save-conf", action="store_true", help="save confidences in --save-txt labels")
    p.add_argument("--save-json", action="store_true", help="save a COCO results JSON (<weights>_predictions.json)")
    p.add_argument("--coco-eval", action="store_true",
                   help="score the results JSON with pycocotools against the split's COCO JSON (a COCO-format set) "
                        "or against a ground-truth JSON written from its labels")
    add_run_folder_args(p, "runs/val")
    p.add_argument("--half", action="store_true", help="use FP16 half-precision inference (CUDA only)")
    add_compile_arg(p)
    return p


def _task(argv: Sequence[str]) -> str:
    """The --task value alone, so a classifier's options go to its own parser untouched."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="val")
    return pre.parse_known_args(argv)[0].task


def main(argv: Optional[Sequence[str]] = None) -> int:
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    if _task(args) == "classify":
        from yolobone.engine.classify.val_run import main as classify_main
        return classify_main(args)
    opt = build_parser().parse_args(args)

    def job() -> None:  # CheckpointError, DatasetError, ValRunError, bad --device, unwritable folder: exit 2
        from yolobone.engine.detect.val_run import ValConfig, run_val
        run_val(ValConfig(**vars(opt)))

    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
