"""RunOptions: the training options every task shares (a task's options dataclass extends it with its own flags)."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Collection, Dict, List, Mapping, Sequence, Union

from yolobone.engine.core.acceleration import COMPILE_CHOICES, parse_compile
from yolobone.engine.core.optim import OPTIMIZER_CHOICES
from yolobone.engine.core.trackers import DEFAULT_LOGGERS, LOGGER_CHOICES
from yolobone.utils.errors import YoloboneError
from yolobone.utils.options import at_least, between, check_options, one_of, option, option_values


TASK_CHOICES = ("detect", "classify")


class TrainConfigError(YoloboneError, ValueError):
    """An option value train() cannot use."""


def _loggers(names: Sequence[str]) -> List[str]:
    bad = [n for n in names if n not in LOGGER_CHOICES]
    if bad:
        raise ValueError(f"expected names from {', '.join(LOGGER_CHOICES)}")
    return list(names)


def _compile_mode(value: Union[str, bool, None]) -> str:
    try:
        return parse_compile(value)
    except ValueError:
        raise ValueError(f"expected one of {', '.join(COMPILE_CHOICES)}") from None


@dataclass
class RunOptions:
    """Options of the shared training engine: each field is a train.py flag (dashes for underscores) with its default,
    help and check; the task's parser is generated from them (yolobone/utils/options.py)."""

    task: str = option("detect", "what to train: detect, or classify (train.py --task classify --help lists its "
                                 "flags)", choices=TASK_CHOICES)
    weights: str = option("", "initial weights: a checkpoint of this project, YOLOv5 v7.0 or Ultralytics ('' = from "
                              "scratch)")
    cfg: Any = option("", "model YAML, e.g. configs/yolov5s.yaml ('' = the one stored in --weights, or the task's "
                          "default)")
    data: str = option("", "the task's data: a YAML, folder or built-in name ('' = its built-in dataset)")
    epochs: int = option(100, "total training epochs", check=at_least(1))
    batch_size: int = option(16, "total batch size for all DDP processes", check=at_least(1))
    nbs: int = option(0, "nominal batch size: gradients accumulate to this many images per optimizer step (0 = 64 "
                         "for detection, none for classify)", check=at_least(0))
    imgsz: int = option(640, "train and val image size (pixels)", aliases=("--img", "--img-size"))
    optimizer: str = option("SGD", "optimizer: SGD, Adam, AdamW, or auto (AdamW or SGD by schedule length)",
                            check=one_of(("", *OPTIMIZER_CHOICES)), choices=OPTIMIZER_CHOICES)
    cos_lr: bool = option(False, "cosine LR schedule instead of the linear one")
    label_smoothing: float = option(0.0, "label smoothing epsilon", check=between(0.0, 1.0, high_open=True))
    resume: Union[bool, str] = option(False, "resume the newest last.pt under --project, or the given one",
                                      nargs="?", const=True)
    nosave: bool = option(False, "only save the final checkpoint")
    noval: bool = option(False, "only validate the final epoch")
    noplots: bool = option(False, "save no plot files")
    device: str = option("", "cuda device, i.e. 0 or 0,1,2,3 or cpu")
    sync_bn: bool = option(False, "SyncBatchNorm in DDP (CUDA only)")
    workers: int = option(8, "max dataloader workers per process (capped by the CPU count)", check=at_least(0))
    project: str = option("runs/train", "save to project/name")
    name: str = option("exp", "save to project/name")
    exist_ok: bool = option(False, "existing project/name ok, do not increment")
    patience: int = option(100, "early stop after this many epochs without fitness improvement (0 disables)")
    save_period: int = option(-1, "also save weights/epoch{N}.pt every N epochs (< 1 disables)")
    seed: int = option(0, "global training seed")
    local_rank: int = option(-1, "set by torchrun (the LOCAL_RANK environment variable)", flag="--local_rank",
                             aliases=("--local-rank",))
    deterministic: bool = option(False, "deterministic torch kernels (bitwise-repeatable CPU runs)")
    speedups: bool = option(True, "plain eager loop (no channels_last, fused optimizer, persistent workers, auto RAM "
                                  "cache)", flag="--no-speedups", action="store_false")
    compile: str = option("auto", "torch.compile the training model: auto (CUDA only), on, off", nargs="?",
                          const="on", choices=COMPILE_CHOICES, check=_compile_mode)
    loggers: Sequence[str] = option(DEFAULT_LOGGERS, "run trackers: tensorboard csv (default), mlflow (./mlruns or "
                                    "MLFLOW_TRACKING_URI), wandb (WANDB_MODE=offline works without an account); "
                                    "docs/tracking.md", choices=LOGGER_CHOICES, check=_loggers)
    log_group: str = option("", "tracker group (MLflow parent run / W&B group), set by compare.py", cli=False)

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
        """Reject values no run could use, naming the flag (each field's own check, then the task's rules)."""
        check_options(self, TrainConfigError)
        if self.imgsz < self.MIN_IMGSZ:
            raise TrainConfigError(f"--imgsz {self.imgsz}: expected >= {self.MIN_IMGSZ}")

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (what opt.yaml and checkpoints store)."""
        return dataclasses.asdict(self)
