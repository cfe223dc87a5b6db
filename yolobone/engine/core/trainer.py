"""The training loop shared by every task: Trainer runs the epochs and calls the task plugin (engine.core.task).

    from yolobone.engine.train import train
    result = train({"cfg": "configs/yolov5n.yaml", "epochs": 30, "imgsz": 256, "device": "cpu"})
    print(result.save_dir, result.final.map50)

Events for callbacks (fn(trainer)): on_train_start, on_train_epoch_end, on_fit_epoch_end (after the epoch's
checkpoints), on_train_end.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import yaml
from tqdm import tqdm

from yolobone.engine.core import acceleration as accel  # issue 18 speed-ups: every use below is marked "# speed-ups"
from yolobone.engine.core.checkpoint_writer import CheckpointWriter
from yolobone.engine.core.ddp import (DistInfo, broadcast_bool, cleanup, dist_from_env, init_process_group, wrap_ddp,
                                      zero_first)
from yolobone.engine.core.loggers import RunLogger
from yolobone.engine.core.trackers import TrackerSet, file_hash, flat_params
from yolobone.engine.core.optim import accumulation, apply_warmup, auto_iterations, build_optimizer, choose_optimizer, \
    describe_optimizer, lr_lambda, warmup_iterations
from yolobone.engine.core.options import RunOptions, TrainConfigError
from yolobone.engine.core.stopping import EarlyStopping
from yolobone.engine.core.task import Criterion, TrainingRules, TrainTask
from yolobone.engine.core.training_checkpoint import (END_STAGES, TRAIN, capture_rng, checkpoint_stage, float_state,
                                             latest_checkpoint, load_resumable, restore_rng, run_end_steps)
from yolobone.models.freeze import set_frozen_bn_eval, unfreeze
from yolobone.models.loading import model_from_checkpoint
from yolobone.utils.checkpoint import load_checkpoint, remove_stale_temp_files
from yolobone.utils.ema import ModelEMA
from yolobone.utils.image_size import stride_multiple
from yolobone.utils.logging import LOGGER
from yolobone.utils.paths import increment_path
from yolobone.utils.torch_utils import init_seeds, select_device

Callback = Callable[["Trainer"], None]
EVENTS = ("on_train_start", "on_train_epoch_end", "on_fit_epoch_end", "on_train_end")
MAX_GRAD_NORM = 10.0


@dataclass
class TrainResult:
    """What train() returns (on every rank; files and metrics are filled on rank 0 only)."""

    save_dir: Path
    last: Optional[Path]
    best: Optional[Path]
    epochs_completed: int  # epochs finished in total (including before a resume)
    best_fitness: float
    best_epoch: int  # the epoch whose weights best.pt holds (-1: none)
    results: Tuple[float, ...]  # last epoch's validation figures (the task's results())
    train_loss: Tuple[float, ...]  # last epoch mean of the task's loss_names
    loss_history: List[Tuple[float, ...]]  # per epoch of this call
    history: List[Dict[str, float]]  # per epoch of this call: the results.csv row by column name
    final: Any  # best.pt (or last.pt) validated at the end, with plots (the task's metrics object)
    model: Optional[nn.Module]  # the model that final validated, eval mode
    data: Any  # the task's resolved dataset
    stopped_early: bool
    problems: List[Tuple[str, str]] = field(default_factory=list)  # (file, why) from the train and val scans


class Trainer:
    """One training run of a task. Use engine.train.train(); the object is handed to callbacks (read-only use)."""

    def __init__(self, opt: RunOptions, task: TrainTask, callbacks: Optional[Mapping[str, Any]] = None):
        self.opt, self.task = opt, task
        self.callbacks: Dict[str, List[Callback]] = {e: [] for e in EVENTS}
        for event, fns in (callbacks or {}).items():
            if event not in self.callbacks:
                raise TrainConfigError(f"train(): unknown callback event {event!r}; known: {', '.join(EVENTS)}")
            self.callbacks[event] += list(fns) if isinstance(fns, (list, tuple)) else [fns]
        self.dist: DistInfo = dist_from_env()
        self.resume_ckpt: Optional[Dict[str, Any]] = None
        self.init_ckpt: Optional[Dict[str, Any]] = None  # --weights, loaded before any dataset work
        self.stage = TRAIN  # training_checkpoint.STAGES: where the run stands (an end stage once epochs are done)
        self.end_ckpt: Optional[Dict[str, Any]] = None  # last.pt's content during the end sequence
        self.checkpoint_writer = CheckpointWriter()  # last.pt/best.pt are written while the next epoch trains
        self.epoch, self.start_epoch = -1, 0
        self.best_fitness, self.best_epoch = 0.0, -1
        self.last_opt_step = -1
        self.results: Tuple[float, ...] = (0.0,) * task.n_results
        self.loss_history: List[Tuple[float, ...]] = []
        self.history: List[Dict[str, float]] = []
        self.val: Any = None  # the latest validation metrics
        self.ema: Optional[ModelEMA] = None
        self.final_model: Optional[nn.Module] = None
        self.stopped_early = False
        # what the task's set-up hooks return (TrainTask.setup_data / setup_model / setup_loaders / setup_loss)
        self.data: Any = None
        self.names: List[str] = []
        self.nc = 0
        self.frozen: List[str] = []
        self.train_loader: Any = None
        self.val_loader: Any = None
        self.train_set: Any = None
        self.problems: List[Tuple[str, str]] = []
        self.criterion: Optional[Criterion] = None
        self.rules = TrainingRules()  # the loop's behaviours for this model (task.training_rules, after the build)
        self.compute_loss: Any = None

    def _run(self, event: str) -> None:
        for fn in self.callbacks[event]:
            fn(self)

    @property
    def is_rank0(self) -> bool:
        """This process writes files, validates and keeps the EMA (the only process without DDP)."""
        return self.dist.is_main

    # ------------------------------------------------------------------------------------------- set-up
    def setup(self) -> None:
        if self.opt.resume:
            self._load_resume()
        opt, task = self.opt, self.task
        if opt.weights and not self.resume_ckpt:  # a bad file is refused before a built-in dataset is generated
            self.init_ckpt = load_checkpoint(opt.weights)
        if self.dist.distributed and opt.batch_size % self.dist.world_size:
            raise TrainConfigError(f"--batch-size {opt.batch_size} must be a multiple of WORLD_SIZE "
                                   f"{self.dist.world_size}")
        device = select_device("cpu" if opt.device == "cpu" else ("" if self.dist.distributed else opt.device))
        self.device = init_process_group(self.dist, device)
        self.cuda = self.device.type == "cuda"
        self.acc = accel.plan_acceleration(self.device, opt.speedups, opt.compile, opt.deterministic,
                                           self.dist.distributed, task.channels_last_on_cpu)  # speed-ups
        accel.apply_backend_settings(self.acc)  # speed-ups
        init_seeds(opt.seed + 1 + max(self.dist.rank, 0), deterministic=opt.deterministic)
        self.hyp = task.hyp(opt, self.resume_ckpt["hyp"] if self.resume_ckpt else None)
        data = task.setup_data(self)
        self.data, self.names, self.nc = data.data, list(data.names), data.nc
        with zero_first(self.dist):  # rank 0 downloads any missing pretrained file; the others then read the cache
            model = self._build_model()
        self.model = accel.to_memory_format(model.to(self.device), self.acc)  # speed-ups
        task.resolve_defaults(self)
        self.rules = task.training_rules(self.model)
        self._setup_save_dir()
        self.frozen = task.setup_model(self)
        self.gs = task.grid_size(self.model)
        self.imgsz = stride_multiple(opt.imgsz, self.gs)
        loaders = task.setup_loaders(self)
        self.train_loader, self.val_loader, self.train_set = loaders.train, loaders.val, loaders.train_set
        self.problems = list(loaders.problems)
        self.nb = len(self.train_loader)
        if not self.resume_ckpt and self.is_rank0:
            task.before_first_epoch(self)
        self._setup_optimizer()
        self.ema = ModelEMA(self.model) if self.is_rank0 else None
        self.stopper = EarlyStopping(opt.patience)
        self.amp = self.acc.amp  # speed-ups (AMP on CUDA, as before)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        if self.resume_ckpt:
            self._restore_training_state()
        self._wrap_model(opt.sync_bn)
        if self.is_rank0:
            LOGGER.info(self.acc.describe())
        loss = task.setup_loss(self)
        self.criterion, self.compute_loss = loss.criterion, loss.loss
        self.loss_names, self.result_keys = task.loss_columns(self), task.result_columns(self)
        self.logger = RunLogger(self.save_dir, self.result_keys, enabled=self.is_rank0,
                                tensorboard="tensorboard" in opt.loggers)
        if self.resume_ckpt:
            self.logger.drop_rows_from(self.start_epoch)
        self._start_trackers()

    def _start_trackers(self) -> None:
        """MLflow / W&B (--loggers) on rank 0: options, hyp, model YAML and data YAML hashes as parameters."""
        self.trackers = TrackerSet(self.opt.loggers if self.is_rank0 else ())
        if not self.trackers.trackers:
            return
        model_yaml = self.save_dir / "model.yaml"
        params = {**flat_params("opt", self.opt.to_dict()), **flat_params("hyp", self.hyp.to_dict()),
                  "model_yaml_sha256": file_hash(model_yaml), "data_yaml_sha256": file_hash(self.opt.data)}
        self.trackers.start(f"{self.save_dir.parent.name}/{self.save_dir.name}", self.opt.log_group, params,
                            self.save_dir)
        self.trackers.log_files([model_yaml, self.save_dir / "hyp.yaml", self.save_dir / "opt.yaml"], "config")

    def _wrap_model(self, sync_bn: bool) -> None:
        """model_ddp: the model as the training step calls it (DDP wrapper, compiled)."""
        self.model_ddp = wrap_ddp(self.model, self.dist, self.device, sync_bn, probe=max(2 * self.gs, 64))
        self.model_ddp = accel.maybe_compile(self.model_ddp, self.acc)  # speed-ups

    def _load_resume(self) -> None:
        """Replace the options with the checkpoint's (keeping the device and workers of this command)."""
        opt = self.opt
        path = Path(opt.resume) if isinstance(opt.resume, str) and opt.resume not in ("True", "true", "1") \
            else latest_checkpoint(Path(opt.project))
        ckpt = load_resumable(path, self.task.name)
        restored = self.task.options.from_any({**ckpt["opt"], "device": opt.device, "workers": opt.workers,
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

    def _build_model(self) -> nn.Module:
        if not self.resume_ckpt:
            return self.task.build_model(self)
        model = model_from_checkpoint(self.resume_ckpt, str(self.resume_path))  # last.pt holds every weight
        model.load_state_dict(self.resume_ckpt["resume_state"]["train_model"])
        return model

    def _setup_save_dir(self) -> None:
        opt = self.opt
        if self.resume_ckpt:
            self.save_dir = self.resume_path.resolve().parent.parent
        else:
            self.save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=self.is_rank0)
        self.wdir = self.save_dir / "weights"
        self.last, self.best = self.wdir / "last.pt", self.wdir / "best.pt"
        if not self.is_rank0:
            return
        self.wdir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.wdir)  # left by a kill during a checkpoint write
        if not self.resume_ckpt:
            from yolobone.models.compose import dump_model_yaml
            (self.save_dir / "hyp.yaml").write_text(yaml.safe_dump(self.hyp.to_dict(), sort_keys=False))
            (self.save_dir / "opt.yaml").write_text(yaml.safe_dump(self.opt.to_dict(), sort_keys=False))
            (self.save_dir / "model.yaml").write_text(dump_model_yaml(self.model.yaml))  # as built, composed
        LOGGER.info("hyperparameters: " + ", ".join(f"{k}={v}" for k, v in self.hyp.to_dict().items()))

    @property
    def nominal_batch(self) -> Optional[int]:
        """Images per optimizer step that gradients accumulate to: --nbs, else the task's (None: no accumulation)."""
        return self.opt.nbs or self.task.nominal_batch

    def _setup_optimizer(self) -> None:
        opt, hyp = self.opt, self.hyp
        self.accumulate, decay_scale = accumulation(opt.batch_size, self.nominal_batch)
        iterations = auto_iterations(len(self.train_loader.dataset), opt.batch_size, self.nominal_batch, opt.epochs)
        self.optim_choice = choose_optimizer(opt.optimizer or self.task.default_optimizer, hyp.lr0, hyp.momentum,
                                             hyp.warmup_bias_lr, self.nc, iterations)
        choice = self.optim_choice
        scaled, lr_scale = self.task.lr_scaled_parameters(self)
        # staged unfreezing: the frozen parameters are in their groups from the start (no gradient, so no update)
        # and the group layout never changes, which keeps --resume exact across the switch
        self.optimizer = build_optimizer(self.model, choice.name, choice.lr0, choice.momentum,
                                         hyp.weight_decay * decay_scale, scaled, lr_scale,
                                         include_frozen=bool(self.task.frozen_until(self)))
        accel.fuse_optimizer(self.optimizer, self.acc)  # speed-ups
        LOGGER.info(describe_optimizer(self.optimizer, choice.lr0) + choice.note)
        self.lf = lr_lambda(opt.epochs, hyp.lrf, opt.cos_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=self.lf)
        if self.rules.lr_lags_one_epoch:  # one more epoch at the full rate; a resume restores the count anyway
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
        self.best_epoch = int(rs.get("best_epoch", -1))
        self.stopper = EarlyStopping(self.opt.patience, **rs["stopper"])
        self.last_opt_step = int(rs["last_opt_step"])
        pending = rs.get("pending_grads") or {}
        for k, p in self.model.named_parameters():
            if k in pending:
                p.grad = pending[k].to(p.device)
        self.results = tuple(rs.get("results", self.results))
        if self.stage != TRAIN:
            self.epoch = self.start_epoch - 1

    # ------------------------------------------------------------------------------------------- epochs
    def fit(self) -> None:
        opt = self.opt
        warmup_epochs = self.hyp.warmup_epochs
        if self.rules.warmup_leaves_last_epoch:
            warmup_epochs = min(warmup_epochs, max(opt.epochs - 1, 0))
        self.nw = warmup_iterations(warmup_epochs, self.nb, self.hyp.warmup_min_iters)
        self.t0 = time.time()
        if self.resume_ckpt:
            restore_rng(self.resume_ckpt["resume_state"]["rng"], getattr(self.train_loader, "generator", None))
        if self.is_rank0:
            LOGGER.info(f"Image sizes {self.imgsz} train, {self.imgsz} val\n"
                        f"Using {self.train_loader.num_workers} dataloader workers\n"
                        f"Logging results to {self.save_dir}\n"
                        + (f"Resuming training at epoch {self.start_epoch} of {opt.epochs}..." if self.start_epoch
                           else f"Starting training for {opt.epochs} epochs..."))
        self._run("on_train_start")
        try:
            for epoch in range(self.start_epoch, opt.epochs if self.stage == TRAIN else 0):
                self.epoch = epoch
                mloss, lr = self.train_one_epoch(epoch)
                self.loss_history.append(tuple(mloss))
                self._run("on_train_epoch_end")
                stop = self.end_epoch(epoch, mloss, lr) if self.is_rank0 else False
                self._run("on_fit_epoch_end")
                if broadcast_bool(stop, self.dist):
                    self.stopped_early = True
                    break
        finally:  # an interrupted run (exception, Ctrl-C) still leaves its last checkpoint complete on disk
            self.checkpoint_writer.close()

    def _thaw(self, epoch: int) -> None:
        """Staged unfreezing: from the task's frozen_until epoch on, the frozen parameters (and their BatchNorm
        statistics) train too. DDP registers only trainable parameters, so the model is wrapped again."""
        until = self.task.frozen_until(self)
        if not (self.frozen and until and epoch >= until):
            return
        n = unfreeze(self.model, self.frozen)
        self.frozen = []
        if self.is_rank0:
            LOGGER.info(f"Unfreezing {n} parameter tensors at epoch {epoch} (frozen for the first {until} epochs)")
        if self.dist.distributed or self.model_ddp is not self.model:
            self._wrap_model(sync_bn=False)  # SyncBatchNorm, if asked for, is already in the model

    def train_one_epoch(self, epoch: int) -> Tuple[Tuple[float, ...], List[float]]:
        self._thaw(epoch)
        model, task = self.model_ddp, self.task
        model.train()
        if self.frozen:
            set_frozen_bn_eval(self.model)
        task.before_epoch(self, epoch)
        self.train_loader.set_epoch(epoch)
        mloss = torch.zeros(len(self.loss_names), device=self.device)
        pbar = self._progress_bar()
        if not self.rules.carry_gradients:  # YOLOv5 drops an unfinished accumulation at the epoch's end
            self.optimizer.zero_grad()
        bar_due = accel.ProgressThrottle(self.nb)  # speed-ups: the loss readout syncs, so not every step
        for i, batch in pbar:
            ni = i + self.nb * epoch
            if ni <= self.nw:
                self.accumulate = apply_warmup(self.optimizer, ni, self.nw, self.lf(epoch), self.optim_choice.warmup_bias_lr,
                                               self.hyp.warmup_momentum, self.hyp.momentum, self.opt.batch_size,
                                               self.nominal_batch)
            imgs, targets, instances = task.prepare_batch(self, batch, ni)
            with torch.autocast(self.device.type, enabled=self.amp):
                loss, items = self.criterion(model(imgs), targets)
            self.scaler.scale(loss).backward()
            if ni - self.last_opt_step >= self.accumulate:
                self._optimizer_step()
                self.last_opt_step = ni
            mloss = (mloss * i + items) / (i + 1)
            if self.is_rank0 and bar_due.due(i):  # speed-ups
                mem = (f"{torch.cuda.memory_reserved(self.device) / 1e9:.3g}G",) if self.cuda else ()
                pbar.set_description(("%11s" * (1 + len(mem)) + "%11.4g" * (len(mloss) + 2))
                                     % (f"{epoch}/{self.opt.epochs - 1}", *mem, *mloss.tolist(), instances,
                                        imgs.shape[-1]))
        lr = [g["lr"] for g in self.optimizer.param_groups]
        with warnings.catch_warnings():
            # an epoch shorter than the accumulation window takes no optimizer step; the schedule is per epoch anyway
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            self.scheduler.step()
        return tuple(mloss.tolist()), lr

    def _progress_bar(self) -> tqdm:
        header = ("Epoch",) + (("GPU_mem",) if self.cuda else ()) + tuple(self.loss_names) + ("Instances",
                                                                                                    "Size")
        if self.is_rank0:
            LOGGER.info(("\n" + "%11s" * len(header)) % header)
        return tqdm(enumerate(self.train_loader), total=self.nb, disable=not self.is_rank0,
                    bar_format="{l_bar}{bar:10}{r_bar}")

    def _optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=MAX_GRAD_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        if self.ema is not None:
            self.ema.update(self.model)

    def end_epoch(self, epoch: int, mloss: Sequence[float], lr: List[float]) -> bool:
        """Validate, log, checkpoint (rank 0). Returns the early-stop decision.

        After the last epoch (or an early stop) only last.pt is written here, at stage "best": best.pt and the rest
        of the end sequence follow in finish(), so a kill anywhere after this point is finished by --resume."""
        opt, task = self.opt, self.task
        final_epoch = epoch + 1 == opt.epochs or self.stopper.possible_stop
        if not opt.noval or final_epoch:
            self.val = task.validate(self, self.ema.ema, final=False)
            self.results = task.results(self.val)
        fi = task.fitness(self.results, self.rules)
        stop = self.stopper(epoch, fi)
        if fi > self.best_fitness or self.best_epoch < 0:
            self.best_fitness = fi
        if fi == self.best_fitness:
            self.best_epoch = epoch  # as YOLOv5: the latest epoch reaching the best fitness is best.pt
        row = task.csv_values(mloss, self.results, lr)
        self.history.append(dict(zip(self.result_keys, row)))
        self.logger.log_epoch(epoch, row)
        self.trackers.log_metrics(self.history[-1], epoch)
        last_epoch = epoch + 1 == opt.epochs or stop
        if not opt.nosave or final_epoch or last_epoch:
            self._save(epoch, last_epoch)
        return stop

    def _save(self, epoch: int, last_epoch: bool) -> None:
        ckpt = self.checkpoint(epoch, stage=END_STAGES[0] if last_epoch else TRAIN)
        copies = [self.best] if self.best_epoch == epoch and not last_epoch else []
        if self.opt.save_period > 0 and (epoch + 1) % self.opt.save_period == 0:
            copies.append(self.wdir / f"epoch{epoch}.pt")
        self.checkpoint_writer.write(ckpt, self.last, copies)
        if last_epoch:
            self.checkpoint_writer.wait()  # the end sequence starts from last.pt on disk
            self.stage, self.end_ckpt = ckpt["stage"], ckpt

    def checkpoint(self, epoch: int, stage: str = TRAIN) -> Dict[str, Any]:
        """The checkpoint dict of docs/internals.md plus `resume_state` for an exact --resume."""
        ema_state = self.ema.state_dict()
        return {"model": ema_state, "model_yaml": copy.deepcopy(self.task.checkpoint_yaml(self)),
                "task": self.task.name, "nc": self.nc, "names": list(self.names), "epoch": epoch,
                "best_fitness": float(self.best_fitness), "ema": ema_state, "updates": int(self.ema.updates),
                # copies: the background writer must not read tensors that training goes on changing
                "optimizer": copy.deepcopy(self.optimizer.state_dict()), "hyp": self.hyp.to_dict(),
                "opt": self.opt.to_dict(), "stage": stage,
                "resume_state": {"train_model": float_state(self.model),
                                 "scheduler": copy.deepcopy(self.scheduler.state_dict()),
                                 "scaler": self.scaler.state_dict() if self.amp else None,
                                 "last_opt_step": int(self.last_opt_step), "stopper": self.stopper.state_dict(),
                                 "pending_grads": self._pending_grads(),
                                 "results": [float(v) for v in self.results], "best_epoch": int(self.best_epoch),
                                 "rng": capture_rng(getattr(self.train_loader, "generator", None))}}

    def _pending_grads(self) -> Dict[str, torch.Tensor]:
        """Gradients accumulated since the last optimizer step, when they carry into the next epoch (a resume
        restores them, so it goes on as the uninterrupted run)."""
        if not self.rules.carry_gradients:
            return {}
        return {k: p.grad.detach().clone() for k, p in self.model.named_parameters() if p.grad is not None}

    # ------------------------------------------------------------------------------------------- end
    def finish(self) -> TrainResult:
        final = None
        if self.is_rank0:
            LOGGER.info(f"\n{self.epoch - self.start_epoch + 1} epochs completed in "
                        f"{(time.time() - self.t0) / 3600:.3f} hours.")
            final = self._end_sequence()
            LOGGER.info(f"Results saved to {self.save_dir}")
            self.trackers.log_files(sorted(self.save_dir.glob("*.png")), "plots")
            self.trackers.log_files([self.best], "weights")
            self.trackers.finish()
        self._run("on_train_end")
        return TrainResult(save_dir=self.save_dir, last=self.last if self.last.exists() else None,
                           best=self.best if self.best.exists() else None, epochs_completed=self.epoch + 1,
                           best_fitness=float(self.best_fitness), best_epoch=self.best_epoch,
                           results=tuple(self.results),
                           train_loss=self.loss_history[-1] if self.loss_history else (),
                           loss_history=list(self.loss_history), history=list(self.history), final=final,
                           model=self.final_model, data=self.data, stopped_early=self.stopped_early,
                           problems=list(self.problems))

    def _end_sequence(self) -> Any:
        """best.pt, final validation with plots, strip (training_checkpoint.run_end_steps), from where last.pt is."""
        ckpt = self.end_ckpt
        if ckpt is None:  # no epoch finished in this call nor before it
            return None

        def final_validation(target: Path) -> Any:
            LOGGER.info(f"\nValidating {target}...")
            model = model_from_checkpoint(load_checkpoint(target), str(target)).to(self.device).eval()
            metrics = self.task.validate(self, model, final=True)
            if not self.opt.noplots:
                self.task.final_plots(self, metrics)
            self.final_model = model
            return metrics

        rs = ckpt["resume_state"]
        is_best = rs["best_epoch"] == ckpt["epoch"] if "best_epoch" in rs else \
            self.task.fitness(rs["results"], self.rules) == ckpt["best_fitness"]
        final = run_end_steps(ckpt, self.last, self.best, is_best, final_validation)
        self.stage = ckpt["stage"]
        return final

    def close(self) -> None:
        logger = getattr(self, "logger", None)
        if logger is not None:
            logger.close()
        trackers = getattr(self, "trackers", None)
        if trackers is not None:
            trackers.finish()  # a run stopped by an exception still closes its tracker runs
        cleanup(self.dist)


def run_training(opt: RunOptions, task: TrainTask, callbacks: Optional[Mapping[str, Any]] = None) -> TrainResult:
    """Set up, train every epoch and finish one run."""
    trainer = Trainer(opt, task, callbacks)
    try:
        trainer.setup()
        trainer.fit()
        return trainer.finish()
    finally:
        trainer.close()
