"""PyTorch backend: a checkpoint (.pt) or an in-memory model, fused, in inference mode, channels_last on CPU, its
conv + activation blocks packed as single oneDNN calls on CPU (yolobone/engine/backends/onednn_pack.py), optionally
inductor-compiled for one input shape instead (--compile, yolobone/engine/backends/compiled.py)."""
from __future__ import annotations

import copy
import os
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from yolobone.engine.core.backend import Backend, ModelMeta
from yolobone.engine.backends.compiled import PinnedCompile, parse_compile, wants_compile
from yolobone.engine.backends.onednn_pack import ConvActPack


def model_meta(model: nn.Module, imgsz=(640, 640), batch: int = 1, dynamic: bool = True,
               precision: str = "fp32") -> ModelMeta:
    """The metadata an export of `model` carries (names, largest stride, task, model YAML)."""
    task = getattr(model, "task", "detect")
    stride = getattr(model, "stride", None)
    stride = int(max(stride.tolist())) if isinstance(stride, torch.Tensor) and task == "detect" else 32
    nc = int(getattr(model, "nc", 0))
    names = [str(n) for n in getattr(model, "names", [])] or [str(i) for i in range(nc)]
    return ModelMeta(task=task, names=names, stride=stride, imgsz=tuple(int(s) for s in imgsz), batch=int(batch),
                     dynamic=dynamic, model_yaml=copy.deepcopy(getattr(model, "yaml", {})), precision=precision,
                     anchor_free=bool(getattr(model, "anchor_free", False)))


class TorchBackend(Backend):
    """An eval-mode YAMLModel.

    channels_last is the CPU default: oneDNN's convolutions run NHWC without reordering every layer (yolov5s at
    640 on 2 threads: see benchmarks/export.py), while CUDA keeps NCHW (cuDNN picks its own layout).

    pack (CPU float32 default): fused conv + activation blocks run as one oneDNN call each on weights reordered
    once; `.model` hands out the plain fused model (unpacked; the next eager run packs again).

    compile: 'on' compiles for the first input shape (or the one `plan_compile` names); 'auto' compiles only when
    the caller's `plan_compile` finds enough images at one shape (val.py, detect.py); 'off' never.
    """

    kind = "torch"

    def __init__(self, model: nn.Module, device: torch.device, source: str = "<in-memory model>", fuse: bool = True,
                 half: bool = False, channels_last: Optional[bool] = None, copy_model: bool = True,
                 compile: str = "off", pack: Optional[bool] = None):
        self.compile_mode = parse_compile(compile)
        self.compiled: Optional[PinnedCompile] = None
        if copy_model:  # fusing, eval() and layout changes must not touch the caller's (maybe still training) model
            model = copy.deepcopy(model)
        model = model.to(device).eval()
        if fuse and hasattr(model, "fuse"):
            with torch.no_grad():  # fusing copies BatchNorm-derived tensors into the conv weights; keep them leaves
                model.fuse()
        half = half and device.type == "cuda"
        self.channels_last = device.type == "cpu" if channels_last is None else channels_last
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self._model = model.half() if half else model.float()
        super().__init__(model_meta(model, precision="fp16" if half else "fp32"), device, source)
        pack = device.type == "cpu" and not half if pack is None else pack
        self.pack: Optional[ConvActPack] = ConvActPack(self._model) if pack else None
        if self.compile_mode == "on" and wants_compile("on", device):
            self.compiled = PinnedCompile(self.model)  # pinned to the first input shape

    @property
    def model(self) -> nn.Module:
        """The fused PyTorch model, unpacked (exportable, compilable, copyable)."""
        if self.pack is not None and self.pack.packed:
            self.pack.unpack()
        return self._model

    @property
    def can_compile(self) -> bool:
        return self.compile_mode != "off"

    def plan_compile(self, shape: Optional[Sequence[int]], images: int) -> bool:
        """Compile for input `shape` (B, C, H, W) if --compile says so for `images` inputs of it; True if it will."""
        if shape is None:
            return False
        shape = tuple(int(v) for v in shape)
        if self.compiled is not None and self.compiled.active and self.compiled.shape in (None, shape):
            self.compiled.shape = shape
            return True
        if self.compile_mode == "off" or not wants_compile(self.compile_mode, self.device, shape, images):
            self.compiled = None
            return False
        self.compiled = PinnedCompile(self.model, shape)
        return self.compiled.active

    def warmup(self, imgsz) -> None:
        """One eager pass, or the compiling pass at the pinned shape (so timed batches do not pay for it)."""
        c = self.compiled
        if c is not None and c.active and c.shape is not None:
            self.forward(torch.zeros(c.shape, device=self.device))
        else:
            super().warmup(imgsz)

    @classmethod
    def load(cls, weights: Union[str, os.PathLike], device: torch.device, half: bool = False, fuse: bool = True,
             channels_last: Optional[bool] = None, compile: str = "off", pack: Optional[bool] = None
             ) -> "TorchBackend":
        from yolobone.models import load_model

        with torch.no_grad():
            model = load_model(weights, device, fuse=False)
        return cls(model, device, str(weights), fuse=fuse, half=half, channels_last=channels_last, copy_model=False,
                   compile=compile, pack=pack)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, dtype=torch.float16 if self.fp16 else torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.compiled is not None:
                out = self.compiled(x)
            elif self.pack is not None:
                out = self.pack.run(x)
            else:
                out = self._model(x)
        out = out[0] if isinstance(out, (tuple, list)) else out  # detection: (decoded, raw maps)
        return out.float()
