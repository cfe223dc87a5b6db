"""Exponential moving average of model weights with YOLOv5's decay ramp."""
from __future__ import annotations

import math
from copy import deepcopy
from typing import Dict

import torch
import torch.nn as nn


def de_parallel(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


class ModelEMA:
    """Keeps `ema` = EMA of the model's floating-point state (parameters and BatchNorm buffers).

    The decay ramps up as d = decay * (1 - exp(-updates / tau)) so early updates follow the model closely.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0):
        self.ema = deepcopy(de_parallel(model)).eval()
        self.updates = int(updates)
        self.decay_max, self.tau = float(decay), float(tau)
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def decay(self, updates: int) -> float:
        return self.decay_max * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards the model's current weights."""
        self.updates += 1
        d = self.decay(self.updates)
        msd = de_parallel(model).state_dict()
        pairs = [(v, msd[k].detach().to(v.dtype)) for k, v in self.ema.state_dict().items()
                 if v.dtype.is_floating_point]
        if pairs:  # one multi-tensor kernel per op instead of two per tensor; same arithmetic as v * d + m * (1 - d)
            ema_t, model_t = map(list, zip(*pairs))
            torch._foreach_mul_(ema_t, d)
            torch._foreach_add_(ema_t, model_t, alpha=1 - d)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """float32 copy of the EMA weights on the CPU (what checkpoints store)."""
        return {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().clone()
                for k, v in self.ema.state_dict().items()}

    def load_state_dict(self, state: Dict[str, torch.Tensor], updates: int) -> None:
        self.ema.load_state_dict(state)
        self.updates = int(updates)
