"""Inductor-compiled PyTorch inference for one pinned input shape, and when compiling pays for itself.

`torch.compile(model, options={"freezing": True})` folds the fused weights into constants, prepacks them for
oneDNN and fuses conv + SiLU. Whether that beats the packed eager default (yolobone/engine/backends/onednn_pack.py)
depends on the model and the CPU: benchmarks/export.py measures it (docs/benchmarks.md, Deployment speed). Compiling
takes tens of seconds, so --compile auto compiles only on the CPU and only when at least COMPILE_MIN_MEGAPIXELS of
input will run at one shape. Compiling is pinned to that shape (dynamic=False): inputs of any other shape run
eagerly, so rect batches and mixed image sizes never trigger recompiles.
The options are passed per call, so the global inductor config that training's torch.compile uses is untouched.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from yolobone.engine.core.acceleration import COMPILE_CHOICES, compile_error_summary, parse_compile
from yolobone.engine.core.acceleration import compile_unavailable_reason as compile_disabled
from yolobone.utils.logging import LOGGER
from yolobone.utils.options import option

Shape = Tuple[int, ...]
# auto compiles when images x height x width at the pinned shape reach this: about the input after which yolov5n's
# first compile (empty inductor cache) was repaid by its per-image saving on a 2-core AVX2 CPU (benchmarks/export.py;
# docs/benchmarks.md, Deployment speed). The smallest model sets the bar; a repeated compile of the same model hits
# inductor's on-disk cache and pays off much sooner
COMPILE_MIN_MEGAPIXELS = 1600.0
INDUCTOR_OPTIONS = {"freezing": True}  # constant weights: prepacked oneDNN convs, conv + activation fusion

__all__ = ["COMPILE_CHOICES", "COMPILE_MIN_MEGAPIXELS", "PinnedCompile", "compile_option", "compile_disabled",
           "dominant_shape", "parse_compile", "wants_compile"]


def compile_option() -> Any:
    """The inference scripts' --compile field (val.py, detect.py): the PyTorch backend's torch.compile choice."""
    return option("auto", "torch.compile the .pt model for the main input shape: auto (CPU, when enough images at one "
                          f"shape repay the compile time, >= {COMPILE_MIN_MEGAPIXELS:.0f} Mpx), on, off",
                  nargs="?", const="on", choices=COMPILE_CHOICES)


def wants_compile(mode: str, device: torch.device, shape: Optional[Sequence[int]] = None, images: int = 0) -> bool:
    """Whether to compile for `images` inputs of `shape` (B, C, H, W): 'on' always, 'auto' on the CPU when the
    pixels at that shape reach COMPILE_MIN_MEGAPIXELS, 'off' never; any mode is off when compile_disabled()."""
    mode = parse_compile(mode)
    if mode == "off":
        return False
    why_not = compile_disabled()
    if why_not:
        LOGGER.info(f"torch.compile: skipped ({why_not}), running eagerly")
        return False
    if mode == "on":
        return True
    megapixels = images * int(shape[-2]) * int(shape[-1]) / 1e6 if shape is not None else 0.0
    if device.type != "cpu" or megapixels < COMPILE_MIN_MEGAPIXELS:
        return False
    LOGGER.info(f"torch.compile (auto): {images} images at {tuple(shape[-2:])} ({megapixels:.0f} Mpx >= "
                f"{COMPILE_MIN_MEGAPIXELS:.0f}) repay the compile time; compiling (--compile off to skip)")
    return True


def dominant_shape(shapes: Iterable[Shape]) -> Tuple[Optional[Shape], int]:
    """The most common shape among per-image input shapes and how many images have it ((None, 0) for none)."""
    counts = Counter(tuple(int(v) for v in s) for s in shapes)
    if not counts:
        return None, 0
    shape, n = counts.most_common(1)[0]
    return shape, n


class PinnedCompile:
    """A model compiled for one input shape; other shapes, and everything after a failed compile, run eagerly."""

    def __init__(self, model: nn.Module, shape: Optional[Sequence[int]] = None):
        self.model = model
        self.shape: Optional[Shape] = tuple(int(v) for v in shape) if shape is not None else None
        self.compile_s: Optional[float] = None  # seconds the first (compiling) call took
        self._fn: Optional[Callable[..., Any]] = None
        self._other_shape_logged = False
        try:
            self._fn = torch.compile(model, dynamic=False, options=dict(INDUCTOR_OPTIONS))
        except Exception as e:  # e.g. a torch build without dynamo on this platform
            self._give_up(e)

    @property
    def active(self) -> bool:
        """True while the compiled graph is (or will be) used for the pinned shape."""
        return self._fn is not None

    def __call__(self, x: torch.Tensor) -> Any:
        if self._fn is None:
            return self.model(x)
        if self.shape is None:  # 'on' without a planned shape: pin the first one
            self.shape = tuple(x.shape)
        if tuple(x.shape) != self.shape:
            if not self._other_shape_logged:
                LOGGER.info(f"torch.compile: input {tuple(x.shape)} is not the compiled shape {self.shape}; "
                            f"inputs of other shapes run eagerly")
                self._other_shape_logged = True
            return self.model(x)
        if self.compile_s is not None:
            return self._fn(x)
        t = time.perf_counter()
        try:
            out = self._fn(x)
        except Exception as e:  # no C++ compiler, an op inductor cannot lower, ...
            self._give_up(e)
            return self.model(x)
        self.compile_s = time.perf_counter() - t
        LOGGER.info(f"torch.compile: compiled for input {self.shape} in {self.compile_s:.1f} s")
        return out

    def _give_up(self, e: BaseException) -> None:
        LOGGER.warning(f"WARNING: torch.compile cannot be used here ({compile_error_summary(e)}); running eagerly")
        self._fn = None
