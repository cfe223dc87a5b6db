"""TrainOptions: every train.py flag as a typed field, so tests and scripts can call train() directly."""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Union

from engine.acceleration import parse_compile
from engine.optim import OPTIMIZERS
from utils.options import option_values

DEFAULT_DATA = "configs/data/shapes.yaml"
DEFAULT_HYP = "configs/hyp/hyp.scratch-low.yaml"


class TrainConfigError(ValueError):
    """An option value train() cannot use."""


@dataclass
class TrainOptions:
    """train.py's options (field = flag with dashes as underscores)."""

    weights: str = ""  # initial weights: a checkpoint written by this project ('' = from scratch)
    cfg: str = ""  # model YAML ('' = the one stored in --weights)
    backbone: str = ""  # replace cfg's backbone: a name in configs/backbones/ or a backbone YAML (models/compose.py)
    data: str = DEFAULT_DATA  # data YAML, or a built-in name ('shapes')
    hyp: Union[str, dict] = DEFAULT_HYP  # hyperparameter YAML (or a dict)
    epochs: int = 100
    batch_size: int = 16  # total over all DDP processes
    imgsz: int = 640  # train and val image size (pixels)
    rect: bool = False  # rectangular training batches
    resume: Union[bool, str] = False  # True = the most recent runs/train/*/weights/last.pt, or a path
    nosave: bool = False  # only save the final checkpoint
    noval: bool = False  # only validate the final epoch
    noautoanchor: bool = False
    noplots: bool = False
    cache: Optional[str] = None  # 'ram' or 'disk'
    image_weights: bool = False  # sample images by their classes' current mAP
    device: str = ""  # 'cpu', '0', '0,1', ...
    multi_scale: bool = False  # vary the image size +/- 50% per batch
    single_cls: bool = False  # train every class as one
    optimizer: str = "SGD"  # SGD, Adam or AdamW
    sync_bn: bool = False  # SyncBatchNorm in DDP (CUDA only)
    workers: int = 8  # max dataloader workers per process (capped by the CPU count)
    project: str = "runs/train"
    name: str = "exp"
    exist_ok: bool = False
    cos_lr: bool = False
    label_smoothing: float = 0.0
    patience: int = 100  # early stop after this many epochs without fitness improvement (0 disables)
    freeze: List[Union[int, str]] = field(default_factory=lambda: [0])  # N, layer indices, or 'backbone'
    save_period: int = -1  # also save weights/epoch{N}.pt every N epochs (-1 disables)
    seed: int = 0
    local_rank: int = -1  # set by torchrun through the LOCAL_RANK environment variable
    deterministic: bool = False  # deterministic torch kernels (bitwise-repeatable CPU runs)
    task: str = "detect"
    speedups: bool = True  # channels_last, fused optimizer, persistent workers, auto RAM cache (engine/acceleration)
    compile: str = "auto"  # torch.compile: 'auto' (CUDA only), 'on' or 'off'

    @classmethod
    def from_any(cls, opt: Union["TrainOptions", argparse.Namespace, Mapping[str, Any], None] = None,
                 **overrides: Any) -> "TrainOptions":
        """TrainOptions from an argparse Namespace, a dict or TrainOptions; unknown keys raise TrainConfigError."""
        values = option_values(opt, cls, overrides, TrainConfigError, "train()")
        o = cls(**values)
        o.check()
        return o

    def check(self) -> None:
        """Reject values no run could use, naming the flag."""
        if self.epochs < 1:
            raise TrainConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise TrainConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.imgsz < 32:
            raise TrainConfigError(f"--imgsz must be >= 32, got {self.imgsz}")
        if self.optimizer not in OPTIMIZERS:
            raise TrainConfigError(f"--optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        if self.cache not in (None, "ram", "disk", "auto"):
            raise TrainConfigError(f"--cache {self.cache!r}: expected 'ram', 'disk' or 'auto'")
        try:
            self.compile = parse_compile(self.compile)
        except ValueError as e:
            raise TrainConfigError(str(e)) from None
        if not 0.0 <= self.label_smoothing < 1.0:
            raise TrainConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.workers < 0:
            raise TrainConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.task != "detect":
            raise TrainConfigError(f"--task {self.task!r}: train() trains detectors; classification is "
                                   f"engine.classify_trainer.train_classifier")
        if not isinstance(self.freeze, (list, tuple)):
            self.freeze = [self.freeze]
        self.freeze = [int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v for v in self.freeze]
        bad = [v for v in self.freeze if not (isinstance(v, int) and v >= 0) and v != "backbone"]
        if bad:
            raise TrainConfigError(f"--freeze {bad[0]!r}: expected a layer count N, layer indices, or 'backbone'")

    def to_dict(self) -> dict:
        """Plain dict (what opt.yaml and checkpoints store)."""
        d = dataclasses.asdict(self)
        d["freeze"] = list(d["freeze"])
        return d
