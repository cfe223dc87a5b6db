"""Optimizer with YOLOv5's three parameter groups, LR schedules and the warmup ramp."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from yolobone.utils.errors import YoloboneError

OPTIMIZERS = ("SGD", "Adam", "AdamW")
AUTO = "auto"  # --optimizer auto: chosen from the schedule length and the class count (choose_optimizer)
OPTIMIZER_CHOICES = OPTIMIZERS + (AUTO,)
NOMINAL_BATCH = 64  # gradients accumulate to this many images per optimizer step
AUTO_MAX_ITERATIONS = 10_000  # auto: AdamW up to this many iterations, SGD beyond (Ultralytics' rule)


class OptimizerError(YoloboneError, ValueError):
    """Unknown optimizer name or unusable optimizer settings."""


def _norm_types() -> Tuple[type, ...]:
    """Every normalisation layer class in torch.nn (BatchNorm*, GroupNorm, LayerNorm, SyncBatchNorm, ...)."""
    return tuple(v for k, v in vars(nn).items() if "Norm" in k and isinstance(v, type) and issubclass(v, nn.Module))


def parameter_groups(model: nn.Module, include_frozen: bool = False) -> Dict[str, List[nn.Parameter]]:
    """Split parameters into 'bias' (no decay), 'weight' (decay) and 'norm' (norm weights, no decay): the trainable
    ones, or all of them with include_frozen (frozen ones wait there, gradient-free, until they are unfrozen)."""
    norm = _norm_types()
    groups: Dict[str, List[nn.Parameter]] = {"bias": [], "weight": [], "norm": []}
    seen = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not (p.requires_grad or include_frozen) or id(p) in seen:
                continue
            seen.add(id(p))
            if name == "bias":
                groups["bias"].append(p)
            elif name == "weight" and isinstance(module, norm):
                groups["norm"].append(p)
            else:
                groups["weight"].append(p)
    return groups


def build_optimizer(model: nn.Module, name: str = "SGD", lr: float = 0.01, momentum: float = 0.937,
                    decay: float = 5e-4, scaled: Collection[nn.Parameter] = (), lr_scale: float = 1.0,
                    include_frozen: bool = False) -> torch.optim.Optimizer:
    """YOLOv5 optimizer: group 0 biases, group 1 weights with `decay`, group 2 norm weights (no decay).

    With lr_scale != 1 the parameters in `scaled` (the backbone, for --backbone-lr) get three groups of their own,
    3-5 in the same order, at lr x lr_scale; each group's 'lr_scale' records its multiplier. include_frozen: see
    parameter_groups. SGD uses nesterov momentum; Adam/AdamW use `momentum` as beta1.
    """
    groups = parameter_groups(model, include_frozen)
    ids = {id(p) for p in scaled} if lr_scale != 1.0 else set()
    sections = [(1.0, lambda p: id(p) not in ids)] + ([(lr_scale, lambda p: id(p) in ids)] if ids else [])
    specs = [{"params": [p for p in groups[kind] if keep(p)], "lr": lr * scale, "lr_scale": scale,
              "weight_decay": decay if kind == "weight" else 0.0}
             for scale, keep in sections for kind in ("bias", "weight", "norm")]
    if name == "SGD":
        opt = torch.optim.SGD(specs[:1], lr=lr, momentum=momentum, nesterov=True)
    elif name == "Adam":
        opt = torch.optim.Adam(specs[:1], lr=lr, betas=(momentum, 0.999))
    elif name == "AdamW":
        opt = torch.optim.AdamW(specs[:1], lr=lr, betas=(momentum, 0.999), weight_decay=0.0)
    else:
        raise OptimizerError(f"optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    for spec in specs[1:]:
        opt.add_param_group(spec)
    return opt


@dataclass(frozen=True)
class OptimizerChoice:
    """What build_optimizer and the warmup use: the optimizer, its initial lr and momentum, the bias warmup lr."""

    name: str
    lr0: float
    momentum: float
    warmup_bias_lr: float
    auto: bool = False

    @property
    def note(self) -> str:
        """' (chosen by --optimizer auto ...)' or ''."""
        return (f" (chosen by --optimizer auto: momentum {self.momentum}, bias warmup from {self.warmup_bias_lr})"
                if self.auto else "")


def auto_iterations(dataset_size: int, batch_size: int, nominal: Optional[int], epochs: int) -> int:
    """The schedule length that --optimizer auto weighs: ceil(images / max(batch, nominal batch)) x epochs."""
    return math.ceil(dataset_size / max(batch_size, nominal or 0)) * epochs


def choose_optimizer(name: str, lr0: float, momentum: float, warmup_bias_lr: float, nc: int,
                     iterations: int) -> OptimizerChoice:
    """name as given, or for 'auto' Ultralytics' rule: AdamW at lr round(0.002 x 5 / (4 + nc), 6), momentum 0.9 for
    schedules of at most 10,000 iterations, else SGD at lr 0.01, momentum 0.9; the bias warmup then starts at 0."""
    if name != AUTO:
        if name not in OPTIMIZERS:
            raise OptimizerError(f"--optimizer {name!r}: expected one of {', '.join(OPTIMIZER_CHOICES)}")
        return OptimizerChoice(name, lr0, momentum, warmup_bias_lr)
    if iterations > AUTO_MAX_ITERATIONS:
        return OptimizerChoice("SGD", 0.01, 0.9, 0.0, auto=True)
    return OptimizerChoice("AdamW", round(0.002 * 5 / (4 + nc), 6), 0.9, 0.0, auto=True)


def describe_optimizer(opt: torch.optim.Optimizer, lr: float) -> str:
    """'optimizer: SGD(lr=0.01) with parameter groups 57 weight(decay=0.0), 60 weight(decay=0.0005), 60 bias', and
    the backbone's groups with their multiplier when --backbone-lr made them."""
    parts = []
    for first in range(0, len(opt.param_groups), 3):
        b, w, n = (opt.param_groups[first + j] for j in range(3))
        scale = b.get("lr_scale", 1.0)
        parts.append(f"{'' if first == 0 else f'; backbone at lr x {scale:g}: '}{len(n['params'])} weight(decay=0.0), "
                     f"{len(w['params'])} weight(decay={w['weight_decay']}), {len(b['params'])} bias")
    return f"optimizer: {type(opt).__name__}(lr={lr}) with parameter groups {''.join(parts)}"


