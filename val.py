"""Validate a trained detector on a data split: P, R, mAP50, mAP50-95 (COCOeval's definition), speed, plots.

The YOLOv5-style entry point: `python val.py ARGS` is `yolobone val ARGS` (flags: `python val.py --help`)."""
import sys

from yolobone.cli.val import main

if __name__ == "__main__":
    sys.exit(main())
