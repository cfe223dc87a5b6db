"""yolobone: YOLOv5-compatible object detection where backbones are swapped by editing YAML.

Packages, lowest layer first (tests/test_architecture.py enforces the order):
    yolobone.utils    true utilities (logging, YAML reading, checkpoints, boxes, devices)
    yolobone.data     detection and classification datasets, augmentation, label checks, data YAMLs
    yolobone.models   blocks, the block registry, the YAML builder, the model classes and the loss
    yolobone.engine   the training loop, the detect and classify tasks, inference backends, export, compare
"""
__version__ = "0.1.0"
