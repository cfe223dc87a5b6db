"""DetectTask: YOLOv5 detection for the shared Trainer: data YAML, DetectionModel, ComputeLoss, COCO AP, AutoAnchor."""
from __future__ import annotations

import contextlib
import math
import random
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from yolobone.engine.core import acceleration as accel
from yolobone.engine.core.ddp import zero_first
from yolobone.engine.core.options import TrainConfigError
from yolobone.engine.core.task import Batch, Loaders, LossSetup, TaskData, TrainingRules, TrainTask
from yolobone.engine.core.optim import AUTO
from yolobone.engine.detect.options import ANCHOR_FREE_CLOSE_MOSAIC, ANCHOR_FREE_HYP, DEFAULT_HYP, DetectOptions
from yolobone.engine.detect.validator import ValResult, validate
from yolobone.models.autoanchor import anchors_pixels, check_anchors
from yolobone.models.backbones.pretrained import from_scratch
from yolobone.models.compose import with_backbone
from yolobone.models.freeze import backbone_parameters, freeze_layers
from yolobone.models.loss import ComputeLoss
from yolobone.models.loss_af import AnchorFreeLoss
from yolobone.models.loss_ota import ComputeLossAuxOTA, ComputeLossOTA
from yolobone.models.transfer import neck_tensors
from yolobone.models.yolov7_heads import IAuxDetect
from yolobone.models.weights_report import weights_report
from yolobone.models.yolo import DetectionModel
from yolobone.utils.checkpoint import CheckpointError, intersect_state_dicts, load_checkpoint
from yolobone.data.datasets import check_dataset, create_dataloader
from yolobone.data.report import dataset_report, split_of
from yolobone.utils.hyp import Hyp, load_hyp
from yolobone.utils.logging import LOGGER
from yolobone.engine.detect.metrics import ULTRALYTICS_FITNESS, YOLOV5_FITNESS, fitness

if TYPE_CHECKING:
    from yolobone.engine.core.trainer import Trainer

PLOT_TRAIN_BATCHES = 3  # train_batch0..2.jpg
ANCHOR_BASED_LOSSES = ("box_loss", "obj_loss", "cls_loss")  # YOLOv5's loss items (models/loss.py)


def result_keys(loss_names: Sequence[str]) -> Tuple[str, ...]:
    """results.csv columns after "epoch" for a head whose loss reports loss_names."""
    return (*(f"train/{n}" for n in loss_names), "metrics/precision", "metrics/recall", "metrics/mAP_0.5",
            "metrics/mAP_0.5:0.95", *(f"val/{n}" for n in loss_names), "x/lr0", "x/lr1", "x/lr2")


RESULT_KEYS = result_keys(ANCHOR_BASED_LOSSES)  # YOLOv5's columns; anchor-free heads: result_keys(LOSS_NAMES)
# YOLOv5 v7.0's train.py (YOLOv7's too) for the anchor-based heads, Ultralytics' BaseTrainer (8.4) for the anchor-free
YOLOV5_RULES = TrainingRules(lr_lags_one_epoch=True, fitness_weights=YOLOV5_FITNESS)
ULTRALYTICS_RULES = TrainingRules(carry_gradients=True, warmup_leaves_last_epoch=True,
                                  fitness_weights=ULTRALYTICS_FITNESS)


def is_anchor_free(model: nn.Module) -> bool:
    """The model's detection head is anchor-free (YOLOv8 / YOLO11 / YOLOv5u: `anchor_free = True`)."""
    return bool(getattr(getattr(model, "detect", None), "anchor_free", False))


def labels_to_class_weights(labels: Sequence[np.ndarray], nc: int) -> np.ndarray:
    """Inverse class frequency of the training labels, normalised to sum 1 (missing classes count once)."""
    classes = np.concatenate([lb[:, 0] for lb in labels if len(lb)] or [np.zeros(0)]).astype(int)
    counts = np.bincount(classes, minlength=nc)[:nc].astype(np.float64)
    counts[counts == 0] = 1
    w = 1 / counts
    return w / w.sum()


