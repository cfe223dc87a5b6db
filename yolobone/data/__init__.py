"""Datasets for both tasks: detection (YOLO txt labels, mosaic and affine augmentation, label checks, data YAMLs),
classification (ImageNet-style folders), and the built-in synthetic sets."""
