"""RunOptions: the training options every task shares (a task's options dataclass extends it with its own flags)."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Collection, Dict, Mapping, Sequence, Union

from yolobone.engine.core.acceleration import parse_compile
from yolobone.engine.core.optim import OPTIMIZER_CHOICES
from yolobone.engine.core.trackers import DEFAULT_LOGGERS, check_loggers
from yolobone.utils.errors import YoloboneError
from yolobone.utils.option_values import option_values


class TrainConfigError(YoloboneError, ValueError):
    """An option value train() cannot use."""


@dataclass
class RunOptions:
    """Options of the shared training engine (field = flag with dashes as underscores)."""

    weights: str = ""  # initial weights: a checkpoint written by this project ('' = from scratch)
    cfg: Any = ""  # model YAML (path or dict; '' = the one stored in --weights, or the task's default)
    data: str = ""  # the task's data argument ('' = its built-in dataset)
    epochs: int = 100
    batch_size: int = 16  # total over all DDP processes
    nbs: int = 0  # nominal batch: images per optimizer step (0 = the task default: 64 detect, none classify)
    imgsz: int = 640  # train and val image size (pixels)
    optimizer: str = "SGD"  # SGD, Adam, AdamW or auto (AdamW or SGD by schedule length, engine/core/optim.py)
    cos_lr: bool = False  # cosine instead of linear LR decay
    label_smoothing: float = 0.0
    resume: Union[bool, str] = False  # True = the newest last*.pt under --project, or a path
    nosave: bool = False  # only save the final checkpoint
    noval: bool = False  # only validate the final epoch
    noplots: bool = False
    device: str = ""  # 'cpu', '0', '0,1', ...
    sync_bn: bool = False  # SyncBatchNorm in DDP (CUDA only)
    workers: int = 8  # max dataloader workers per process (capped by the CPU count)
    project: str = "runs/train"
    name: str = "exp"
    exist_ok: bool = False
    patience: int = 100  # early stop after this many epochs without fitness improvement (0 disables)
    save_period: int = -1  # also save weights/epoch{N}.pt every N epochs (-1 disables)
    seed: int = 0
    local_rank: int = -1  # set by torchrun through the LOCAL_RANK environment variable
    deterministic: bool = False  # deterministic torch kernels (bitwise-repeatable CPU runs)
    task: str = "detect"
    speedups: bool = True  # channels_last, fused optimizer, persistent workers, auto RAM cache (yolobone/engine/core/acceleration)
    compile: str = "auto"  # torch.compile: 'auto' (CUDA only), 'on' or 'off'
    loggers: Sequence[str] = DEFAULT_LOGGERS  # tensorboard, csv, mlflow, wandb (results.csv is always written)
    log_group: str = ""  # tracker group (MLflow parent run / W&B group): set by compare.py for its runs

    MIN_IMGSZ: ClassVar[int] = 32
    IGNORED: ClassVar[Collection[str]] = ()  # other tasks' train.py keys accepted and dropped (from a shared parser)

    @classmethod
    def from_any(cls, opt: Union["RunOptions", argparse.Namespace, Mapping[str, Any], None] = None,
                 **overrides: Any) -> "RunOptions":
        """Options from an argparse Namespace, a dict or an instance; unknown keys raise TrainConfigError.
        None values mean "the default" (train.py passes --data None when not given)."""
        values = option_values(opt, cls, overrides, TrainConfigError, "train()", ignore=cls.IGNORED)
        o = cls(**{k: v for k, v in values.items() if v is not None})
        o.check()
        return o

    def check(self) -> None:
        """Reject values no run could use, naming the flag."""
        rules = (("--epochs must be >= 1", self.epochs >= 1), ("--batch-size must be >= 1", self.batch_size >= 1),
                 (f"--imgsz must be >= {self.MIN_IMGSZ}", self.imgsz >= self.MIN_IMGSZ),
                 ("--label-smoothing must be in [0, 1)", 0.0 <= self.label_smoothing < 1.0),
                 ("--workers must be >= 0", self.workers >= 0), ("--nbs must be >= 0", self.nbs >= 0))
        values = (self.epochs, self.batch_size, self.imgsz, self.label_smoothing, self.workers, self.nbs)
        for (rule, ok), value in zip(rules, values):
            if not ok:
                raise TrainConfigError(f"{rule}, got {value}")
        if self.optimizer and self.optimizer not in OPTIMIZER_CHOICES:  # '' = the task's default for the model
            raise TrainConfigError(f"--optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZER_CHOICES)}")
        problem = check_loggers(self.loggers)
        if problem:
            raise TrainConfigError(problem)
        self.loggers = list(self.loggers)
        try:
            self.compile = parse_compile(self.compile)
        except ValueError as e:
            raise TrainConfigError(str(e)) from None

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (what opt.yaml and checkpoints store)."""
        return dataclasses.asdict(self)