def accumulation(batch_size: int, nominal: Optional[int] = NOMINAL_BATCH) -> Tuple[int, float]:
    """(batches per optimizer step, weight-decay scale) for a nominal batch (None: every batch steps, no scaling)."""
    if not nominal:
        return 1, 1.0
    accumulate = max(round(nominal / batch_size), 1)
    return accumulate, batch_size * accumulate / nominal


def lr_lambda(epochs: int, lrf: float, cos: bool = False) -> Callable[[float], float]:
    """LR multiplier per epoch: linear 1 -> lrf, or a cosine from 1 to lrf over `epochs`."""
    if cos:
        return lambda x: ((1 - math.cos(x * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return lambda x: (1 - x / epochs) * (1.0 - lrf) + lrf


def warmup_iterations(warmup_epochs: float, batches_per_epoch: int, min_iters: float = 100) -> int:
    """max(warmup_epochs x batches, min_iters) iterations (YOLOv5: 100, YOLOv7: 1000); warmup_epochs 0 disables
    warmup."""
    return max(round(warmup_epochs * batches_per_epoch), int(min_iters)) if warmup_epochs > 0 else 0


def apply_warmup(opt: torch.optim.Optimizer, ni: int, nw: int, epoch_factor: float, warmup_bias_lr: float,
                 warmup_momentum: float, momentum: float, batch_size: int,
                 nominal: Optional[int] = NOMINAL_BATCH) -> int:
    """Set lr/momentum for iteration ni <= nw and return the accumulation count for this iteration.

    The bias groups (0, and 3 with --backbone-lr) start at warmup_bias_lr (x the group's lr_scale), the others at 0;
    all ramp linearly to initial_lr x lf(epoch).
    Momentum ramps from warmup_momentum to momentum (optimizers with a 'momentum' setting only).
    """
    xi = [0, nw]
    accumulate = max(1, int(np.interp(ni, xi, [1, nominal / batch_size]).round())) if nominal else 1
    for j, group in enumerate(opt.param_groups):
        start = warmup_bias_lr * group.get("lr_scale", 1.0) if j % 3 == 0 else 0.0
        group["lr"] = float(np.interp(ni, xi, [start, group["initial_lr"] * epoch_factor]))
        if "momentum" in group:
            group["momentum"] = float(np.interp(ni, xi, [warmup_momentum, momentum]))
    return accumulate
