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

from yolobone.engine.detect.predict_run import DetectConfig, run_detect
from yolobone.utils.cli import run_cli, task_of
from yolobone.utils.options import add_options


def parse_opt(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """detect.py's parser, generated from DetectConfig."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    return add_options(p, DetectConfig).parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if task_of(args, "detect") == "classify":  # top-k classes with a classifier checkpoint
        from yolobone.engine.classify.predict_run import main as classify_main
        return classify_main(args)
    opt = parse_opt(args)
    cfg = DetectConfig(**vars(opt))
    # CheckpointError, SourceError, DetectorError, bad --device (ValueError); unwritable outputs (OSError): exit 2
    return run_cli(lambda: run_detect(cfg).exit_code)


if __name__ == "__main__":
    sys.exit(main())
