"""Weights for a model whose backbone was swapped: the source's neck and head rows, renumbered onto the new model.

    yolov5s.pt (YOLOv5 rows 0-8 backbone, 9 SPPF, 10-23 neck, 24 Detect)
    --cfg configs/yolov5s.yaml --backbone resnet50: rows 0..B-1 ResNet, then SPPF, the neck and Detect (compose.py)

The neck in level form (compose.neck_rows) is the source file's rows from its neck start on, in the same order, so
source row `s0 + j` becomes row `d0 + j` of the composed model; its P3/P4/P5 inputs replace the backbone row
indices they were written with. The source's backbone rows are left out: they belong to the backbone replaced.
"""
from __future__ import annotations

from typing import Any, Dict

import torch

from yolobone.models.compose import neck_start
from yolobone.models.parse import load_model_yaml


def neck_tensors(state: Dict[str, torch.Tensor], src_cfg: Any, dst_cfg: Any) -> Dict[str, torch.Tensor]:
    """The neck and head entries of `state` (a model built from src_cfg), renamed to dst_cfg's row indices."""
    s0, d0 = neck_start(load_model_yaml(src_cfg)), neck_start(load_model_yaml(dst_cfg))
    out = {}
    for key, value in state.items():
        parts = key.split(".", 2)
        if len(parts) == 3 and parts[0] == "model" and parts[1].isdigit() and int(parts[1]) >= s0:
            out[f"model.{int(parts[1]) - s0 + d0}.{parts[2]}"] = value
    return out
