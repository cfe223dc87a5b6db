"""Train an image classifier from a cls YAML, a detection YAML cut after its backbone, or a checkpoint.

    python train.py --task classify --cfg configs/cls/yolov5n-cls.yaml --epochs 40 --imgsz 64 --batch-size 32 \
        --lr0 0.001 --crop-scale 0.5 --cos-lr --workers 0                                  # built-in shapes-cls
    python train.py --task classify --cfg configs/yolov5s.yaml --cutoff 9 --data path/to/root   # cut detector
    python train.py --task classify --resume runs/train-cls/exp/weights/last.pt

Library use: `train_classifier({"cfg": ..., "data": ..., "epochs": 2})` returns a ClassifyTrainResult.
Each epoch: train loss, then the EMA model's val loss and top-1/top-5 on the epoch's tqdm bar and in results.csv;
weights/last.pt every epoch, weights/best.pt by val top-1. At the end results.png and confusion_matrix.png.
Exact resume: the data order and augmentations depend only on (seed, epoch, index), and the torch RNG is reseeded
from (seed, epoch) at the start of each epoch, so an interrupted run resumed from last.pt ends with the same weights.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import yaml
from tqdm import tqdm

from engine.core.training_checkpoint import (END_STAGES, TRAIN, checkpoint_stage, float_state, latest_checkpoint,
                                  run_end_steps)
from engine.classify.data import (ClassifyAugment, ClassifyData, create_classify_loader, default_crop_scale,
                                  resolve_classify_data)
from engine.classify.val_run import ClassifyMetrics, evaluate
from engine.core.optim import OPTIMIZERS, build_optimizer, describe_optimizer, lr_lambda
from models.base import YAMLModel
from models.classification import ClassificationModel
from models.loading import model_from_checkpoint
from utils.option_values import option_values
from utils.checkpoint import CheckpointError, load_checkpoint, remove_stale_temp_files, save_checkpoint
from utils.cli import RESUME_HINT, run_cli
from utils.ema import ModelEMA
from utils.logging import LOGGER
from utils.paths import increment_path
from utils.torch_utils import init_seeds, select_device

DEFAULT_CFG = "configs/cls/yolov5s-cls.yaml"
MAX_GRAD_NORM = 10.0
RESULT_KEYS = ("train/loss", "val/loss", "metrics/accuracy_top1", "metrics/accuracy_top5", "lr/0")
EpochCallback = Callable[["ClassifyTrainer"], None]  # called after each epoch's checkpoints are written


class ClassifyConfigError(ValueError):
    """An option value the classification trainer cannot use."""


@dataclass
class ClassifyOptions:
    """Classification training options (field = flag with dashes as underscores; defaults as YOLOv5's
    classify/train.py, except the project folder and the built-in dataset)."""

    cfg: Union[str, Dict[str, Any]] = ""  # cls YAML, or detection YAML cut at --cutoff ('' = --weights', else yolov5s-cls)
    weights: str = ""  # initial weights: a classification or detection checkpoint of this project
    data: str = ""  # ImageFolder root, a YAML, or a built-in name ('' = the built-in shapes-cls set)
    epochs: int = 10
    batch_size: int = 64
    imgsz: int = 224  # train and val image size (pixels, square)
    optimizer: str = "Adam"  # SGD, Adam or AdamW
    lr0: float = 0.001  # initial learning rate
    lrf: float = 0.01  # final learning rate = lr0 * lrf
    momentum: float = 0.9  # SGD momentum / Adam beta1
    decay: float = 5e-5  # weight decay (not on biases or normalisation weights)
    cos_lr: bool = False  # cosine instead of linear LR decay
    label_smoothing: float = 0.1
    dropout: Optional[float] = None  # Classify head dropout probability (None = as built, 0.0)
    cutoff: Optional[int] = None  # detection layers kept before the Classify head (default: the backbone)
    val_ratio: float = 0.2  # val fraction when the data has no val/ folder (split per class, seeded)
    crop_scale: Optional[float] = None  # smallest crop area fraction (None = default_crop_scale(imgsz))
    hflip: float = 0.5  # horizontal flip probability
    vflip: float = 0.0  # vertical flip probability
    jitter: float = 0.4  # colour jitter (brightness, contrast, saturation)
    device: str = ""  # 'cpu', '0', ...
    workers: int = 8  # max dataloader workers (capped by the CPU count)
    project: str = "runs/train-cls"
    name: str = "exp"
    exist_ok: bool = False
    resume: Union[bool, str] = False  # True = the newest last.pt under --project, or a path
    nosave: bool = False  # only save the final checkpoints
    noplots: bool = False
    seed: int = 0
    task: str = "classify"

    @classmethod
    def from_any(cls, opt: Union["ClassifyOptions", argparse.Namespace, Mapping[str, Any], None] = None,
                 **overrides: Any) -> "ClassifyOptions":
        """From a Namespace (ours or train.py's detection one), a dict or ClassifyOptions.

        train.py's detection-only flags (hyp, rect, freeze, ...) are ignored; any other unknown key raises
        ClassifyConfigError. None values mean "the default" (train.py passes --data None when not given).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        detection_only = set(_detection_option_names()) - known
        given = set(vars(opt) if isinstance(opt, argparse.Namespace) else opt if isinstance(opt, Mapping) else ())
        ignored = sorted((given | set(overrides)) & detection_only)
        if ignored:
            LOGGER.debug(f"classification training ignores detection option(s): {', '.join(ignored)}")
        values = option_values(opt, cls, overrides, ClassifyConfigError, "classification training",
                               ignore=detection_only)
        values = {k: v for k, v in values.items() if v is not None}
        o = cls(**values)
        o.check()
        return o

    def check(self) -> None:
        """Reject values no run could use, naming the flag."""
        if self.task != "classify":
            raise ClassifyConfigError(f"--task {self.task!r}: this trainer trains classifiers (--task classify)")
        if self.epochs < 1:
            raise ClassifyConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ClassifyConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.imgsz < 16:
            raise ClassifyConfigError(f"--imgsz must be >= 16, got {self.imgsz}")
        if self.optimizer not in OPTIMIZERS:
            raise ClassifyConfigError(f"--optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        if self.lr0 <= 0 or self.lrf <= 0:
            raise ClassifyConfigError(f"--lr0 and --lrf must be > 0, got {self.lr0} and {self.lrf}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ClassifyConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ClassifyConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.crop_scale is not None and not 0.0 < self.crop_scale <= 1.0:
            raise ClassifyConfigError(f"--crop-scale must be in (0, 1], got {self.crop_scale}")
        for flag, p in (("--hflip", self.hflip), ("--vflip", self.vflip)):
            if not 0.0 <= p <= 1.0:
                raise ClassifyConfigError(f"{flag} must be a probability in [0, 1], got {p}")
        if self.jitter < 0:
            raise ClassifyConfigError(f"--jitter must be >= 0, got {self.jitter}")
        if self.workers < 0:
            raise ClassifyConfigError(f"--workers must be >= 0, got {self.workers}")

    @property
    def augment(self) -> ClassifyAugment:
        crop = default_crop_scale(self.imgsz) if self.crop_scale is None else self.crop_scale
        return ClassifyAugment(scale=(crop, 1.0), hflip=self.hflip, vflip=self.vflip, jitter=self.jitter)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _detection_option_names() -> List[str]:
    """train.py's detection flags (its parser hands them over with --task classify)."""
    try:
        from engine.detect.options import TrainOptions
    except ImportError:  # the detection trainer is optional for classification
        return []
    return [f.name for f in dataclasses.fields(TrainOptions)] + ["local_rank"]


@dataclass
class ClassifyTrainResult:
    """What train_classifier returns."""

    save_dir: Path
    last: Optional[Path]
    best: Optional[Path]
    best_fitness: float  # best val top-1
    best_epoch: int
    epochs_completed: int
    history: List[Dict[str, float]]  # per epoch of this call: RESULT_KEYS values
    final: Optional[ClassifyMetrics]  # best.pt evaluated on val at the end
    model: Optional[nn.Module]  # best.pt's model, eval mode (None with --nosave and no best)
    data: ClassifyData


# ------------------------------------------------------------------------------------------------ model
def build_classifier(o: ClassifyOptions, nc: int, ckpt: Optional[Dict[str, Any]] = None) -> YAMLModel:
    """The model to train: resumed, from --weights (classification or detection checkpoint), or from --cfg."""
    if ckpt is not None:  # resume: the exact module tree of the interrupted run
        return model_from_checkpoint(ckpt, str(o.resume), key="model")
    if o.weights:
        w = load_checkpoint(o.weights)
        if w.get("task", "detect") == "classify":
            if o.cfg:
                LOGGER.warning(f"--cfg {o.cfg} ignored: the model comes from the classification weights {o.weights}")
            if int(w.get("nc") or 0) == nc:
                return model_from_checkpoint(w, o.weights)
            model = ClassificationModel(w["model_yaml"], nc=nc)  # new class count: everything but the head
            model.transfer_weights(w["model"])
            return model
        if o.cfg and not str(o.cfg).endswith(".pt"):
            LOGGER.warning(f"--cfg {o.cfg} ignored: the backbone comes from the detection weights {o.weights}")
        return ClassificationModel(o.weights, nc=nc, cutoff=o.cutoff)
    return ClassificationModel(o.cfg or DEFAULT_CFG, nc=nc, cutoff=o.cutoff)


def _resume_checkpoint(o: ClassifyOptions) -> Tuple[Path, Dict[str, Any]]:
    path = Path(o.resume) if isinstance(o.resume, str) and o.resume not in ("True", "true", "1") \
        else latest_checkpoint(Path(o.project))
    ckpt = load_checkpoint(path)
    if ckpt.get("task") != "classify":
        raise CheckpointError(f"{path}: a {ckpt.get('task', 'detect')!r} checkpoint cannot resume classification "
                              f"training")
    if (ckpt.get("epoch", -1) < 0 or not ckpt.get("resume_state") or not isinstance(ckpt.get("opt"), dict)
            or checkpoint_stage(ckpt, path) == "done"):
        raise CheckpointError(f"{path}: training already finished (final checkpoint), nothing to resume; "
                              f"start a new run with --weights {path}")
    return path, ckpt


# ------------------------------------------------------------------------------------------------ training
class ClassifyTrainer:
    """One training run; train_classifier() is the entry point."""

    def __init__(self, opt: Union[ClassifyOptions, argparse.Namespace, Mapping[str, Any], None],
                 on_epoch_end: Optional[EpochCallback] = None, verbose: bool = True):
        self.o = ClassifyOptions.from_any(opt)
        self.on_epoch_end = on_epoch_end
        self.verbose = verbose
        self.ckpt: Optional[Dict[str, Any]] = None
        self.end_ckpt: Optional[Dict[str, Any]] = None  # last.pt's content once every epoch is done
        if self.o.resume:
            path, self.ckpt = _resume_checkpoint(self.o)
            keep = {k: getattr(self.o, k) for k in ("device", "workers") if getattr(self.o, k) != getattr(
                ClassifyOptions, k)}
            self.o = ClassifyOptions.from_any({**self.ckpt["opt"], **keep, "resume": str(path)})
            self.save_dir = path.parent.parent
            LOGGER.info(f"Resuming training from {path} (epoch {self.ckpt['epoch'] + 1} of {self.o.epochs})")
        else:
            self.save_dir = increment_path(Path(self.o.project) / self.o.name, exist_ok=self.o.exist_ok, mkdir=True)
        self.wdir = self.save_dir / "weights"
        self.last, self.best = self.wdir / "last.pt", self.wdir / "best.pt"
        self.device = select_device(self.o.device)
        self.amp = self.device.type == "cuda"

    def setup(self) -> None:
        o = self.o
        init_seeds(o.seed)
        self.wdir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.wdir)  # left by a kill during a checkpoint write
        if self.ckpt is None:
            (self.save_dir / "opt.yaml").write_text(yaml.safe_dump(o.to_dict(), sort_keys=False))
        self.data = resolve_classify_data(o.data, val_ratio=o.val_ratio, seed=o.seed, verbose=self.verbose)
        model = build_classifier(o, self.data.nc, self.ckpt)
        if model.nc != self.data.nc:
            raise ClassifyConfigError(f"model has {model.nc} classes but the data has {self.data.nc}")
        model.names = list(self.data.names)
        if o.dropout is not None:
            model.model[-1].drop.p = o.dropout
        self.model = model.to(self.device)
        self.optimizer = build_optimizer(self.model, o.optimizer, o.lr0, o.momentum, o.decay)
        LOGGER.info(describe_optimizer(self.optimizer, o.lr0))
        self.lf = lr_lambda(o.epochs, o.lrf, o.cos_lr)
        self.ema = ModelEMA(self.model)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=o.label_smoothing)
        self.start_epoch, self.best_fitness, self.best_epoch = 0, 0.0, -1
        if self.ckpt is not None:
            self._restore(self.ckpt)
        self.epoch = self.start_epoch - 1  # last finished epoch
        self.train_loader = create_classify_loader(self.data.train, o.imgsz, o.batch_size, augment=True, shuffle=True,
                                                   workers=o.workers, seed=o.seed, aug=o.augment)
        self.val_loader = create_classify_loader(self.data.val, o.imgsz, o.batch_size * 2, workers=o.workers)
        self.csv = self.save_dir / "results.csv"
        self.history: List[Dict[str, float]] = []

    def _restore(self, ckpt: Dict[str, Any]) -> None:
        state = ckpt["resume_state"]
        self.model.load_state_dict(state["train_model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.ema.load_state_dict(ckpt["ema"], ckpt["updates"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best_fitness = float(ckpt.get("best_fitness") or 0.0)
        self.best_epoch = int(state.get("best_epoch", -1))
        stage = checkpoint_stage(ckpt, Path(str(self.o.resume)))
        if stage != TRAIN:  # killed after the last epoch: fit() trains nothing and finish() does what is left
            ckpt["stage"], self.end_ckpt = stage, ckpt
            LOGGER.info(f"All {self.o.epochs} epochs are done, completing the end of the run (from step '{stage}' "
                        f"of {', '.join(END_STAGES)})")

    def fit(self) -> ClassifyTrainResult:
        o = self.o
        t0 = time.time()
        LOGGER.info(f"Image sizes {o.imgsz} train, {o.imgsz} val\nUsing {self.train_loader.num_workers} dataloader "
                    f"workers\nLogging results to {self.save_dir}\nStarting {self.model.yaml_file} training on "
                    f"{self.data.root} for {o.epochs} epochs...\n\n"
                    f"{'Epoch':>10}{'GPU_mem':>10}{'train_loss':>12}{'val_loss':>12}{'top1_acc':>12}{'top5_acc':>12}")
        for epoch in range(self.start_epoch, o.epochs):
            row = self.train_one_epoch(epoch)
            self.end_epoch(epoch, row)
        LOGGER.info(f"\nTraining complete ({(time.time() - t0) / 3600:.3f} hours)")
        return self.finish()

    def train_one_epoch(self, epoch: int) -> Dict[str, float]:
        o = self.o
        torch.manual_seed(o.seed * 100_003 + epoch)  # dropout etc.: resumed epochs draw the same numbers
        lr = o.lr0 * self.lf(epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.model.train()
        self.train_loader.set_epoch(epoch)
        nb = len(self.train_loader)
        bar = tqdm(self.train_loader, total=nb, bar_format="{l_bar}{bar:10}{r_bar}", disable=not self.verbose)
        tloss = 0.0
        for i, (images, labels) in enumerate(bar):
            images, labels = images.to(self.device, non_blocking=True), labels.to(self.device)
            with torch.autocast(device_type=self.device.type, enabled=self.amp):
                loss = self.criterion(self.model(images), labels)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=MAX_GRAD_NORM)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.ema.update(self.model)
            tloss = (tloss * i + loss.item()) / (i + 1)
            bar.set_description(self._progress(epoch, tloss))
            if i == nb - 1:  # validate while the bar is still open, so its last line shows the val figures
                metrics = evaluate(self.ema.ema, self.val_loader, self.device, self.criterion,
                                   names=self.data.names, half=self.amp)
                bar.set_description(self._progress(epoch, tloss) + f"{metrics.loss:>12.3g}{metrics.top1:>12.3g}"
                                                                   f"{metrics.top5:>12.3g}")
        return {"train/loss": tloss, "val/loss": metrics.loss, "metrics/accuracy_top1": metrics.top1,
                "metrics/accuracy_top5": metrics.top5, "lr/0": lr}

    def _progress(self, epoch: int, tloss: float) -> str:
        mem = f"{torch.cuda.memory_reserved(self.device) / 1e9:.3g}G" if self.device.type == "cuda" else "0G"
        return f"{f'{epoch + 1}/{self.o.epochs}':>10}{mem:>10}{tloss:>12.3g}"

    def end_epoch(self, epoch: int, row: Dict[str, float]) -> None:
        self.history.append(row)
        with open(self.csv, "a") as f:
            if f.tell() == 0:
                f.write(",".join(f"{k:>24}" for k in ("epoch",) + RESULT_KEYS) + "\n")
            f.write(",".join(f"{v:>24.5g}" for v in (epoch, *(row[k] for k in RESULT_KEYS))) + "\n")
        fitness = row["metrics/accuracy_top1"]
        if fitness > self.best_fitness or self.best_epoch < 0:
            self.best_fitness, self.best_epoch = max(fitness, self.best_fitness), epoch
        final = epoch + 1 == self.o.epochs
        if not self.o.nosave or final:
            ckpt = self.checkpoint(epoch)
            ckpt["stage"] = END_STAGES[0] if final else TRAIN  # after the last epoch, finish() writes best.pt
            save_checkpoint(ckpt, self.last)
            if self.best_epoch == epoch and not final:
                save_checkpoint(ckpt, self.best)
            if final:
                self.end_ckpt = ckpt
        self.epoch = epoch
        if self.on_epoch_end is not None:
            self.on_epoch_end(self)

    def checkpoint(self, epoch: int) -> Dict[str, Any]:
        o = self.o
        ema_state = self.ema.state_dict()
        return {"model": ema_state, "model_yaml": copy.deepcopy(self.model.yaml), "task": "classify",
                "nc": self.data.nc, "names": list(self.data.names), "epoch": epoch, "best_fitness": self.best_fitness,
                "ema": ema_state, "updates": self.ema.updates, "optimizer": self.optimizer.state_dict(),
                "resume_state": {"train_model": float_state(self.model), "scaler": self.scaler.state_dict(),
                                 "best_epoch": self.best_epoch},
                "hyp": {k: getattr(o, k) for k in ("lr0", "lrf", "momentum", "decay", "label_smoothing", "crop_scale",
                                                   "hflip", "vflip", "jitter")},
                "opt": o.to_dict(), "date": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def finish(self) -> ClassifyTrainResult:
        """best.pt, final evaluation with plots, strip (training_checkpoint.run_end_steps), from where last.pt stands."""
        final, model = None, None

        def final_evaluation(target: Path) -> Tuple[ClassifyMetrics, YAMLModel]:
            loaded = model_from_checkpoint(load_checkpoint(target), str(target)).to(self.device).eval()
            metrics = evaluate(loaded, self.val_loader, self.device, self.criterion, names=self.data.names,
                               half=self.amp, desc=f"{'Validating ' + target.name:>24}" if self.verbose else None)
            if self.verbose:
                LOGGER.info(metrics.table())
            if not self.o.noplots and self.csv.is_file():
                from engine.classify.plots import plot_classify_confusion, plot_classify_results

                plot_classify_results(self.csv)
                plot_classify_confusion(metrics.confusion, metrics.names, self.save_dir / "confusion_matrix.png")
            return metrics, loaded

        if self.end_ckpt is not None:
            last_is_best = self.end_ckpt["resume_state"].get("best_epoch") == self.end_ckpt["epoch"]
            final, model = run_end_steps(self.end_ckpt, self.last, self.best, last_is_best, final_evaluation) or (
                None, None)
        data_arg = self.o.data or "''"
        LOGGER.info(f"Results saved to {self.save_dir}\n"
                    f"Predict:         python detect.py --task classify --weights {self.best} --source im.jpg\n"
                    f"Validate:        python val.py --task classify --weights {self.best} --data {data_arg} "
                    f"--imgsz {self.o.imgsz}")
        return ClassifyTrainResult(save_dir=self.save_dir, last=self.last if self.last.is_file() else None,
                                   best=self.best if self.best.is_file() else None, best_fitness=self.best_fitness,
                                   best_epoch=self.best_epoch, epochs_completed=self.o.epochs, history=self.history,
                                   final=final, model=model, data=self.data)


def train_classifier(opt: Union[ClassifyOptions, argparse.Namespace, Mapping[str, Any], None] = None,
                     on_epoch_end: Optional[EpochCallback] = None, verbose: bool = True) -> ClassifyTrainResult:
    """Train a classifier; `on_epoch_end(trainer)` runs after each epoch's checkpoints are written
    (trainer.epoch, trainer.history[-1], trainer.ema.ema are that epoch's)."""
    trainer = ClassifyTrainer(opt, on_epoch_end=on_epoch_end, verbose=verbose)
    trainer.setup()
    return trainer.fit()


# ------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    d = ClassifyOptions()
    p = argparse.ArgumentParser(description="Train an image classifier (train.py --task classify).")
    p.add_argument("--task", default="classify", choices=["classify"], help="classify (train.py dispatches on it)")
    p.add_argument("--cfg", type=str, default=d.cfg, help=f"cls YAML or detection YAML (default {DEFAULT_CFG})")
    p.add_argument("--weights", type=str, default=d.weights, help="initial weights: classification or detection .pt")
    p.add_argument("--data", type=str, default=d.data, help="ImageFolder root, YAML or built-in name ('' = shapes-cls)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="total training epochs")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per batch")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz, help="train, val image size")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default=d.optimizer, help="optimizer")
    p.add_argument("--lr0", type=float, default=d.lr0, help="initial learning rate")
    p.add_argument("--lrf", type=float, default=d.lrf, help="final learning rate fraction (lr0 * lrf)")
    p.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum / Adam beta1")
    p.add_argument("--decay", type=float, default=d.decay, help="weight decay")
    p.add_argument("--cos-lr", action="store_true", help="cosine LR schedule")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help="label smoothing epsilon")
    p.add_argument("--dropout", type=float, default=None, help="Classify head dropout probability")
    p.add_argument("--cutoff", type=int, default=None, help="detection YAML layers kept before Classify "
                                                            "(default: its backbone; 9 for yolov5s = yolov5s-cls)")
    p.add_argument("--val-ratio", type=float, default=d.val_ratio, help="val fraction if the data has no val/")
    p.add_argument("--crop-scale", type=float, default=d.crop_scale,
                   help="min area fraction of the random resized crop (default: (64 / imgsz)^2 within [0.08, 1])")
    p.add_argument("--hflip", type=float, default=d.hflip, help="horizontal flip probability")
    p.add_argument("--vflip", type=float, default=d.vflip, help="vertical flip probability")
    p.add_argument("--jitter", type=float, default=d.jitter, help="colour jitter strength (0 disables)")
    p.add_argument("--device", default=d.device, help="cuda device, i.e. 0 or cpu")
    p.add_argument("--workers", type=int, default=d.workers, help="max dataloader workers")
    p.add_argument("--project", default=d.project, help="save to project/name")
    p.add_argument("--name", default=d.name, help="save to project/name")
    p.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
    p.add_argument("--resume", nargs="?", const=True, default=False, help="resume the newest or the given last.pt")
    p.add_argument("--nosave", action="store_true", help="only save the final checkpoints")
    p.add_argument("--noplots", action="store_true", help="save no plots")
    p.add_argument("--seed", type=int, default=d.seed, help="global training seed")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """train.py --task classify: parse the classification flags and train; input errors exit 2."""
    opt = build_parser().parse_args(argv)

    def job() -> None:
        train_classifier(opt)

    return run_cli(job, errors=(ValueError, FileNotFoundError), interrupted=RESUME_HINT)
