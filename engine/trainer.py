"""Detection training loop: train(opt) builds everything from TrainOptions and runs the epochs.

    from engine.trainer import train
    result = train({"cfg": "configs/yolov5n.yaml", "epochs": 30, "imgsz": 256, "device": "cpu"})
    print(result.save_dir, result.final.map50)
"""
from __future__ import annotations

import copy
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from engine.checkpointing import (END_STAGES, TRAIN, capture_rng, checkpoint_stage, float_state, latest_checkpoint,
                                  load_resumable, restore_rng, run_end_steps)
from engine.ddp import DistInfo, broadcast_bool, cleanup, dist_from_env, init_process_group, wrap_ddp, zero_first
from engine.loggers import RunLogger
from engine.optim import (accumulation, apply_warmup, build_optimizer, describe_optimizer, lr_lambda,
                          warmup_iterations)
from engine.options import TrainConfigError, TrainOptions
from engine.stopping import EarlyStopping
from engine.validator import ValResult, validate
from models.backbones.pretrained import no_pretrained
from models.compose import dump_model_yaml, with_backbone
from models.freeze import freeze_layers, set_frozen_bn_eval
from models.loss import ComputeLoss
from models.weights_report import weights_report
from models.yolo import DetectionModel
from utils.autoanchor import anchors_pixels, check_anchors
from utils.checkpoint import (CheckpointError, intersect_state_dicts, load_checkpoint, remove_stale_temp_files,
                              save_checkpoint)
from utils.datasets import check_dataset, create_dataloader
from utils.ema import ModelEMA
from utils.hyp import Hyp, load_hyp
from utils.logging import LOGGER
from utils.metrics import fitness
from utils.paths import increment_path
from utils.torch_utils import init_seeds, select_device

Callback = Callable[["Trainer"], None]
EVENTS = ("on_train_start", "on_train_epoch_end", "on_fit_epoch_end", "on_train_end")
PLOT_TRAIN_BATCHES = 3  # train_batch0..2.jpg
MAX_GRAD_NORM = 10.0


@dataclass
class TrainResult:
    """What train() returns (on every rank; files and metrics are filled on rank 0 only)."""

    save_dir: Path
    last: Optional[Path]
    best: Optional[Path]
    epochs_completed: int  # epochs finished in total (including before a resume)
    best_fitness: float
    results: Tuple[float, ...]  # last epoch (P, R, mAP50, mAP50-95, val box, val obj, val cls)
    train_loss: Tuple[float, float, float]  # last epoch mean (box, obj, cls)
    loss_history: List[Tuple[float, float, float]]  # per epoch of this call
    final: Optional[ValResult]  # best.pt (or last.pt) evaluated at the end, with plots
    stopped_early: bool
    problems: List[Tuple[str, str]] = field(default_factory=list)  # (file, why) from the train and val scans


def labels_to_class_weights(labels: Sequence[np.ndarray], nc: int) -> np.ndarray:
    """Inverse class frequency of the training labels, normalised to sum 1 (missing classes count once)."""
    classes = np.concatenate([lb[:, 0] for lb in labels if len(lb)] or [np.zeros(0)]).astype(int)
    counts = np.bincount(classes, minlength=nc)[:nc].astype(np.float64)
    counts[counts == 0] = 1
    w = 1 / counts
    return w / w.sum()


def check_img_size(imgsz: int, stride: int) -> int:
    """imgsz rounded up to a multiple of the model's largest stride (with a warning when it changes)."""
    new = max(int(math.ceil(imgsz / stride) * stride), stride)
    if new != imgsz:
        LOGGER.warning(f"--imgsz {imgsz} must be a multiple of max stride {stride}, updating to {new}")
    return new


