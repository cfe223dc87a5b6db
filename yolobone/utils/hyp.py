"""Training hyperparameters: a dataclass with YOLOv5's hyp keys (defaults = hyp.scratch-low.yaml)."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from yolobone.utils.errors import YoloboneError
from yolobone.utils.paths import find_config
from yolobone.utils.yaml_io import load_yaml


class HypError(YoloboneError, ValueError):
    """A hyperparameter file or dict that cannot be used (unknown key, wrong type, bad value)."""


@dataclass
class Hyp:
    """YOLOv5 hyperparameters; field names are the hyp YAML keys."""

    lr0: float = 0.01  # initial learning rate (SGD 1e-2, Adam 1e-3)
    lrf: float = 0.01  # final learning rate = lr0 * lrf
    momentum: float = 0.937  # SGD momentum / Adam beta1
    weight_decay: float = 0.0005  # optimizer weight decay, scaled by the nominal batch of 64
    warmup_epochs: float = 3.0  # warmup epochs (fractions allowed)
    warmup_min_iters: float = 100  # warmup lasts at least this many iterations (YOLOv5, Ultralytics 100; YOLOv7 1000)
    warmup_momentum: float = 0.8  # momentum at the start of warmup
    warmup_bias_lr: float = 0.1  # bias learning rate at the start of warmup
    box: float = 0.05  # box loss gain
    cls: float = 0.5  # class loss gain
    dfl: float = 1.5  # distribution focal loss gain (anchor-free heads only)
    cls_pw: float = 1.0  # class BCE positive weight
    obj: float = 1.0  # objectness loss gain (scaled with image pixels)
    obj_pw: float = 1.0  # objectness BCE positive weight
    iou_t: float = 0.20  # IoU training threshold
    anchor_t: float = 4.0  # anchor-multiple threshold for target assignment and AutoAnchor
    fl_gamma: float = 0.0  # focal loss gamma (0 disables focal loss)
    loss_ota: float = 0.0  # 1: YOLOv7's OTA loss (SimOTA target assignment, yolobone/models/loss_ota.py); 0: YOLOv5's
    hsv_h: float = 0.015  # HSV hue augmentation (fraction)
    hsv_s: float = 0.7  # HSV saturation augmentation (fraction)
    hsv_v: float = 0.4  # HSV value augmentation (fraction)
    degrees: float = 0.0  # rotation (+/- degrees)
    translate: float = 0.1  # translation (+/- fraction of the image size)
    scale: float = 0.5  # scale (+/- gain)
    shear: float = 0.0  # shear (+/- degrees)
    perspective: float = 0.0  # perspective (+/- fraction), range 0-0.001
    flipud: float = 0.0  # vertical flip probability
    fliplr: float = 0.5  # horizontal flip probability
    mosaic: float = 1.0  # mosaic probability
    mixup: float = 0.0  # mixup probability
    copy_paste: float = 0.0  # segment copy-paste probability (needs polygon labels; boxes-only data ignores it)
    mosaic9: float = 0.0  # share of mosaics (and mixup partners) tiled from 9 images instead of 4 (YOLOv7: 0.2)
    paste_in: float = 0.0  # YOLOv7's paste-in probability: it pastes objects cut along polygon segments, so on
    # boxes-only labels it pastes nothing, in YOLOv7 as here (read so that YOLOv7's hyp files load unchanged)
    anchors: Optional[float] = None  # anchors per output level for AutoAnchor re-estimation (None: keep the model's)

    def to_dict(self) -> dict:
        """Plain dict of all fields (what hyp.yaml and checkpoints store)."""
        return dataclasses.asdict(self)


_PROBABILITIES = ("flipud", "fliplr", "mosaic", "mixup", "copy_paste", "mosaic9", "paste_in")


def load_hyp(src: Union[str, os.PathLike, Mapping[str, Any], Hyp, None] = None) -> Hyp:
    """Hyp from a YAML path, a dict or a Hyp (None -> scratch-low defaults); unknown keys raise HypError."""
    if src is None:
        return Hyp()
    if isinstance(src, Hyp):
        return dataclasses.replace(src)
    where = "hyp dict"
    if isinstance(src, (str, os.PathLike)):
        path = find_config(src)
        where = str(path)
        if not path.is_file():
            raise HypError(f"hyp file not found: {path}")
        data = load_yaml(path, HypError)
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise HypError(f"{path}: expected a mapping of hyperparameters, got {type(data).__name__}")
    elif isinstance(src, Mapping):
        data = src
    else:
        raise HypError(f"hyp: expected a YAML path, a dict or a Hyp, got {type(src).__name__}")

    fields = {f.name for f in dataclasses.fields(Hyp)}
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise HypError(f"{where}: unknown hyperparameter {key!r} (known: {', '.join(sorted(fields))})")
        if key == "anchors" and value is None:
            values[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise HypError(f"{where}: hyperparameter {key!r} must be a finite number, got {value!r}")
        if key in _PROBABILITIES and not 0.0 <= value <= 1.0:
            raise HypError(f"{where}: hyperparameter {key!r} is a probability in [0, 1], got {value!r}")
        values[key] = float(value)
    return Hyp(**values)