def transfer_detection_weights(opt: DetectOptions, nc: int, anchors: Optional[int],
                               ckpt: Optional[Dict[str, Any]] = None) -> DetectionModel:
    """--weights: a new DetectionModel (from --cfg or the checkpoint's YAML) with every tensor matching by name;
    ckpt: the --weights checkpoint when already loaded."""
    ckpt = load_checkpoint(opt.weights) if ckpt is None else ckpt
    if not opt.cfg and ckpt.get("task", "detect") != "detect":
        raise CheckpointError(f"{opt.weights}: a {ckpt.get('task')!r} checkpoint has no detection model; "
                              f"pass --cfg with a detection YAML to transfer its weights")
    model = DetectionModel(with_backbone(opt.cfg or ckpt["model_yaml"], opt.backbone), nc=nc, anchors=anchors)
    exclude = ("anchor",) if (opt.cfg or anchors) else ()
    state = model.state_dict()
    source = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    if opt.backbone:  # another backbone: only the checkpoint's neck and head rows fit, under new row numbers
        source = neck_tensors(source, ckpt["model_yaml"], model.yaml)
    csd = intersect_state_dicts(source, state, exclude=exclude)
    model.load_state_dict(csd, strict=False)
    if hasattr(model.detect, "reset_grids"):  # anchor-based heads cache their anchor grids
        model.detect.reset_grids()
    LOGGER.info(f"Transferred {len(csd)}/{len(state)} items from {opt.weights}")
    LOGGER.info(f"pretrained: {weights_report(model, {k: f'checkpoint {opt.weights}' for k in csd})}")
    if not csd:
        LOGGER.warning(f"{opt.weights}: no tensor matches the model by name and shape; training from scratch")
    return model


