"""Backbone levels for necks that name them: `P3` in a head row's `from` is the backbone's last row at stride 8
(before any row at a larger stride).

The strides are measured, never declared: `row_strides` runs a zero image through the backbone rows in eval mode
without gradients (on the meta device when the rows were built there, so only shapes are computed).
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from yolobone.models.graph import run_rows
from yolobone.models.registry import ModelConfigError
from yolobone.utils.errors import first_line

_LEVEL = re.compile(r"^P([1-9])$")


def level_of(item: Any) -> Optional[int]:
    """'P4' -> 4; anything else -> None."""
    m = _LEVEL.match(item) if isinstance(item, str) else None
    return int(m.group(1)) if m else None


def level_names(levels: Dict[int, int]) -> str:
    """{3: 4, 4: 6, 5: 8} -> 'P3, P4, P5'."""
    return ", ".join(f"P{k}" for k in sorted(levels)) or "no level"


def row_strides(layers: Sequence[nn.Module], ch: int, size: int,
                where: Callable[[int], str] = str) -> List[Optional[int]]:
    """Stride of each row's output for a size x size input (None for rows with several outputs or a non-integer
    stride)."""
    tensors = [t for m in layers for t in (*m.parameters(), *m.buffers())]
    device = tensors[0].device if tensors else torch.device("cpu")
    modes = [m.training for m in layers]

    def call(m: nn.Module, x: Any) -> Any:
        try:
            return m(x)
        except Exception as e:  # any failure here is a config problem of this row
            raise ModelConfigError(f"{where(m.i)} ({m.type}): forward failed while measuring the backbone's "
                                   f"strides: {first_line(e)[:300]}") from None

    try:
        for m in layers:
            m.eval()
        with torch.no_grad():
            _, outputs = run_rows(layers, torch.zeros(1, ch, size, size, device=device), call=call)
    finally:
        for m, mode in zip(layers, modes):
            m.train(mode)
    strides: List[Optional[int]] = []
    for out in outputs:
        h, w = (out.shape[2], out.shape[3]) if isinstance(out, torch.Tensor) and out.dim() == 4 else (0, 0)
        strides.append(size // h if h and h == w and size % h == 0 else None)
    return strides


def levels_from_strides(strides: Sequence[Optional[int]]) -> Dict[int, int]:
    """{level k: index of the last row whose output has stride 2**k}, skipping side-branch rows whose stride is
    below one an earlier row reached (YOLOv7's downsampling runs a 1x1 conv on the previous level after its max-pool
    row: that conv is not the level's output)."""
    levels: Dict[int, int] = {}
    top = 0
    for i, s in enumerate(strides):
        if s and s > 1 and s & (s - 1) == 0 and s >= top:
            levels[int(math.log2(s))] = i
            top = s
    return levels
