"""TrainTask: what a task (detection, classification) hands the shared Trainer, in the manner of timm's task/.

The Trainer owns the run: options, seeds, DDP, the save folder, optimizer, warmup, AMP, gradient clipping, EMA,
early stopping, checkpoints, resume and the end sequence. A task owns what differs: its options class, data,
model, loss, validation metrics, results.csv columns and plots. A task never sees another task.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from yolobone.engine.core.options import RunOptions
from yolobone.utils.hyp import Hyp

if TYPE_CHECKING:
    from yolobone.engine.core.trainer import Trainer

Batch = Tuple[torch.Tensor, Any, int]  # (images on the device, targets on the device, instances for the bar)
Criterion = Callable[[Any, Any], Tuple[torch.Tensor, torch.Tensor]]  # (pred, targets) -> (loss, detached parts)


@dataclass(frozen=True)
class TrainingRules:
    """Loop behaviours on which the trainers a recipe comes from differ (YOLOv5 v7.0's train.py, Ultralytics'
    BaseTrainer); the task picks them per model (TrainTask.training_rules)."""

    lr_lags_one_epoch: bool = False  # after warmup epoch e trains at lf(e - 1) (v7.0 rewinds its scheduler once)
    carry_gradients: bool = False  # an unfinished accumulation carries into the next epoch (else it is dropped)
    warmup_leaves_last_epoch: bool = False  # warmup never takes the last epoch (min(warmup_epochs, epochs - 1))
    fitness_weights: Tuple[float, ...] = ()  # the task's weights of the figures that pick best.pt ((): its default)


@dataclass
class TaskData:
    """setup_data's result: the task's resolved dataset description and the class names the run trains."""

    data: Any  # detection: the data dict (train, val, names, ...); classification: its ClassifyData
    names: List[str]

    @property
    def nc(self) -> int:
        return len(self.names)


@dataclass
class Loaders:
    """setup_loaders' result."""

    train: Any  # the training DataLoader (InfiniteDataLoader-style: set_epoch, generator)
    val: Any = None  # rank 0's val loader (None on the other ranks)
    problems: List[Tuple[str, str]] = field(default_factory=list)  # (file, why) skipped by either dataset
    train_set: Any = None  # the training dataset, for the task's later hooks (close-mosaic, image weights, labels)


@dataclass
class LossSetup:
    """setup_loss's result."""

    criterion: Criterion  # what the training step calls (DDP scaling and head selection included)
    loss: Any = None  # the loss object itself (validation losses, part names), when the task has one


