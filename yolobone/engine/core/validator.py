"""The evaluation loop every task's validator runs: eval mode (restored after), autocast, timing, progress bar.

A task hands an EvalStep: preprocess() moves one batch to the device, update() consumes the model's output.
The loop accepts an nn.Module or an inference backend (engine.backends), whose outputs the step receives as-is.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from yolobone.engine.core.backend import Backend
from yolobone.utils.torch_utils import time_sync


class EvalStep:
    """One task's per-batch work inside evaluate_loop()."""

    def preprocess(self, batch: Any, device: torch.device) -> Tuple[torch.Tensor, Any]:
        """(images on the device, whatever else update() needs)."""
        raise NotImplementedError

    def update(self, outputs: Any, images: torch.Tensor, rest: Any, batch_index: int) -> None:
        """Consume the model's outputs for one batch (counted as post-processing time)."""
        raise NotImplementedError


@dataclass
class LoopStats:
    seen: int  # images evaluated
    times: np.ndarray  # seconds spent in (pre-processing, inference, post-processing)
    input_shape: Optional[Tuple[int, ...]]  # the last batch's shape

    def speed_ms(self) -> Tuple[float, float, float]:
        """Milliseconds per image for each of the three stages."""
        return tuple((self.times / max(self.seen, 1) * 1e3).tolist())


def model_device(model: Union[nn.Module, Backend], default: Union[str, torch.device] = "cpu") -> torch.device:
    """Where the model runs: a backend's device, a module's first parameter's, else `default`."""
    if isinstance(model, Backend):
        return model.device
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device(default)


@torch.no_grad()
def evaluate_loop(model: Union[nn.Module, Backend], loader: Iterable, step: EvalStep, half: bool = False,
                  desc: Optional[str] = None, bar_format: Optional[str] = None,
                  device: Union[str, torch.device] = "cpu") -> LoopStats:
    """Run model over loader in eval mode, float16 autocast when half on CUDA; desc=None hides the bar.
    device: where batches go when the model has no parameters to say it."""
    module = None if isinstance(model, Backend) else model
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    device = model_device(model, device)
    times, seen, shape = np.zeros(3), 0, None
    bar = tqdm(loader, desc=desc, leave=False, disable=desc is None, bar_format=bar_format)
    try:
        for i, batch in enumerate(bar):
            t0 = time_sync()
            images, rest = step.preprocess(batch, device)
            t1 = time_sync()
            autocast = torch.autocast("cuda", dtype=torch.float16) if half and device.type == "cuda" \
                else contextlib.nullcontext()
            with autocast:
                outputs = model(images)
            t2 = time_sync()
            step.update(outputs, images, rest, i)
            times += (t1 - t0, t2 - t1, time_sync() - t2)
            seen, shape = seen + len(images), tuple(images.shape)
    finally:
        if module is not None:
            module.train(was_training)
    return LoopStats(seen=seen, times=times, input_shape=shape)
