"""Run a trained detector on images, folders, globs, .txt lists, videos, webcams and streams.

    python detect.py --weights runs/train/exp/weights/best.pt --source path/to/images   # folder
                                                                 --source img.jpg        # image
                                                                 --source 'dir/*.jpg'    # glob
                                                                 --source list.txt       # list of paths
                                                                 --source vid.mp4        # video
                                                                 --source 0              # webcam
                                                                 --source rtsp://host/s  # stream

Outputs go to runs/detect/exp*. Exit code 0: every input read; 1: some inputs were skipped (each one is logged
with its reason); 2: bad weights, source or options (one-line error).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from yolobone.engine.backends.compiled import add_compile_arg
from yolobone.engine.detect.predict_run import DetectConfig, run_detect
from yolobone.utils.cli import add_run_folder_args, run_cli


def parse_opt(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="detect", choices=("detect", "classify"),
                   help="'classify' hands all flags to engine.classify.predict_run (top-k classes)")
    p.add_argument("--weights", type=str, required=True, help="checkpoint path (a train.py best.pt or last.pt)")
    p.add_argument("--source", type=str, required=True,
                   help="file, folder, glob, .txt list of paths, video, webcam index or stream URL")
    p.add_argument("--imgsz", "--img", "--img-size", nargs="+", type=int, default=[640],
                   help="inference size: one value (square limit) or h w")
    p.add_argument("--conf-thres", type=float, default=0.25, help="confidence threshold")
    p.add_argument("--iou-thres", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=1000, help="maximum detections per image")
    p.add_argument("--device", default="", help="cuda device, i.e. 0 or 0,1,2,3 or cpu")
    p.add_argument("--view-img", action="store_true", help="show results (needs a display)")
    p.add_argument("--save-txt", action="store_true", help="save results to labels/*.txt (YOLO format)")
    p.add_argument("--save-conf", action="store_true", help="add confidences to --save-txt labels")
    p.add_argument("--save-crop", action="store_true", help="save cropped boxes to crops/<class>/")
    p.add_argument("--nosave", action="store_true", help="do not save annotated images/videos")
    p.add_argument("--classes", nargs="+", type=int, help="filter by class: --classes 0, or --classes 0 2 3")
    p.add_argument("--agnostic-nms", action="store_true", help="class-agnostic NMS")
    add_run_folder_args(p, "runs/detect")
    p.add_argument("--line-thickness", default=3, type=int, help="bounding box thickness (pixels)")
    p.add_argument("--hide-labels", action="store_true", help="hide labels")
    p.add_argument("--hide-conf", action="store_true", help="hide confidences")
    p.add_argument("--half", action="store_true", help="FP16 half-precision inference (CUDA only)")
    p.add_argument("--vid-stride", type=int, default=1, help="video frame-rate stride")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass for folders and lists")
    add_compile_arg(p)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="detect")
    if pre.parse_known_args(args)[0].task == "classify":  # top-k classes with a classifier checkpoint
        from yolobone.engine.classify.predict_run import main as classify_main
        return classify_main(args)
    opt = parse_opt(args)
    cfg = DetectConfig(**{k: v for k, v in vars(opt).items() if k != "task"})
    # CheckpointError, SourceError, DetectorError, bad --device (ValueError); unwritable outputs (OSError): exit 2
    return run_cli(lambda: run_detect(cfg).exit_code)


if __name__ == "__main__":
    sys.exit(main())