class Trainer:
    """One training run. Use train(); the object is handed to callbacks (read-only use, please)."""

    def __init__(self, opt: TrainOptions, callbacks: Optional[Mapping[str, Sequence[Callback]]] = None):
        self.opt = opt
        self.callbacks: Dict[str, List[Callback]] = {e: [] for e in EVENTS}
        for event, fns in (callbacks or {}).items():
            if event not in self.callbacks:
                raise TrainConfigError(f"train(): unknown callback event {event!r}; known: {', '.join(EVENTS)}")
            self.callbacks[event] += list(fns) if isinstance(fns, (list, tuple)) else [fns]
        self.dist: DistInfo = dist_from_env()
        self.resume_ckpt: Optional[Dict[str, Any]] = None
        self.stage = TRAIN  # checkpointing.STAGES: where the run stands (an end stage once every epoch is done)
        self.end_ckpt: Optional[Dict[str, Any]] = None  # last.pt's content during the end sequence
        self.epoch = -1
        self.start_epoch = 0
        self.best_fitness = 0.0
        self.last_opt_step = -1
        self.results: Tuple[float, ...] = (0.0,) * 7
        self.loss_history: List[Tuple[float, float, float]] = []
        self.val: Optional[ValResult] = None
        self.ema: Optional[ModelEMA] = None

    # ------------------------------------------------------------------------------------------- set-up
    def _run(self, event: str) -> None:
        for fn in self.callbacks[event]:
            fn(self)

    @property
    def main(self) -> bool:
        return self.dist.is_main

    def setup(self) -> None:
        opt = self.opt
        if opt.resume:
            self._load_resume()
            opt = self.opt
        elif not opt.cfg and not opt.weights:
            raise TrainConfigError("train: pass --cfg (a model YAML) or --weights (a checkpoint)")
        elif opt.backbone and not opt.cfg:
            raise TrainConfigError(f"--backbone {opt.backbone}: pass --cfg too (the model whose backbone it replaces, "
                                   f"e.g. configs/yolov5s.yaml)")
        if self.dist.distributed and opt.image_weights:
            raise TrainConfigError("--image-weights is not supported with DDP (multi-process) training")
        if self.dist.distributed and opt.batch_size % self.dist.world_size:
            raise TrainConfigError(f"--batch-size {opt.batch_size} must be a multiple of WORLD_SIZE "
                                   f"{self.dist.world_size}")
        device = select_device("cpu" if opt.device == "cpu" else ("" if self.dist.distributed else opt.device))
        self.device = init_process_group(self.dist, device)
        self.cuda = self.device.type == "cuda"
        init_seeds(opt.seed + 1 + max(self.dist.rank, 0), deterministic=opt.deterministic)
        self.hyp: Hyp = load_hyp(self.resume_ckpt["hyp"] if self.resume_ckpt else opt.hyp)
        self.data = check_dataset(opt.data)
        names = self.data["names"]
        self.names: List[str] = ["item"] if opt.single_cls and len(names) != 1 else list(names)
        self.nc = len(self.names)
        self.model = self._build_model().to(self.device)
        self._setup_save_dir()
        self._freeze()
        self.gs = max(int(self.model.stride.max()), 32)
        self.imgsz = check_img_size(opt.imgsz, self.gs)
        self._setup_loaders()
        if not self.resume_ckpt and self.main:
            self._before_first_epoch()
        self.model.nc, self.model.names = self.nc, self.names
        self.model.class_weights = labels_to_class_weights(self.train_set.labels, self.nc) * self.nc
        self._setup_optimizer()
        if self.main:
            self.ema = ModelEMA(self.model)
        self.stopper = EarlyStopping(opt.patience)
        self.amp = self.cuda
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        if self.resume_ckpt:
            self._restore_training_state()
        self.model_ddp = wrap_ddp(self.model, self.dist, self.device, opt.sync_bn, probe=2 * self.gs)
        self.compute_loss = ComputeLoss(self.model.detect, self.hyp, imgsz=self.imgsz,
                                        label_smoothing=opt.label_smoothing)
        self.logger = RunLogger(self.save_dir, enabled=self.main, tensorboard=True)
        if self.resume_ckpt:
            self.logger.drop_rows_from(self.start_epoch)

    def _load_resume(self) -> None:
        """Replace the options with the checkpoint's (keeping the device and workers of this command)."""
        opt = self.opt
        path = Path(opt.resume) if isinstance(opt.resume, str) else latest_checkpoint(Path(opt.project))
        ckpt = load_resumable(path)
        restored = TrainOptions.from_any({**ckpt["opt"], "device": opt.device, "workers": opt.workers,
                                          "resume": str(path), "local_rank": opt.local_rank})
        self.opt, self.resume_ckpt, self.resume_path = restored, ckpt, path
        self.stage = checkpoint_stage(ckpt, path)
        if self.stage == TRAIN:
            LOGGER.info(f"Resuming training from {path} (epoch {ckpt['epoch'] + 1} of {restored.epochs})")
        else:
            ckpt["stage"] = self.stage  # a checkpoint from before stages existed
            self.end_ckpt = ckpt
            LOGGER.info(f"Resuming {path}: training finished at epoch {ckpt['epoch']}, completing the end of the run "
                        f"(from step '{self.stage}' of {', '.join(END_STAGES)})")

    def _setup_save_dir(self) -> None:
        opt = self.opt
        if self.resume_ckpt:
            self.save_dir = self.resume_path.resolve().parent.parent
        else:
            self.save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok,
                                           mkdir=self.main)
        self.wdir = self.save_dir / "weights"
        self.last, self.best = self.wdir / "last.pt", self.wdir / "best.pt"
        if self.main:
            self.wdir.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(self.wdir)  # left by a kill during a checkpoint write
            if not self.resume_ckpt:
                (self.save_dir / "hyp.yaml").write_text(yaml.safe_dump(self.hyp.to_dict(), sort_keys=False))
                (self.save_dir / "opt.yaml").write_text(yaml.safe_dump(self.opt.to_dict(), sort_keys=False))
                (self.save_dir / "model.yaml").write_text(dump_model_yaml(self.model.yaml))  # as built, composed
            LOGGER.info("hyperparameters: " + ", ".join(f"{k}={v}" for k, v in self.hyp.to_dict().items()))

    def _build_model(self) -> DetectionModel:
        opt, hyp = self.opt, self.hyp
        anchors = int(round(hyp.anchors)) if hyp.anchors else None
        if self.resume_ckpt:
            with no_pretrained():  # last.pt holds every weight; resuming must not need ImageNet files
                model = DetectionModel(self.resume_ckpt["model_yaml"], nc=self.nc)
            model.load_state_dict(self.resume_ckpt["resume_state"]["train_model"])
            model.detect.reset_grids()
            return model
        if opt.weights:
            ckpt = load_checkpoint(opt.weights)
            if not opt.cfg and ckpt.get("task", "detect") != "detect":
                raise CheckpointError(f"{opt.weights}: a {ckpt.get('task')!r} checkpoint has no detection model; "
                                      f"pass --cfg with a detection YAML to transfer its weights")
            cfg = with_backbone(opt.cfg or ckpt["model_yaml"], opt.backbone)
            model = DetectionModel(cfg, nc=self.nc, anchors=anchors)
            exclude = ("anchor",) if (opt.cfg or anchors) else ()
            state = model.state_dict()
            csd = intersect_state_dicts({k: v.float() if v.is_floating_point() else v
                                         for k, v in ckpt["model"].items()}, state, exclude=exclude)
            model.load_state_dict(csd, strict=False)
            model.detect.reset_grids()
            LOGGER.info(f"Transferred {len(csd)}/{len(state)} items from {opt.weights}")
            LOGGER.info(f"pretrained: {weights_report(model, {k: f'checkpoint {opt.weights}' for k in csd})}")
            if not csd:
                LOGGER.warning(f"{opt.weights}: no tensor matches the model by name and shape; training from scratch")
            return model
        return DetectionModel(with_backbone(opt.cfg, opt.backbone), nc=self.nc, anchors=anchors)

    def _freeze(self) -> None:
        """--freeze N / indices / backbone (models.freeze); every other parameter trains, as in YOLOv5."""
        self.frozen: List[str] = freeze_layers(self.model, self.opt.freeze)
        if self.frozen:
            LOGGER.info(f"Freezing {len(self.frozen)} parameter tensors ({self.frozen[0]} ... {self.frozen[-1]})")

    def _setup_loaders(self) -> None:
        opt, nc = self.opt, self.nc
        per_rank = opt.batch_size // self.dist.world_size
        with zero_first(self.dist):
            self.train_loader, self.train_set = create_dataloader(
                self.data["train"], self.imgsz, per_rank, self.gs, hyp=self.hyp, augment=True, cache=opt.cache,
                rect=opt.rect, workers=opt.workers, shuffle=True, single_cls=opt.single_cls,
                nc=len(self.data["names"]), seed=opt.seed, prefix="train: ", rank=self.dist.rank,
                image_weights=opt.image_weights)
        self.problems = list(self.train_set.problems)
        self.val_loader = None
        if self.main:
            self.val_loader, val_set = create_dataloader(
                self.data["val"], self.imgsz, per_rank * 2, self.gs, hyp=self.hyp, augment=False,
                cache=None if opt.noval else opt.cache, rect=True, pad=0.5, workers=opt.workers * 2,
                single_cls=opt.single_cls, nc=len(self.data["names"]), seed=opt.seed, prefix="val: ")
            self.problems += list(val_set.problems)
        self.nb = len(self.train_loader)

    def _before_first_epoch(self) -> None:
        """labels.jpg and AutoAnchor (new runs only, rank 0; DDP then broadcasts the anchors)."""
        labels = self.train_set.labels
        if not self.opt.noplots:
            from utils.annotate import plot_labels
            all_labels = np.concatenate([lb for lb in labels if len(lb)] or [np.zeros((0, 5), np.float32)], 0)
            plot_labels(all_labels, self.names, self.save_dir)
        det = self.model.detect
        forced = self.hyp.anchors is not None
        if not self.opt.noautoanchor or forced:
            check_anchors(det, labels, self.train_set.shapes, imgsz=self.imgsz, thr=self.hyp.anchor_t,
                          seed=self.opt.seed, force=forced)

    def _setup_optimizer(self) -> None:
        opt, hyp = self.opt, self.hyp
        self.accumulate, decay_scale = accumulation(opt.batch_size)
        self.optimizer = build_optimizer(self.model, opt.optimizer, hyp.lr0, hyp.momentum,
                                         hyp.weight_decay * decay_scale)
        LOGGER.info(describe_optimizer(self.optimizer, hyp.lr0))
        self.lf = lr_lambda(opt.epochs, hyp.lrf, opt.cos_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=self.lf)
        # YOLOv5 v7.0 rewinds the scheduler after building it, so after warmup epoch e trains at lf(e - 1): one more
        # epoch at full rate and the last epoch at lf(epochs - 2). Same here (a resume restores the count anyway).
        self.scheduler.last_epoch = -1

    def _restore_training_state(self) -> None:
        ckpt = self.resume_ckpt
        rs = ckpt["resume_state"]
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(rs["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["ema"], ckpt["updates"])
        if rs.get("scaler") and self.amp:
            self.scaler.load_state_dict(rs["scaler"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best_fitness = float(ckpt["best_fitness"])
        self.stopper = EarlyStopping(self.opt.patience, **rs["stopper"])
        self.last_opt_step = int(rs["last_opt_step"])
        self.results = tuple(rs.get("results", self.results))
        if self.stage != TRAIN:
            self.epoch = self.start_epoch - 1

    # ------------------------------------------------------------------------------------------- epochs
    def fit(self) -> None:
        opt = self.opt
        self.nw = warmup_iterations(self.hyp.warmup_epochs, self.nb)
        self.t0 = time.time()
        if self.resume_ckpt:
            restore_rng(self.resume_ckpt["resume_state"]["rng"], self.train_loader.generator)
        if self.main:
            LOGGER.info(f"Image sizes {self.imgsz} train, {self.imgsz} val\n"
                        f"Using {self.train_loader.num_workers} dataloader workers\n"
                        f"Logging results to {self.save_dir}\n"
                        + (f"Resuming training at epoch {self.start_epoch} of {opt.epochs}..." if self.start_epoch
                           else f"Starting training for {opt.epochs} epochs..."))
        self._run("on_train_start")
        self.stopped_early = False
        for epoch in range(self.start_epoch, opt.epochs if self.stage == TRAIN else 0):
            self.epoch = epoch
            mloss, lr = self.train_one_epoch(epoch)
            self.loss_history.append(tuple(mloss))
            self._run("on_train_epoch_end")
            stop = False
            if self.main:
                stop = self.end_epoch(epoch, mloss, lr)
            self._run("on_fit_epoch_end")
            if broadcast_bool(stop, self.dist):
                self.stopped_early = True
                break

    def train_one_epoch(self, epoch: int) -> Tuple[Tuple[float, float, float], List[float]]:
        opt, model = self.opt, self.model_ddp
        model.train()
        if self.frozen:
            set_frozen_bn_eval(self.model)
        if opt.image_weights and self.val is not None:
            cw = self.model.class_weights * (1 - self.val.maps) ** 2 / self.nc
            self.train_set.update_image_weights(cw)
        self.train_loader.set_epoch(epoch)
        mloss = torch.zeros(3, device=self.device)
        header = ("Epoch",) + (("GPU_mem",) if self.cuda else ()) + ("box_loss", "obj_loss", "cls_loss",
                                                                       "Instances", "Size")
        if self.main:
            LOGGER.info(("\n" + "%11s" * len(header)) % header)
        pbar = tqdm(enumerate(self.train_loader), total=self.nb, disable=not self.main,
                    bar_format="{l_bar}{bar:10}{r_bar}")
        self.optimizer.zero_grad()
        for i, (imgs, targets, paths, _) in pbar:
            ni = i + self.nb * epoch
            imgs = imgs.to(self.device, non_blocking=True).float() / 255
            if ni <= self.nw:
                self.accumulate = apply_warmup(self.optimizer, ni, self.nw, self.lf(epoch), self.hyp.warmup_bias_lr,
                                               self.hyp.warmup_momentum, self.hyp.momentum, opt.batch_size)
            if opt.multi_scale:
                imgs = self._rescale(imgs)
            with torch.autocast(self.device.type, enabled=self.amp):
                pred = model(imgs)
                loss, items = self.compute_loss(pred, targets.to(self.device))
                if self.dist.distributed:
                    loss = loss * self.dist.world_size  # DDP averages gradients over processes
            self.scaler.scale(loss).backward()
            if ni - self.last_opt_step >= self.accumulate:
                self._optimizer_step()
                self.last_opt_step = ni
            mloss = (mloss * i + items) / (i + 1)
            if self.main:
                mem = (f"{torch.cuda.memory_reserved(self.device) / 1e9:.3g}G",) if self.cuda else ()
                pbar.set_description(("%11s" * (1 + len(mem)) + "%11.4g" * 5)
                                     % (f"{epoch}/{opt.epochs - 1}", *mem, *mloss.tolist(), targets.shape[0],
                                        imgs.shape[-1]))
                if ni < PLOT_TRAIN_BATCHES and not opt.noplots:
                    from utils.annotate import plot_images
                    plot_images(imgs, targets, paths, self.save_dir / f"train_batch{ni}.jpg", self.names)
        lr = [g["lr"] for g in self.optimizer.param_groups]
        with warnings.catch_warnings():
            # an epoch shorter than the accumulation window takes no optimizer step; the schedule is per epoch anyway
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            self.scheduler.step()
        return tuple(mloss.tolist()), lr

    def _rescale(self, imgs: torch.Tensor) -> torch.Tensor:
        """Multi-scale: a random size in [0.5, 1.5] x imgsz (stride multiple) for this batch."""
        sz = random.randrange(int(self.imgsz * 0.5), int(self.imgsz * 1.5) + self.gs) // self.gs * self.gs
        sf = sz / max(imgs.shape[2:])
        if sf == 1:
            return imgs
        ns = [math.ceil(x * sf / self.gs) * self.gs for x in imgs.shape[2:]]
        return F.interpolate(imgs, size=ns, mode="bilinear", align_corners=False)

    def _optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=MAX_GRAD_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        if self.ema is not None:
            self.ema.update(self.model)

    def end_epoch(self, epoch: int, mloss: Tuple[float, float, float], lr: List[float]) -> bool:
        """Validate, log, checkpoint (rank 0). Returns the early-stop decision.

        After the last epoch (or an early stop) only last.pt is written here, at stage "best": best.pt and the rest
        of the end sequence follow in finish(), so a kill anywhere after this point is finished by --resume."""
        opt = self.opt
        final_epoch = epoch + 1 == opt.epochs or self.stopper.possible_stop
        if not opt.noval or final_epoch:
            self.val = validate(self.ema.ema, self.val_loader, names=self.names, single_cls=opt.single_cls,
                                half=self.amp, compute_loss=self.compute_loss, save_dir=self.save_dir,
                                plots=False)
            self.results = self.val.results_tuple()
        fi = fitness(*self.results[2:4])
        stop = self.stopper(epoch, fi)
        if fi > self.best_fitness:
            self.best_fitness = fi
        self.logger.log_epoch(epoch, (*mloss, *self.results, *lr))
        last_epoch = epoch + 1 == opt.epochs or stop
        if not opt.nosave or final_epoch or last_epoch:
            ckpt = self.checkpoint(epoch, stage=END_STAGES[0] if last_epoch else TRAIN)
            save_checkpoint(ckpt, self.last)
            if self.best_fitness == fi and not last_epoch:
                save_checkpoint(ckpt, self.best)
            if opt.save_period > 0 and (epoch + 1) % opt.save_period == 0:
                save_checkpoint(ckpt, self.wdir / f"epoch{epoch}.pt")
            if last_epoch:
                self.stage, self.end_ckpt = ckpt["stage"], ckpt
        return stop

    def checkpoint(self, epoch: int, stage: str = TRAIN) -> Dict[str, Any]:
        """The checkpoint dict of docs/internals.md plus `resume_state` for an exact --resume."""
        model_yaml = copy.deepcopy(self.model.yaml)
        model_yaml["nc"] = self.nc
        model_yaml["anchors"] = anchors_pixels(self.model.detect)
        ema_state = self.ema.state_dict()
        return {"model": ema_state, "model_yaml": model_yaml, "task": "detect", "nc": self.nc,
                "names": list(self.names), "epoch": epoch, "best_fitness": float(self.best_fitness),
                "ema": ema_state, "updates": int(self.ema.updates), "optimizer": self.optimizer.state_dict(),
                "hyp": self.hyp.to_dict(), "opt": self.opt.to_dict(), "stage": stage,
                "resume_state": {"train_model": float_state(self.model), "scheduler": self.scheduler.state_dict(),
                                 "scaler": self.scaler.state_dict() if self.amp else None,
                                 "last_opt_step": int(self.last_opt_step), "stopper": self.stopper.state_dict(),
                                 "results": [float(v) for v in self.results],
                                 "rng": capture_rng(self.train_loader.generator)}}

    # ------------------------------------------------------------------------------------------- end
    def finish(self) -> TrainResult:
        final = None
        if self.main:
            LOGGER.info(f"\n{self.epoch - self.start_epoch + 1} epochs completed in "
                        f"{(time.time() - self.t0) / 3600:.3f} hours.")
            final = self._end_sequence()
            LOGGER.info(f"Results saved to {self.save_dir}")
        self._run("on_train_end")
        return TrainResult(save_dir=self.save_dir, last=self.last if self.last.exists() else None,
                           best=self.best if self.best.exists() else None, epochs_completed=self.epoch + 1,
                           best_fitness=float(self.best_fitness), results=tuple(self.results),
                           train_loss=self.loss_history[-1] if self.loss_history else (0.0, 0.0, 0.0),
                           loss_history=list(self.loss_history), final=final,
                           stopped_early=self.stopped_early, problems=list(self.problems))

    def _end_sequence(self) -> Optional[ValResult]:
        """best.pt, final validation with plots, strip (checkpointing.run_end_steps), from where last.pt stands."""
        ckpt = self.end_ckpt
        if ckpt is None:  # no epoch finished in this call nor before it
            return None

        def final_validation(target: Path) -> ValResult:
            from models.loading import model_from_checkpoint
            LOGGER.info(f"\nValidating {target}...")
            model = model_from_checkpoint(load_checkpoint(target), str(target)).to(self.device)
            result = validate(model, self.val_loader, names=self.names, single_cls=self.opt.single_cls,
                              half=self.amp, compute_loss=self.compute_loss, save_dir=self.save_dir,
                              plots=not self.opt.noplots, verbose=True)
            if not self.opt.noplots:
                self.logger.plot()
            return result

        is_best = fitness(*ckpt["resume_state"]["results"][2:4]) == ckpt["best_fitness"]
        final = run_end_steps(ckpt, self.last, self.best, is_best, final_validation)
        self.stage = ckpt["stage"]
        return final

    def close(self) -> None:
        logger = getattr(self, "logger", None)
        if logger is not None:
            logger.close()
        cleanup(self.dist)


def train(opt: Union[TrainOptions, Mapping[str, Any], Any, None] = None,
          callbacks: Optional[Mapping[str, Union[Callback, Sequence[Callback]]]] = None,
          **overrides: Any) -> TrainResult:
    """Train a detector. opt: TrainOptions, an argparse Namespace or a dict of train.py's options
    (keyword overrides on top); callbacks: {event: fn(trainer) or [fns]} with events in EVENTS."""
    trainer = Trainer(TrainOptions.from_any(opt, **overrides), callbacks)
    try:
        trainer.setup()
        trainer.fit()
        return trainer.finish()
    finally:
        trainer.close()
