"""Run a trained detector on images, folders, globs, .txt lists, videos, webcams and streams.

The YOLOv5-style entry point: `python detect.py ARGS` is `yolobone detect ARGS` (flags: `python detect.py --help`)."""
import sys

from yolobone.cli.detect import main

if __name__ == "__main__":
    sys.exit(main())
