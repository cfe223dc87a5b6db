"""ClassifyTask: image classification for the shared Trainer (ImageFolder data, cls YAMLs or cut detection YAMLs).

    python train.py --task classify --cfg configs/cls/yolov5n-cls.yaml --epochs 40 --imgsz 64 --batch-size 32 \
        --lr0 0.001 --crop-scale 0.5 --cos-lr --workers 0                                  # built-in shapes-cls
    python train.py --task classify --cfg configs/yolov5s.yaml --cutoff 9 --data path/to/root   # cut detector
    python train.py --task classify --resume runs/train-cls/exp/weights/last.pt

Library use: `engine.train.train({"task": "classify", "cfg": ..., "data": ..., "epochs": 2})`.
Each epoch: train loss, then the EMA model's val loss and top-1/top-5 in results.csv and TensorBoard;
weights/last.pt every epoch, weights/best.pt by val top-1. At the end results.png and confusion_matrix.png.
Warmup, EMA, AMP, early stopping (--patience), DDP and exact resume are the shared engine's (engine.core.trainer).
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from yolobone.data.classify import create_classify_loader, resolve_classify_data
from yolobone.engine.classify.options import DEFAULT_CFG, ClassifyOptions
from yolobone.engine.classify.validator import ClassifyMetrics, evaluate
from yolobone.engine.core import acceleration as accel
from yolobone.engine.core.ddp import zero_first
from yolobone.engine.core.options import TrainConfigError
from yolobone.engine.core.task import Batch, Loaders, LossSetup, TaskData, TrainingRules, TrainTask
from yolobone.models.base import YAMLModel
from yolobone.models.classification import ClassificationModel
from yolobone.models.loading import model_from_checkpoint
from yolobone.utils.checkpoint import load_checkpoint
from yolobone.utils.cli import RESUME_HINT, run_cli
from yolobone.utils.hyp import Hyp, load_hyp
from yolobone.utils.logging import LOGGER
from yolobone.utils.options import add_options

if TYPE_CHECKING:
    from yolobone.engine.core.trainer import Trainer

RESULT_KEYS = ("train/loss", "val/loss", "metrics/accuracy_top1", "metrics/accuracy_top5", "lr/0")


def build_classifier(o: ClassifyOptions, nc: int, ckpt: Optional[Dict[str, Any]] = None) -> YAMLModel:
    """A new model: from --weights (classification or detection checkpoint; ckpt when already loaded), or from
    --cfg."""
    if o.weights:
        w = load_checkpoint(o.weights) if ckpt is None else ckpt
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


class ClassifyTask(TrainTask):
    name = "classify"
    options = ClassifyOptions
    result_keys = RESULT_KEYS
    n_results = 3  # val loss, top-1, top-5
    loss_names = ("loss",)
    nominal_batch = None  # as YOLOv5's classifier: no gradient accumulation, no weight-decay scaling
    default_optimizer = ClassifyOptions.optimizer
    min_imgsz = ClassifyOptions.MIN_IMGSZ
    default_data = ClassifyOptions.data
    # contiguous was faster than channels_last for yolov5s-cls steps at 32 px on CPU (docs/training.md, Speed)
    channels_last_on_cpu = False

    def dataset_nc(self, data: str, seed: int = 0) -> int:
        return resolve_classify_data(data or None, seed=seed, verbose=False).nc

    def new_model(self, cfg: Any, nc: int) -> nn.Module:
        return ClassificationModel(cfg, nc=nc)

    def hyp(self, opt: ClassifyOptions, saved: Optional[Dict[str, Any]]) -> Hyp:
        """The optimisation flags as a Hyp; the bias group warms up from 0 like the others."""
        return load_hyp({"lr0": opt.lr0, "lrf": opt.lrf, "momentum": opt.momentum, "weight_decay": opt.decay,
                         "warmup_epochs": opt.warmup_epochs, "warmup_bias_lr": 0.0})

    def setup_data(self, t: "Trainer") -> TaskData:
        with zero_first(t.dist):  # rank 0 writes the built-in set first
            data = resolve_classify_data(t.opt.data, val_ratio=t.opt.val_ratio, seed=t.opt.seed, verbose=t.is_rank0)
        return TaskData(data, list(data.names))

    def build_model(self, t: "Trainer") -> nn.Module:
        return build_classifier(t.opt, t.nc, t.init_ckpt)

    def setup_model(self, t: "Trainer") -> List[str]:
        model = t.model
        if model.nc != t.nc:
            raise TrainConfigError(f"model has {model.nc} classes but the data has {t.nc}")
        model.names = list(t.names)
        if t.opt.dropout is not None:
            model.model[-1].drop.p = t.opt.dropout
        return []

    def setup_loaders(self, t: "Trainer") -> Loaders:
        o = t.opt
        per_rank = o.batch_size // t.dist.world_size
        train = create_classify_loader(t.data.train, t.imgsz, per_rank, augment=True, shuffle=True, workers=o.workers,
                                       seed=o.seed, aug=o.augment, rank=t.dist.rank)
        val = create_classify_loader(t.data.val, t.imgsz, per_rank * 2, workers=o.workers) if t.is_rank0 else None
        return Loaders(train, val, [(str(path), why) for path, why in t.data.corrupt])

    def setup_loss(self, t: "Trainer") -> LossSetup:
        ce = nn.CrossEntropyLoss(label_smoothing=t.opt.label_smoothing)

        def criterion(logits: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            loss = ce(logits, labels)
            return loss, loss.detach().reshape(1)

        return LossSetup(criterion, ce)

    def prepare_batch(self, t: "Trainer", batch: Sequence[Any], ni: int) -> Batch:
        images, labels = batch
        images = accel.in_memory_format(images.to(t.device, non_blocking=True), t.acc)  # speed-ups
        return images, labels.to(t.device), len(labels)

    def validate(self, t: "Trainer", model: nn.Module, final: bool) -> ClassifyMetrics:
        ce = nn.CrossEntropyLoss(label_smoothing=t.opt.label_smoothing)
        metrics = evaluate(model, t.val_loader, t.device, ce, names=t.names, half=t.amp,
                           desc=f"{'Validating':>24}" if final else None)
        LOGGER.info(metrics.table() if final else f"{'val':>11}{'loss':>11}{metrics.loss:>11.4g}{'top1':>11}"
                                                  f"{metrics.top1:>11.4g}{'top5':>11}{metrics.top5:>11.4g}")
        return metrics

    def results(self, metrics: ClassifyMetrics) -> Tuple[float, ...]:
        return metrics.loss, metrics.top1, metrics.top5

    def fitness(self, results: Sequence[float], rules: TrainingRules = TrainingRules()) -> float:
        return float(results[1])  # top-1

    def csv_values(self, loss: Sequence[float], results: Sequence[float], lr: Sequence[float]) -> Tuple[float, ...]:
        return (loss[0], *results, lr[0])

    def checkpoint_yaml(self, t: "Trainer") -> Dict[str, Any]:
        return t.model.yaml

    def final_plots(self, t: "Trainer", metrics: ClassifyMetrics) -> None:
        from yolobone.engine.classify.plots import plot_classify_confusion, plot_classify_results
        if t.logger.csv.is_file():
            plot_classify_results(t.logger.csv)
        plot_classify_confusion(metrics.confusion, metrics.names, t.save_dir / "confusion_matrix.png")


# ------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    """train.py --task classify's parser, generated from ClassifyOptions."""
    p = argparse.ArgumentParser(description="Train an image classifier (train.py --task classify).")
    return add_options(p, ClassifyOptions)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """train.py --task classify: parse the classification flags and train; input errors exit 2."""
    opt = build_parser().parse_args(argv)

    def job() -> None:
        from yolobone.engine.core.trainer import run_training
        run_training(ClassifyOptions.from_any(opt), ClassifyTask())

    return run_cli(job, errors=(ValueError, FileNotFoundError), interrupted=RESUME_HINT)