class TrainTask:
    """Base class of the task plugins; each method receives the Trainer (its state is the run's state). The set-up
    hooks return typed results (TaskData, Loaders, LossSetup) that the Trainer stores; a task sets no attribute of
    the Trainer."""

    name: str = ""  # checkpoint "task" value and --task name
    options: type = RunOptions
    result_keys: Tuple[str, ...] = ()  # results.csv columns after "epoch"
    n_results: int = 0  # length of results() (zeros until the first validation)
    loss_names: Tuple[str, ...] = ("loss",)  # per-batch training losses (progress bar, results.csv)
    nominal_batch: Optional[int] = None  # gradients accumulate to this many images per step (None: no accumulation)
    default_optimizer: str = "SGD"
    min_imgsz: int = 32
    default_data: str = ""  # --data when none is given
    default_hyp: str = ""  # --hyp when none is given ('' = the task takes no hyperparameter YAML)
    recipe_by_head: bool = False  # an omitted --hyp / --optimizer depends on the model (default_recipe)
    channels_last_on_cpu: bool = True  # train in channels_last on CPU too (where it was measured faster)

    # ---------------------------------------------------------------------------------------- set-up
    def dataset_nc(self, data: str, seed: int = 0) -> int:
        """Class count of a --data value (generating a built-in set on first use)."""
        raise NotImplementedError

    def new_model(self, cfg: Any, nc: int) -> nn.Module:
        """The task's model built from a model YAML (path or dict) with nc classes."""
        raise NotImplementedError

    def hyp(self, opt: RunOptions, saved: Optional[Dict[str, Any]]) -> Hyp:
        """The optimisation hyperparameters (lr0, lrf, momentum, weight_decay, warmup_*); saved: a resumed run's."""
        raise NotImplementedError

    def setup_data(self, t: "Trainer") -> TaskData:
        """The run's data and class names (the Trainer keeps them as t.data, t.names, t.nc)."""
        raise NotImplementedError

    def build_model(self, t: "Trainer") -> nn.Module:
        """A new model for this run (from --cfg and/or --weights); resumed runs are rebuilt by the Trainer."""
        raise NotImplementedError

    def default_recipe(self, model: nn.Module) -> Dict[str, Any]:
        """What an omitted --hyp / --optimizer / --close-mosaic becomes for this model (compare.py records it)."""
        return {"hyp": self.default_hyp or None, "optimizer": self.default_optimizer}

    def resolve_defaults(self, t: "Trainer") -> None:
        """Right after t.model is built (new runs and resumes): fill the options whose default depends on the model
        (and t.hyp with them); what is set here is what opt.yaml and the checkpoints record."""

    def training_rules(self, model: nn.Module) -> TrainingRules:
        """How the training loop treats this model (the trainer its recipe follows)."""
        return TrainingRules()

    def setup_model(self, t: "Trainer") -> List[str]:
        """Adjust t.model before training (frozen layers, dropout, class names); returns the frozen parameter
        names (t.frozen)."""
        return []

    def frozen_until(self, t: "Trainer") -> int:
        """The epoch at which the t.frozen parameters train again (staged unfreezing; 0: they stay frozen)."""
        return 0

    def lr_scaled_parameters(self, t: "Trainer") -> Tuple[List[nn.Parameter], float]:
        """Parameters trained at a multiple of the learning rate, and the multiple (--backbone-lr; default none)."""
        return [], 1.0

    def grid_size(self, model: nn.Module) -> int:
        """The multiple that image sizes are rounded up to."""
        return 1

    def setup_loaders(self, t: "Trainer") -> Loaders:
        """The run's loaders (t.train_loader, t.val_loader, t.train_set) and the files they skipped (t.problems)."""
        raise NotImplementedError

    def before_first_epoch(self, t: "Trainer") -> None:
        """New runs only, rank 0, before the optimizer exists (label plots, anchor checks)."""

    def setup_loss(self, t: "Trainer") -> LossSetup:
        """The training criterion (t.criterion: (pred, targets) -> (loss for backward, detached per-part losses)) and
        the loss object behind it (t.compute_loss)."""
        raise NotImplementedError

    def loss_columns(self, t: "Trainer") -> Tuple[str, ...]:
        """The per-part training losses of this run (after setup_loss): progress bar and results.csv names."""
        return self.loss_names

    def result_columns(self, t: "Trainer") -> Tuple[str, ...]:
        """This run's results.csv columns after "epoch" (after setup_loss)."""
        return self.result_keys

    # ---------------------------------------------------------------------------------------- epochs
    def before_epoch(self, t: "Trainer", epoch: int) -> None:
        """Called on every rank before the epoch's batches."""

    def prepare_batch(self, t: "Trainer", batch: Sequence[Any], ni: int) -> Batch:
        raise NotImplementedError

    def validate(self, t: "Trainer", model: nn.Module, final: bool) -> Any:
        """Evaluate model on t.val_loader; final: the end-of-run validation (verbose, plots)."""
        raise NotImplementedError

    def results(self, metrics: Any) -> Tuple[float, ...]:
        """The validation figures kept between epochs (t.results) from validate()'s metrics."""
        raise NotImplementedError

    def fitness(self, results: Sequence[float], rules: TrainingRules = TrainingRules()) -> float:
        """The figure that picks best.pt (higher is better) from results(); rules.fitness_weights may weight it."""
        raise NotImplementedError

    def csv_values(self, loss: Sequence[float], results: Sequence[float], lr: Sequence[float]) -> Tuple[float, ...]:
        """One results.csv row (result_keys order)."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------- checkpoints, end
    def checkpoint_yaml(self, t: "Trainer") -> Dict[str, Any]:
        """The model YAML stored in checkpoints (as built, with what training changed)."""
        raise NotImplementedError

    def final_plots(self, t: "Trainer", metrics: Any) -> None:
        """results.png and the like, after the final validation (rank 0, unless --noplots)."""