class DetectTask(TrainTask):
    name = "detect"
    options = DetectOptions
    result_keys = RESULT_KEYS
    n_results = 7  # P, R, mAP50, mAP50-95, and the 3 validation loss items
    loss_names = ANCHOR_BASED_LOSSES
    nominal_batch = 64
    default_optimizer = "SGD"
    min_imgsz = DetectOptions.MIN_IMGSZ
    default_data = DetectOptions.data
    default_hyp = DEFAULT_HYP  # anchor-based heads; anchor-free ones default to ANCHOR_FREE_HYP (resolve_defaults)
    recipe_by_head = True

    def dataset_nc(self, data: str, seed: int = 0) -> int:
        return len(check_dataset(data or self.default_data)["names"])

    def new_model(self, cfg: Any, nc: int) -> nn.Module:
        return DetectionModel(cfg, nc=nc)

    def hyp(self, opt: DetectOptions, saved: Optional[Dict[str, Any]]) -> Hyp:
        """The saved hyp of a resumed run, else --hyp, else DEFAULT_HYP's values until resolve_defaults sees the head."""
        return load_hyp(saved if saved is not None else (opt.hyp or DEFAULT_HYP))

    def default_recipe(self, model: nn.Module) -> Dict[str, Any]:
        """Defaults by head: anchor-free heads train as Ultralytics does (ANCHOR_FREE_HYP, --optimizer auto,
        --close-mosaic 10), YOLOv5's anchor-based heads as YOLOv5 (DEFAULT_HYP, SGD, no close-mosaic)."""
        if is_anchor_free(model):
            return {"hyp": ANCHOR_FREE_HYP, "optimizer": AUTO, "close_mosaic": ANCHOR_FREE_CLOSE_MOSAIC}
        return {"hyp": DEFAULT_HYP, "optimizer": "SGD", "close_mosaic": 0}

    def training_rules(self, model: nn.Module) -> TrainingRules:
        """Anchor-free heads train in Ultralytics' loop, YOLOv5's anchor-based ones in v7.0's (see TrainingRules)."""
        return ULTRALYTICS_RULES if is_anchor_free(model) else YOLOV5_RULES

    def resolve_defaults(self, t: "Trainer") -> None:
        """Options left unset take the head's default_recipe."""
        opt, free, recipe = t.opt, is_anchor_free(t.model), self.default_recipe(t.model)
        if not opt.hyp:
            opt.hyp = recipe["hyp"]
            if t.resume_ckpt is None:
                t.hyp = load_hyp(opt.hyp)
        if not opt.optimizer:
            opt.optimizer = recipe["optimizer"]
        if opt.close_mosaic is None:
            opt.close_mosaic = recipe["close_mosaic"]
        if free and opt.label_smoothing:
            raise TrainConfigError(f"--label-smoothing {opt.label_smoothing}: the anchor-free loss has no label "
                                   f"smoothing (its class targets are IoU-scaled already)")

    def setup_data(self, t: "Trainer") -> TaskData:
        opt = t.opt
        if not opt.resume and not opt.cfg and not opt.weights:
            raise TrainConfigError("train: pass --cfg (a model YAML) or --weights (a checkpoint)")
        if opt.backbone and not opt.cfg:
            raise TrainConfigError(f"--backbone {opt.backbone}: pass --cfg too (the model whose backbone it replaces, "
                                   f"e.g. configs/yolov5s.yaml)")
        if t.dist.distributed and opt.image_weights:
            raise TrainConfigError("--image-weights is not supported with DDP (multi-process) training")
        data = check_dataset(opt.data)
        names = data["names"]
        return TaskData(data, ["item"] if opt.single_cls and len(names) != 1 else list(names))

    def build_model(self, t: "Trainer") -> nn.Module:
        anchors = int(round(t.hyp.anchors)) if t.hyp.anchors else None
        with contextlib.nullcontext() if t.opt.pretrained else from_scratch():  # --pretrained false
            if t.opt.weights:
                return transfer_detection_weights(t.opt, t.nc, anchors, t.init_ckpt)
            return DetectionModel(with_backbone(t.opt.cfg, t.opt.backbone), nc=t.nc, anchors=anchors)

    def setup_model(self, t: "Trainer") -> List[str]:
        """--freeze N / indices / backbone (models.freeze); every other parameter trains, as in YOLOv5."""
        frozen = freeze_layers(t.model, t.opt.freeze)
        if frozen:
            LOGGER.info(f"Freezing {len(frozen)} parameter tensors ({frozen[0]} ... {frozen[-1]})")
        t.model.nc, t.model.names = t.nc, t.names
        return frozen

    def frozen_until(self, t: "Trainer") -> int:
        return t.opt.freeze_epochs

    def lr_scaled_parameters(self, t: "Trainer") -> Tuple[List[nn.Parameter], float]:
        if t.opt.backbone_lr == 1.0:
            return [], 1.0
        return backbone_parameters(t.model), t.opt.backbone_lr

    def grid_size(self, model: nn.Module) -> int:
        return max(int(model.stride.max()), 32)

    def setup_loaders(self, t: "Trainer") -> Loaders:
        opt = t.opt
        per_rank = opt.batch_size // t.dist.world_size
        common = dict(hyp=t.hyp, workers=opt.workers, single_cls=opt.single_cls, nc=len(t.data["names"]),
                      seed=opt.seed)
        with zero_first(t.dist):
            train_loader, train_set = create_dataloader(
                t.data["train"], t.imgsz, per_rank, t.gs, augment=True, cache=accel.loader_cache(opt.cache, t.acc),
                persistent_workers=t.acc.loader_speedups, rect=opt.rect, shuffle=True,
                prefix="train: ", rank=t.dist.rank, image_weights=opt.image_weights, **common)
        if opt.close_mosaic:  # set before the loader's workers start: they keep their own copy of the dataset
            train_set.mosaic_until = max(opt.epochs - opt.close_mosaic, 0)
        loaders = Loaders(train_loader, None, list(train_set.problems), train_set)
        if t.is_rank0:
            loaders.val, val_set = create_dataloader(
                t.data["val"], t.imgsz, per_rank * 2, t.gs, augment=False,
                cache=None if opt.noval else accel.loader_cache(opt.cache, t.acc), rect=True, pad=0.5,
                persistent_workers=t.acc.loader_speedups, prefix="val: ", **{**common, "workers": opt.workers * 2})
            loaders.problems += list(val_set.problems)
        t.model.class_weights = labels_to_class_weights(train_set.labels, t.nc) * t.nc
        return loaders

    def before_first_epoch(self, t: "Trainer") -> None:
        """labels.jpg and AutoAnchor (new runs only, rank 0; DDP then broadcasts the anchors)."""
        labels = t.train_set.labels
        _write_dataset_report(t)
        if not t.opt.noplots:
            from yolobone.engine.detect.drawing import plot_labels
            all_labels = np.concatenate([lb for lb in labels if len(lb)] or [np.zeros((0, 5), np.float32)], 0)
            plot_labels(all_labels, t.names, t.save_dir)
        forced = t.hyp.anchors is not None
        if is_anchor_free(t.model):
            return  # no anchors to check
        if not t.opt.noautoanchor or forced:
            check_anchors(t.model.detect, labels, t.train_set.shapes, imgsz=t.imgsz, thr=t.hyp.anchor_t,
                          seed=t.opt.seed, force=forced)

    def setup_loss(self, t: "Trainer") -> LossSetup:
        """Anchor-free heads: models.loss_af (task-aligned, CIoU + DFL, BCE); anchor-based: YOLOv5's ComputeLoss, or
        YOLOv7's ComputeLossOTA (ComputeLossAuxOTA for IAuxDetect) when the hyp sets loss_ota."""
        aux = isinstance(t.model.detect, IAuxDetect)
        if is_anchor_free(t.model):
            loss = AnchorFreeLoss(t.model.detect, t.hyp)
        else:
            kind = (ComputeLossAuxOTA if aux else ComputeLossOTA) if t.hyp.loss_ota else ComputeLoss
            loss = kind(t.model.detect, t.hyp, imgsz=t.imgsz, label_smoothing=t.opt.label_smoothing)
        scale = t.dist.world_size if t.dist.distributed else 1  # DDP averages gradients over processes
        lead = t.model.detect.nl if aux and not t.hyp.loss_ota else None
        if lead is not None:
            LOGGER.warning("IAuxDetect with loss_ota 0: YOLOv5's loss reads the lead head only and the auxiliary "
                           "head is not trained (loss_ota: 1 trains both with YOLOv7's ComputeLossAuxOTA)")

        def criterion(pred: Any, targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            total, items = loss(pred if lead is None else pred[:lead], targets)
            return total * scale, items

        return LossSetup(criterion, loss)

    def before_epoch(self, t: "Trainer", epoch: int) -> None:
        if t.is_rank0 and t.train_set.mosaic and epoch == t.train_set.mosaic_until:
            LOGGER.info(f"Closing mosaic: the last {t.opt.epochs - epoch} epochs train on single images")
        if t.opt.image_weights and t.val is not None:
            cw = t.model.class_weights * (1 - t.val.maps) ** 2 / t.nc
            t.train_set.update_image_weights(cw)

    def prepare_batch(self, t: "Trainer", batch: Sequence[Any], ni: int) -> Batch:
        imgs, targets, paths, _ = batch
        imgs = accel.prepare_images(imgs.to(t.device, non_blocking=True), t.acc)  # speed-ups
        if t.opt.multi_scale:
            imgs = self._rescale(imgs, t.imgsz, t.gs)
        if t.is_rank0 and ni < PLOT_TRAIN_BATCHES and not t.opt.noplots:
            from yolobone.engine.detect.drawing import plot_images
            plot_images(imgs, targets, paths, t.save_dir / f"train_batch{ni}.jpg", t.names)
        return imgs, targets.to(t.device), targets.shape[0]

    @staticmethod
    def _rescale(imgs: torch.Tensor, imgsz: int, gs: int) -> torch.Tensor:
        """Multi-scale: a random size in [0.5, 1.5] x imgsz (stride multiple) for this batch."""
        sz = random.randrange(int(imgsz * 0.5), int(imgsz * 1.5) + gs) // gs * gs
        sf = sz / max(imgs.shape[2:])
        if sf == 1:
            return imgs
        ns = [math.ceil(x * sf / gs) * gs for x in imgs.shape[2:]]
        return F.interpolate(imgs, size=ns, mode="bilinear", align_corners=False)

    def validate(self, t: "Trainer", model: nn.Module, final: bool) -> ValResult:
        plots = final and not t.opt.noplots
        return validate(model, t.val_loader, names=t.names, single_cls=t.opt.single_cls, half=t.amp,
                        compute_loss=t.compute_loss, save_dir=t.save_dir, plots=plots, verbose=final)

    def results(self, metrics: ValResult) -> Tuple[float, ...]:
        return metrics.results_tuple()

    def fitness(self, results: Sequence[float], rules: TrainingRules = YOLOV5_RULES) -> float:
        return fitness(*results[2:4], rules.fitness_weights or YOLOV5_FITNESS)

    def loss_columns(self, t: "Trainer") -> Tuple[str, ...]:
        return tuple(getattr(t.compute_loss, "loss_names", ANCHOR_BASED_LOSSES))

    def result_columns(self, t: "Trainer") -> Tuple[str, ...]:
        return result_keys(self.loss_columns(t))

    def csv_values(self, loss: Sequence[float], results: Sequence[float], lr: Sequence[float]) -> Tuple[float, ...]:
        return (*loss, *results, *lr[:3])  # x/lr0-2: YOLOv5's three groups (the neck and head's with --backbone-lr)

    def checkpoint_yaml(self, t: "Trainer") -> Dict[str, Any]:
        if is_anchor_free(t.model):
            return {**t.model.yaml, "nc": t.nc}
        return {**t.model.yaml, "nc": t.nc, "anchors": anchors_pixels(t.model.detect)}

    def final_plots(self, t: "Trainer", metrics: ValResult) -> None:
        from yolobone.engine.detect.plots import plot_results
        if t.logger.csv.is_file():
            plot_results(t.logger.csv)


def _write_dataset_report(t: "Trainer") -> None:
    """dataset.txt in the run folder (and the log): per split counts, classes, box sizes, train/val duplicates."""
    splits = {"train": split_of(t.train_set)}
    if t.val_loader is not None:
        splits["val"] = split_of(t.val_loader.dataset)
    text = dataset_report(splits, t.names)
    (t.save_dir / "dataset.txt").write_text(text + "\n")
    LOGGER.info(f"Dataset report ({t.save_dir / 'dataset.txt'}):\n{text}")
