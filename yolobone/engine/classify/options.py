"""Classification training options: one dataclass field per flag, with its default, help and check (the mirror of
engine/detect/options.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Collection, Optional

from yolobone.data.classify import ClassifyAugment, default_crop_scale
from yolobone.engine.core.options import RunOptions, TrainConfigError
from yolobone.utils.options import above, at_least, between, option

DEFAULT_CFG = "configs/cls/yolov5s-cls.yaml"
# train.py's detection-only flags: its parser hands them over with --task classify, and they are dropped
DETECTION_ONLY = ("hyp", "backbone", "rect", "noautoanchor", "cache", "image_weights", "multi_scale", "close_mosaic",
                  "single_cls", "freeze", "freeze_epochs", "backbone_lr", "pretrained")

@dataclass
class ClassifyOptions(RunOptions):
    """train.py --task classify's options: the shared RunOptions with YOLOv5 classify/train.py's defaults (except the
    project folder and the built-in dataset), plus the classifier's own flags, each declared once."""

    task: str = "classify"
    cfg: Any = option("", f"cls YAML, or a detection YAML cut at --cutoff ('' = --weights', else {DEFAULT_CFG})")
    weights: str = option("", "initial weights: a classification or detection checkpoint")
    data: str = option("", "ImageFolder root, a YAML, or a built-in name ('' = the built-in shapes-cls set)")
    epochs: int = 10
    batch_size: int = option(64, "images per batch")
    imgsz: int = option(224, "train and val image size (pixels, square)")
    optimizer: str = "Adam"
    label_smoothing: float = 0.1
    project: str = "runs/train-cls"
    lr0: float = option(0.001, "initial learning rate", check=above(0))
    lrf: float = option(0.01, "final learning rate fraction (lr0 * lrf)", check=above(0))
    momentum: float = option(0.9, "SGD momentum / Adam beta1")
    decay: float = option(5e-5, "weight decay (not on biases or normalisation weights)")
    warmup_epochs: float = option(0.0, "LR warmup epochs (at least 100 iterations when > 0; YOLOv5's classifier "
                                       "has none)", check=at_least(0))
    dropout: Optional[float] = option(None, "Classify head dropout probability (default: as built, 0.0)",
                                      check=between(0.0, 1.0, high_open=True, optional=True))
    cutoff: Optional[int] = option(None, "detection YAML layers kept before Classify (default: its backbone; 9 for "
                                         "yolov5s = yolov5s-cls)")
    val_ratio: float = option(0.2, "val fraction when the data has no val/ folder (split per class, seeded)")
    crop_scale: Optional[float] = option(None, "smallest area fraction of the random resized crop (default: "
                                               "(64 / imgsz)^2 within [0.08, 1])",
                                         check=between(0.0, 1.0, low_open=True, optional=True))
    hflip: float = option(0.5, "horizontal flip probability", check=between(0.0, 1.0, what="a probability"))
    vflip: float = option(0.0, "vertical flip probability", check=between(0.0, 1.0, what="a probability"))
    jitter: float = option(0.4, "colour jitter strength: brightness, contrast, saturation (0 disables)",
                           check=at_least(0))

    MIN_IMGSZ: ClassVar[int] = 16
    IGNORED: ClassVar[Collection[str]] = DETECTION_ONLY

    def check(self) -> None:
        super().check()
        if self.task != "classify":
            raise TrainConfigError(f"--task {self.task!r}: these are classification options (--task classify)")

    @property
    def augment(self) -> ClassifyAugment:
        crop = default_crop_scale(self.imgsz) if self.crop_scale is None else self.crop_scale
        return ClassifyAugment(scale=(crop, 1.0), hflip=self.hflip, vflip=self.vflip, jitter=self.jitter)
