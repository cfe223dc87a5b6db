"""Training speed-ups that keep YOLOv5's arithmetic: channels_last, torch.compile with an eager fallback, fused
optimizer steps, cudnn autotuning, AMP on CUDA, an automatic RAM cache, progress updates without per-step syncs and,
on CPU, a malloc that reuses freed tensor memory (yolobone/utils/allocator.py).

The trainer asks `plan_acceleration()` once, then calls the small helpers below at marked hook lines, so the loop
itself stays YOLOv5's. `--no-speedups` gives the plain eager loop (for A/B checks and the trajectory test).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch
import torch.nn as nn

from yolobone.utils.allocator import keep_freed_memory
from yolobone.utils.errors import YoloboneError
from yolobone.utils.logging import LOGGER

COMPILE_CHOICES = ("auto", "on", "off")
PROGRESS_INTERVAL_S = 0.5  # the tqdm loss readout is refreshed at most this often (each refresh syncs on CUDA)


class AccelerationError(YoloboneError, ValueError):
    """An acceleration option value train() cannot use."""


@dataclass(frozen=True)
class Acceleration:
    """What a run uses; `describe()` is the one log line."""

    channels_last: bool
    compile: bool
    fused_optimizer: bool
    cudnn_benchmark: bool
    amp: bool
    loader_speedups: bool = False  # persistent workers and the automatic RAM cache
    heap_reuse: bool = False  # glibc keeps freed tensor memory instead of mapping it again each step (CPU)

    def describe(self) -> str:
        on = [name for name, used in (("channels_last", self.channels_last), ("torch.compile", self.compile),
                                      ("fused optimizer", self.fused_optimizer),
                                      ("cudnn.benchmark", self.cudnn_benchmark), ("AMP", self.amp),
                                      ("persistent workers + auto RAM cache", self.loader_speedups),
                                      ("heap reuse", self.heap_reuse)) if used]
        return "speed-ups: " + (", ".join(on) if on else "none (plain eager loop)")



def parse_compile(value: Union[str, bool, None]) -> str:
    """'auto' / 'on' / 'off' from a flag value (booleans and 'true'/'false' accepted)."""
    if value is None or value is True:
        return "on" if value else "auto"
    if value is False:
        return "off"
    v = str(value).strip().lower()
    v = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(v, v)
    if v not in COMPILE_CHOICES:
        raise AccelerationError(f"--compile {value!r}: expected one of {', '.join(COMPILE_CHOICES)}")
    return v


def plan_acceleration(device: torch.device, speedups: bool = True, compile_mode: str = "auto",
                      deterministic: bool = False, distributed: bool = False,
                      channels_last_on_cpu: bool = True) -> Acceleration:
    """Choose the speed-ups for this device.

    compile 'auto' compiles on CUDA only: on CPU the first-epoch compile cost was not recovered over short runs
    (see benchmarks/train_speed.py --compile). channels_last is faster for the detectors on CPU and CUDA; a task
    where it was measured slower on CPU (small classifier images) passes channels_last_on_cpu=False.
    """
    cuda = device.type == "cuda"
    mode = parse_compile(compile_mode)
    if not speedups:
        return Acceleration(False, mode == "on" and compile_available(), False, False, cuda)
    compile_on = (mode == "on" or (mode == "auto" and cuda and not distributed)) and compile_available()
    return Acceleration(channels_last=cuda or channels_last_on_cpu, compile=compile_on,
                        fused_optimizer=device.type in ("cpu", "cuda"),
                        cudnn_benchmark=cuda and not deterministic, amp=cuda, loader_speedups=True,
                        heap_reuse=device.type == "cpu")


def compile_unavailable_reason() -> Optional[str]:
    """Why torch.compile cannot be used here (YOLOBONE_NO_COMPILE set, or a torch without it), or None."""
    if os.environ.get("YOLOBONE_NO_COMPILE", "") not in ("", "0"):
        return "YOLOBONE_NO_COMPILE is set"
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    return None


def compile_available() -> bool:
    """torch.compile exists and is not switched off by the environment (YOLOBONE_NO_COMPILE=1)."""
    why_not = compile_unavailable_reason()
    if why_not:
        LOGGER.info(f"torch.compile: skipped ({why_not}), training eagerly")
    return why_not is None


def compile_error_summary(e: BaseException) -> str:
    """'<Type>: <first line of the message>' for the one-line "cannot be used here" warnings."""
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}"


def apply_backend_settings(acc: Acceleration) -> None:
    """Process-wide switches (cudnn autotuning for fixed input shapes, malloc keeping freed tensor memory)."""
    if acc.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if acc.heap_reuse:
        keep_freed_memory()


def to_memory_format(model: nn.Module, acc: Acceleration) -> nn.Module:
    """The model in channels_last (in place) when planned; parameters keep their identity (optimizer, EMA)."""
    if acc.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def prepare_images(imgs: torch.Tensor, acc: Acceleration) -> torch.Tensor:
    """uint8 batch on the device -> float [0, 1] in the model's memory format (same values either way)."""
    return in_memory_format(imgs.float() / 255, acc)


