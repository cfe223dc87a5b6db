"""Ultralytics' `scales:` table: one YAML for n/s/m/l/x, the scale taken from the file name or a `scale:` key.

    scales:            # [depth, width, max_channels]
      n: [0.50, 0.25, 1024]
      s: [0.50, 0.50, 1024]

`yolo11n.yaml`, `yolov8s.yaml` and `yolov5nu.yaml` select n, s and n (the letter after `yolo`, an optional `v`
and the version digits, as Ultralytics reads file names); a file whose name has no such letter uses its `scale:`
key. Without either the first scale is used, with a warning (Ultralytics does the same).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from yolobone.models.registry import ModelConfigError
from yolobone.utils.logging import LOGGER

_SCALE_IN_NAME = re.compile(r"yolo(?:e-)?v?\d+([nslmx])")


@dataclass(frozen=True)
class Multiples:
    """What a model's rows are scaled by."""

    depth: float
    width: float
    max_channels: float = math.inf
    scale: str = ""  # the scales key in use, '' without a scales table


def scale_from_name(path: str) -> str:
    """'configs/yolo11n.yaml' -> 'n'; '' when the file name carries no scale letter."""
    m = _SCALE_IN_NAME.search(Path(path).stem)
    return m.group(1) if m else ""


def set_scale_from_name(data: Dict[str, Any], path: str) -> None:
    """Record the file name's scale as data['scale'] (kept in checkpoints); the name wins over a `scale:` key."""
    scale = scale_from_name(path) if data.get("scales") else ""
    if scale:
        data["scale"] = scale


def model_multiples(data: Dict[str, Any], source: str) -> Multiples:
    """Depth, width and channel cap of a model YAML: from `scales:` when it has one, else depth_multiple /
    width_multiple (YOLOv5's keys, no cap)."""
    scales = data.get("scales")
    if not scales:
        return Multiples(float(data.get("depth_multiple", 1.0)), float(data.get("width_multiple", 1.0)))
    if not isinstance(scales, dict):
        raise ModelConfigError(f"{source}: 'scales' must map a scale name to [depth, width, max_channels], "
                               f"got {type(scales).__name__}")
    scale = _chosen_scale(data, scales, source)
    row = scales[scale]
    if not isinstance(row, list) or len(row) not in (2, 3) or \
            any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 for v in row):
        raise ModelConfigError(f"{source}: scales.{scale} must be [depth, width, max_channels] (positive numbers), "
                               f"got {row!r}")
    return Multiples(float(row[0]), float(row[1]), float(row[2]) if len(row) == 3 else math.inf, str(scale))


def _chosen_scale(data: Dict[str, Any], scales: Dict[str, Any], source: str) -> str:
    scale: Optional[str] = data.get("scale")
    if not scale:
        scale = str(next(iter(scales)))
        LOGGER.warning(f"WARNING: {source}: no model scale in the file name or a 'scale:' key; using scale "
                       f"'{scale}' (name the file like yolo11n.yaml or set scale: n)")
        data["scale"] = scale
    if scale not in scales:
        raise ModelConfigError(f"{source}: scale {scale!r} is not in its scales table ({', '.join(map(str, scales))})")
    return str(scale)
