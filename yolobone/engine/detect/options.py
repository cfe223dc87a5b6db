"""DetectOptions: train.py's detection flags as typed fields, on top of the shared RunOptions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Collection, Dict, List, Optional, Sequence, Union

from yolobone.engine.core.options import RunOptions, TrainConfigError
from yolobone.utils.options import above, at_least, one_of, option

DEFAULT_DATA = "configs/data/shapes.yaml"
DEFAULT_HYP = "configs/hyp/hyp.scratch-low.yaml"  # anchor-based (YOLOv5) heads
ANCHOR_FREE_HYP = "configs/hyp/hyp.ultralytics.yaml"  # anchor-free heads (YOLOv8 / YOLO11 / YOLOv5u)
ANCHOR_FREE_CLOSE_MOSAIC = 10  # Ultralytics' default close_mosaic


def _freeze(values: Sequence[Union[int, str]]) -> List[Union[int, str]]:
    """'10' -> [10]; '0 1 2' -> [0, 1, 2]; 'backbone' stays a word."""
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    values = [int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v for v in values]
    if any(not (isinstance(v, int) and v >= 0) and v != "backbone" for v in values):
        raise ValueError("expected a layer count N, layer indices, or 'backbone'")
    return values


@dataclass
class DetectOptions(RunOptions):
    """train.py's options for --task detect: the shared RunOptions plus the detection flags, each declared once."""

    task: str = "detect"
    data: str = option(DEFAULT_DATA, "data YAML (YOLO, COCO or VOC layout) or a built-in name (default: shapes)")
    cfg: str = option("", "model YAML, e.g. configs/yolov5s.yaml ('' = the one stored in --weights)")
    backbone: str = option("", "replace the backbone of --cfg: a name in configs/backbones/ (resnet50, ...) or a "
                               "backbone YAML")
    hyp: Union[str, dict] = option("", f"hyperparameter YAML (default {DEFAULT_HYP}; {ANCHOR_FREE_HYP} for "
                                       "anchor-free heads)")
    rect: bool = option(False, "rectangular training batches")
    noautoanchor: bool = option(False, "disable AutoAnchor")
    cache: Optional[str] = option(None, "cache images in 'ram' (--cache alone) or on 'disk'; 'auto': RAM when it "
                                        "fits (the default with speed-ups on)", nargs="?", const="ram",
                                  check=one_of(("ram", "disk", "auto"), optional=True))
    image_weights: bool = option(False, "sample training images by their classes' current mAP")
    multi_scale: bool = option(False, "vary the image size +/- 50%% per batch")
    close_mosaic: Optional[int] = option(None, "train the last N epochs without mosaic (0: never; default 10 for "
                                               "anchor-free heads, else 0)", check=at_least(0, optional=True))
    optimizer: str = option("", "optimizer (default: auto for anchor-free heads, SGD for anchor-based ones)")
    single_cls: bool = option(False, "train multi-class data as single-class")
    freeze: List[Union[int, str]] = option(help="freeze layers: backbone=10, first3=0 1 2, or 'backbone' (the YAML's "
                                                "backbone section)", factory=lambda: [0], check=_freeze)
    freeze_epochs: int = option(0, "staged unfreezing: the --freeze layers train again after N epochs (0: frozen "
                                   "throughout)", check=at_least(0))
    backbone_lr: float = option(1.0, "learning-rate multiplier for the backbone section's parameters (e.g. 0.1 for a "
                                     "pretrained one)", check=above(0))
    pretrained: bool = option(True, "backbone blocks load their ImageNet weights, downloaded once into the cache; "
                                    "--pretrained false trains them from random init")

    MIN_IMGSZ: ClassVar[int] = 32
    IGNORED: ClassVar[Collection[str]] = ()

    def check(self) -> None:
        super().check()
        if self.task != "detect":
            raise TrainConfigError(f"--task {self.task!r}: these are detection options (--task detect)")
        if self.freeze_epochs and self.freeze in ([], [0]):
            raise TrainConfigError(f"--freeze-epochs {self.freeze_epochs}: expected together with --freeze (e.g. "
                                   f"--freeze backbone --freeze-epochs 3)")

    def to_dict(self) -> Dict[str, Any]:
        d = super().to_dict()
        d["freeze"] = list(d["freeze"])
        return d
