"""Backend: one interface over every inference runtime (PyTorch, ONNX Runtime, OpenVINO, TorchScript).

A backend takes a float batch (B, 3, H, W) in [0, 1] and returns the model's raw predictions before any
post-processing: decoded boxes (B, N, 5 + nc) for detection, logits (B, nc) for classification. Letterbox, NMS
and box scaling live in the callers (yolobone/engine/detect/predictor.py, yolobone/engine/detect/validator.py), once for all backends.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Tuple

import torch

from yolobone.utils.errors import YoloboneError
from yolobone.utils.logging import LOGGER

TASKS = ("detect", "classify")


class BackendError(YoloboneError, ValueError):
    """Weights that no backend can load, a runtime that is not installed, or an input the export cannot take."""


@dataclass
class ModelMeta:
    """What an exported model carries besides its weights (embedded at export, read back by every backend)."""

    task: str = "detect"
    names: List[str] = field(default_factory=list)
    stride: int = 32  # largest stride: image sizes are rounded to its multiples
    imgsz: Tuple[int, int] = (640, 640)  # (h, w) the export was traced at
    batch: int = 1
    dynamic: bool = True  # any batch and image size (PyTorch, or an export with --dynamic)
    model_yaml: Dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"  # fp32, fp16 or int8
    producer: str = "yolobone"

    @property
    def nc(self) -> int:
        return len(self.names)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["imgsz"] = list(self.imgsz)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any], where: str) -> "ModelMeta":
        """Check and convert exported metadata; a wrong field raises BackendError naming the file and the field."""
        try:
            names = d["names"]
            names = [str(names[k]) for k in sorted(names, key=int)] if isinstance(names, dict) else \
                [str(n) for n in names]
            imgsz = d.get("imgsz", (640, 640))
            imgsz = (int(imgsz), int(imgsz)) if isinstance(imgsz, (int, float)) else tuple(int(s) for s in imgsz)
            meta = cls(task=str(d.get("task", "detect")), names=names, stride=int(d.get("stride", 32)),
                       imgsz=imgsz, batch=int(d.get("batch", 1)), dynamic=bool(d.get("dynamic", False)),
                       model_yaml=dict(d.get("model_yaml") or {}), precision=str(d.get("precision", "fp32")),
                       producer=str(d.get("producer", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise BackendError(f"{where}: malformed model metadata ({type(e).__name__}: {e})") from None
        if meta.task not in TASKS or len(meta.imgsz) != 2:
            raise BackendError(f"{where}: metadata task {meta.task!r} / imgsz {meta.imgsz}: expected a task in "
                               f"{TASKS} and imgsz (h, w)")
        return meta


def fallback_meta(where: str, task: str, nc: int, imgsz: Tuple[int, int], batch: int, dynamic: bool) -> ModelMeta:
    """Metadata for a model exported elsewhere: class names 0..nc-1 (with a warning), stride 32."""
    LOGGER.warning(f"WARNING: {where} carries no yolobone metadata; using class names 0..{nc - 1}, stride 32, "
                   f"task {task!r} (export with `python export.py` to embed them)")
    return ModelMeta(task=task, names=[str(i) for i in range(nc)], stride=32, imgsz=imgsz, batch=batch,
                     dynamic=dynamic, producer="")


class Backend:
    """Common part of all backends: metadata accessors, static-batch chunking, warm-up."""

    kind = "base"  # 'torch', 'onnx', 'openvino', 'torchscript'

    def __init__(self, meta: ModelMeta, device: torch.device, source: str):
        self.meta = meta
        self.device = device
        self.source = source
        self.fp16 = meta.precision == "fp16"

    # ---- metadata -------------------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.meta.task

    @property
    def names(self) -> List[str]:
        return self.meta.names

    @property
    def nc(self) -> int:
        return self.meta.nc

    @property
    def stride(self) -> int:
        return self.meta.stride

    @property
    def dynamic(self) -> bool:
        """True when any batch size and image size (multiple of the stride) is accepted."""
        return self.meta.dynamic

    # ---- inference ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw predictions for a float batch in [0, 1]; a static export's fixed batch is filled by chunks."""
        if not self.dynamic:
            h, w = self.meta.imgsz
            if tuple(x.shape[2:]) != (h, w):
                raise BackendError(f"{self.source}: exported for {h}x{w} inputs without --dynamic, got "
                                   f"{x.shape[2]}x{x.shape[3]}; use --imgsz {h if h == w else f'{h} {w}'} or "
                                   f"re-export with --dynamic")
            b = self.meta.batch
            if x.shape[0] != b:
                outs = []
                for i in range(0, x.shape[0], b):
                    chunk = x[i:i + b]
                    n = chunk.shape[0]
                    if n < b:  # pad the last chunk to the exported batch, keep only the real rows
                        chunk = torch.cat((chunk, chunk.new_zeros((b - n, *chunk.shape[1:]))))
                    outs.append(self.run(chunk)[:n])
                return torch.cat(outs)
        return self.run(x)

    __call__ = forward

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """One runtime call on a batch the model accepts as it is."""
        raise NotImplementedError

    def input_size(self, imgsz: Tuple[int, int]) -> Tuple[int, int]:
        """The (h, w) this backend runs at when asked for imgsz: a static export's own size (with a warning)."""
        if self.dynamic or tuple(imgsz) == tuple(self.meta.imgsz):
            return tuple(imgsz)
        LOGGER.warning(f"WARNING: {self.source} was exported for {self.meta.imgsz[0]}x{self.meta.imgsz[1]} "
                       f"(static shape); using that instead of {imgsz[0]}x{imgsz[1]}")
        return tuple(self.meta.imgsz)

    @property
    def can_compile(self) -> bool:
        """True when plan_compile may compile (a PyTorch backend whose --compile is not off)."""
        return False

    def plan_compile(self, shape: Tuple[int, ...], images: int) -> bool:
        """Compile for inputs of `shape` when worth it (the PyTorch backend); exported runtimes compile at load."""
        return False

    def warmup(self, imgsz: Tuple[int, int]) -> None:
        """One forward pass so the first timed batch does not pay for lazy initialisation."""
        h, w = self.input_size(imgsz)
        self.forward(torch.zeros((self.meta.batch if not self.dynamic else 1, 3, h, w), device=self.device))

    def describe(self) -> str:
        return f"{self.kind} {self.meta.precision} ({self.source})"
