"""Datasets for both tasks: detection (YOLO txt labels, COCO JSON and Pascal VOC splits, a converter and a
dataset report, mosaic and affine augmentation, label checks, data YAMLs),
classification (ImageNet-style folders), and the built-in synthetic sets."""
