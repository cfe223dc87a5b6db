"""Classification training options: one dataclass field per flag, with its default and its check (the mirror of
engine/detect/options.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Collection, Optional

from yolobone.data.classify import ClassifyAugment, default_crop_scale
from yolobone.engine.core.options import RunOptions, TrainConfigError

DEFAULT_CFG = "configs/cls/yolov5s-cls.yaml"
# train.py's detection-only flags: its parser hands them over with --task classify, and they are dropped
DETECTION_ONLY = ("hyp", "backbone", "rect", "noautoanchor", "cache", "image_weights", "multi_scale", "close_mosaic",
                  "single_cls", "freeze", "freeze_epochs", "backbone_lr", "pretrained")

@dataclass
class ClassifyOptions(RunOptions):
    """Classification training options (field = flag with dashes as underscores; defaults as YOLOv5's
    classify/train.py, except the project folder and the built-in dataset)."""

    cfg: Any = ""  # cls YAML, or detection YAML cut at --cutoff ('' = --weights', else yolov5s-cls)
    data: str = ""  # ImageFolder root, a YAML, or a built-in name ('' = the built-in shapes-cls set)
    epochs: int = 10
    batch_size: int = 64
    imgsz: int = 224  # train and val image size (pixels, square)
    optimizer: str = "Adam"
    label_smoothing: float = 0.1
    project: str = "runs/train-cls"
    lr0: float = 0.001  # initial learning rate
    lrf: float = 0.01  # final learning rate = lr0 * lrf
    momentum: float = 0.9  # SGD momentum / Adam beta1
    decay: float = 5e-5  # weight decay (not on biases or normalisation weights)
    warmup_epochs: float = 0.0  # LR warmup epochs (at least 100 iterations when > 0; YOLOv5's classifier has none)
    dropout: Optional[float] = None  # Classify head dropout probability (None = as built, 0.0)
    cutoff: Optional[int] = None  # detection layers kept before the Classify head (default: the backbone)
    val_ratio: float = 0.2  # val fraction when the data has no val/ folder (split per class, seeded)
    crop_scale: Optional[float] = None  # smallest crop area fraction (None = default_crop_scale(imgsz))
    hflip: float = 0.5  # horizontal flip probability
    vflip: float = 0.0  # vertical flip probability
    jitter: float = 0.4  # colour jitter (brightness, contrast, saturation)
    task: str = "classify"

    MIN_IMGSZ: ClassVar[int] = 16
    IGNORED: ClassVar[Collection[str]] = DETECTION_ONLY

    def check(self) -> None:
        """Reject values no run could use, naming the flag."""
        super().check()
        if self.task != "classify":
            raise TrainConfigError(f"--task {self.task!r}: these are classification options (--task classify)")
        if self.lr0 <= 0 or self.lrf <= 0:
            raise TrainConfigError(f"--lr0 and --lrf must be > 0, got {self.lr0} and {self.lrf}")
        if self.warmup_epochs < 0:
            raise TrainConfigError(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise TrainConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.crop_scale is not None and not 0.0 < self.crop_scale <= 1.0:
            raise TrainConfigError(f"--crop-scale must be in (0, 1], got {self.crop_scale}")
        for flag, p in (("--hflip", self.hflip), ("--vflip", self.vflip)):
            if not 0.0 <= p <= 1.0:
                raise TrainConfigError(f"{flag} must be a probability in [0, 1], got {p}")
        if self.jitter < 0:
            raise TrainConfigError(f"--jitter must be >= 0, got {self.jitter}")

    @property
    def augment(self) -> ClassifyAugment:
        crop = default_crop_scale(self.imgsz) if self.crop_scale is None else self.crop_scale
        return ClassifyAugment(scale=(crop, 1.0), hflip=self.hflip, vflip=self.vflip, jitter=self.jitter)
