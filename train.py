"""Train a detector from a model YAML (or a checkpoint) the way YOLOv5's train.py does.

The YOLOv5-style entry point: `python train.py ARGS` is `yolobone train ARGS` (flags: `python train.py --help`)."""
import sys

from yolobone.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
