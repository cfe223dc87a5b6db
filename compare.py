"""Compare backbones: train every model YAML under identical settings, then tabulate size, speed and accuracy.

The YOLOv5-style entry point: `python compare.py ARGS` is `yolobone compare ARGS` (flags: `python compare.py --help`)."""
import sys

from yolobone.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
