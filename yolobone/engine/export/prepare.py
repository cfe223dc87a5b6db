"""The model an export traces: loaded, fused, eval, float (or fp16 on CUDA), Detect returning the decoded tensor."""
from __future__ import annotations

import os
from typing import Tuple, Union

import torch
import torch.nn as nn

from yolobone.models.heads import Detect
from yolobone.utils.errors import YoloboneError

OUTPUT_NAMES = {"detect": "predictions", "classify": "logits"}  # (B, N, 5 + nc) / (B, nc)
INPUT_NAME = "images"


class ExportError(YoloboneError, ValueError):
    """An export option, checkpoint or block that cannot be exported; the message names what and where."""


def export_ready(model: nn.Module, device: torch.device, half: bool) -> nn.Module:
    """`model` itself, fused and in eval mode; Detect outputs only the decoded predictions, grids are re-traced."""
    model = model.to(device).eval()
    with torch.no_grad():
        model.fuse()
    for p in model.parameters():
        p.requires_grad_(False)
    for m in model.modules():
        if isinstance(m, Detect):
            m.export = True
            m.inplace = False
        if hasattr(m, "reset_grids"):
            m.reset_grids()  # a cached grid would be baked into the graph as a constant of one image size
    return model.half() if half else model.float()


def load_for_export(weights: Union[str, os.PathLike], device: torch.device, half: bool) -> nn.Module:
    """A checkpoint of this project as an export-ready model; other files raise ExportError."""
    from yolobone.models import load_model

    if str(weights).endswith((".onnx", ".torchscript", ".xml")) or os.path.isdir(str(weights)):
        raise ExportError(f"--weights {weights}: export.py reads a .pt checkpoint of this project, not an export")
    return export_ready(load_model(weights, device, fuse=False), device, half)


def dummy_input(batch: int, imgsz: Tuple[int, int], device: torch.device, half: bool) -> torch.Tensor:
    return torch.zeros(batch, 3, *imgsz, device=device, dtype=torch.float16 if half else torch.float32)