def in_memory_format(x: torch.Tensor, acc: Acceleration) -> torch.Tensor:
    """A float image batch in the model's memory format (channels_last when planned)."""
    return x.contiguous(memory_format=torch.channels_last) if acc.channels_last else x


class EagerFallback(nn.Module):
    """Runs a torch.compile'd module; if compiling fails on first use, says so in one line and runs eagerly."""

    def __init__(self, module: nn.Module, compiled: Callable[..., Any]):
        super().__init__()
        self.module = module
        self._compiled: Optional[Callable[..., Any]] = compiled
        self._proven = False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is None:
            return self.module(*args, **kwargs)
        if self._proven:
            return self._compiled(*args, **kwargs)
        try:
            out = self._compiled(*args, **kwargs)
        except Exception as e:  # any backend failure (no C++ compiler, unsupported op, ...) means eager
            LOGGER.warning(f"torch.compile: cannot be used here ({compile_error_summary(e)}); training eagerly")
            self._compiled = None
            return self.module(*args, **kwargs)
        self._proven = True
        return out

    @property
    def compiled(self) -> bool:
        return self._compiled is not None


def maybe_compile(module: nn.Module, acc: Acceleration) -> nn.Module:
    """module wrapped for torch.compile (with the eager fallback), or the module itself."""
    if not acc.compile:
        return module
    try:
        compiled = torch.compile(module, dynamic=False)
    except Exception as e:
        LOGGER.warning(f"torch.compile: cannot be used here ({type(e).__name__}: {e}); training eagerly")
        return module
    return EagerFallback(module, compiled)


def fuse_optimizer(optimizer: torch.optim.Optimizer, acc: Acceleration) -> torch.optim.Optimizer:
    """Switch SGD/Adam/AdamW to their fused kernels (one pass over all tensors) when the plan says so.

    Falls back to the multi-tensor (foreach) path where the fused kernel is not available for these tensors."""
    if not acc.fused_optimizer:
        return optimizer
    params = [p for g in optimizer.param_groups for p in g["params"]]
    fusable = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    for g in optimizer.param_groups:
        if "fused" in g and fusable:
            g["fused"], g["foreach"] = True, False
        elif "foreach" in g:
            g["foreach"] = True
    return optimizer


def loader_cache(cache: Optional[str], acc: Acceleration) -> Optional[str]:
    """The --cache value for the datasets: 'auto' (RAM when it fits, yolobone/data/ram_cache.py) when none was given."""
    return "auto" if cache is None and acc.loader_speedups else cache


class ProgressThrottle:
    """True at most every `interval` seconds (and on the last batch): when to read losses back for the bar."""

    def __init__(self, total: int, interval: float = PROGRESS_INTERVAL_S):
        self.total, self.interval, self.last = total, interval, -float("inf")

    def due(self, i: int) -> bool:
        now = time.perf_counter()
        if i + 1 >= self.total or now - self.last >= self.interval:
            self.last = now
            return True
        return False
