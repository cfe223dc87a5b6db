"""Read checkpoints that pickle whole modules, YOLOv5 v7.0's and Ultralytics', without running any of their code.

YOLOv5's train.py saves whole modules, so its files name classes: `models.yolo.DetectionModel`, `models.common.C3`,
`torch.nn.modules.conv.Conv2d`, ... (`yolov5.models.` when written by the pip package). Ultralytics' files (yolo11n.pt,
yolov8n.pt, every run of its trainer) name `ultralytics.nn.tasks.DetectionModel`, `ultralytics.nn.modules.block.C2f`,
... They are read with torch's weights-only unpickler, where each of those names is allow-listed as an inert `Record`
that keeps the pickled attributes and nothing else: the named classes are never imported or called, tensors are
rebuilt only by torch's own rebuild functions, and any other global (os.system, builtins.eval, subprocess.Popen, ...)
stops the load with a one-line error naming it. From the records come the state dict (fp16 -> fp32), the model's
`yaml` dict, `names`, `stride` and the anchors, in the form of our own checkpoints (utils/yolov5_convert.py).
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn

from yolobone.utils.errors import YoloboneError

PREFIXES = ("models.", "yolov5.models.")  # the GitHub checkout's module path, the pip package's
YOLOV5_CLASSES = {
    "yolo": ("DetectionModel", "Model", "Detect", "ClassificationModel", "BaseModel"),
    "common": ("Conv", "DWConv", "DWConvTranspose2d", "TransformerLayer", "TransformerBlock", "Bottleneck",
               "BottleneckCSP", "CrossConv", "C3", "C3x", "C3TR", "C3SPP", "C3Ghost", "SPP", "SPPF", "Focus",
               "GhostConv", "GhostBottleneck", "Contract", "Expand", "Concat", "Classify"),
    "experimental": ("Sum", "MixConv2d", "CrossConv"),
}
# Plain data some YOLOv5 checkpoints carry beside the model (a numpy best_fitness in an unfinished run's last.pt,
# an argparse Namespace in older ones): kept as records, never used.
# The inference transforms YOLOv5's classify/train.py attaches to its model (model.transforms), likewise.
INERT_DATA = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
              "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "argparse.Namespace",
              *(f"torchvision.transforms.transforms.{c}" for c in ("Compose", "Normalize", "Resize", "CenterCrop",
                                                                     "ToTensor")),
              "torchvision.transforms.functional.InterpolationMode",
              *(f"{p}utils.augmentations.{c}" for p in ("", "yolov5.")
                for c in ("CenterCrop", "ToTensor", "LetterBox")))
# Ultralytics' module classes are many and grow with each release: any name under these packages is allowed, as a
# Record like YOLOv5's (a name is only ever a label here, never imported), but only the names that the file holds.
ULTRALYTICS_PREFIXES = ("ultralytics.nn.modules.", "ultralytics.nn.tasks.")
ULTRALYTICS_DATA = ("ultralytics.utils.IterableSimpleNamespace",)  # model.args in some releases: kept, never used
FORMAT_NAMES = {"yolov5": "YOLOv5", "ultralytics": "Ultralytics"}
PATH_CLASSES = ("pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath")


class ForeignCheckpointError(YoloboneError, ValueError):
    """A YOLOv5 or Ultralytics checkpoint that cannot be read safely or does not hold what such a model holds."""


class Record:
    """What a pickle said about an object of class `qualname`: its constructor arguments and its state.
    Never an instance of that class; creating or filling one runs no code from the file."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Record":
        obj = super().__new__(cls)
        obj.args, obj.state = args, {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args): the arguments are kept above
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (dict, slots) form
        self.state = state if isinstance(state, dict) else {"": state}

    def __repr__(self) -> str:
        return f"Record({self.qualname})"


def _path_text(*parts: Any) -> str:
    """A pickled pathlib path as the text it holds."""
    return str(PurePosixPath(*[str(p) for p in parts]))


def _windows_path_text(*parts: Any) -> str:
    return str(PureWindowsPath(*[str(p) for p in parts]))


def _nn_class_names() -> Iterable[str]:
    """Full names of torch.nn's module classes, as pickles name them (the classes themselves are not used)."""
    seen = set()
    for sub in vars(nn.modules).values():
        for obj in vars(sub).values() if isinstance(sub, type(nn)) else ():
            if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__.startswith("torch.nn."):
                seen.add(f"{obj.__module__}.{obj.__qualname__}")
    return sorted(seen)


def _record_class(name: str) -> type:
    return type(name.rsplit(".", 1)[1], (Record,), {"qualname": name})


@functools.lru_cache(maxsize=1)
def allowed_globals() -> Dict[str, Any]:
    """Allow-list beyond torch's weights-only defaults: full name -> inert stand-in."""
    names = [f"{prefix}{module}.{cls}" for prefix in PREFIXES for module, classes in YOLOV5_CLASSES.items()
             for cls in classes]
    out: Dict[str, Any] = {n: _record_class(n) for n in [*names, *_nn_class_names(), *INERT_DATA, *ULTRALYTICS_DATA]}
    out.update({n: _windows_path_text if "Windows" in n else _path_text for n in PATH_CLASSES})
    return out


def _safe_globals(names_in_file: Iterable[str] = ()) -> List[Tuple[Any, str]]:
    extra = {n: _record_class(n) for n in names_in_file if n.startswith(ULTRALYTICS_PREFIXES)}
    return [(obj, name) for name, obj in {**allowed_globals(), **extra}.items()]


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def pickled_format(globals_in_file: Iterable[str]) -> Optional[str]:
    """'yolov5' or 'ultralytics' when a pickle's globals include that project's module classes, else None."""
    names = list(globals_in_file)
    if any(g.startswith(PREFIXES) for g in names):
        return "yolov5"
    if any(g.startswith(ULTRALYTICS_PREFIXES) for g in names):
        return "ultralytics"
    return None


def file_globals(path: str | os.PathLike) -> List[str]:
    """The globals a torch file's pickle names, read without loading anything ([] for an unreadable file)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a torch file, or an unreadable one: the caller reports its own error
        return []


def checkpoint_format(path: str | os.PathLike) -> Optional[str]:
    """'yolov5' or 'ultralytics' for a file that pickles that project's modules, else None."""
    return pickled_format(file_globals(path))


def is_yolov5_checkpoint(path: str | os.PathLike) -> bool:
    """Whether the file's pickle names YOLOv5 classes (read without loading anything)."""
    return checkpoint_format(path) == "yolov5"


def read_records(path: str | os.PathLike, fmt: str = "yolov5") -> Any:
    """Unpickle a YOLOv5 or Ultralytics checkpoint with their and torch.nn classes as Records; a one-line error
    otherwise."""
    label = FORMAT_NAMES[fmt]
    try:
        with torch.serialization.safe_globals(_safe_globals(file_globals(path) if fmt == "ultralytics" else ())):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, ... all become one line
        text = str(e)
        found = _GLOBAL.search(text)
        if found:
            raise ForeignCheckpointError(f"{path}: refused to load: it names {found.group(1)}, which is not a {label} "
                                         f"or torch.nn class on the allow-list of a {label} checkpoint") from None
        raise ForeignCheckpointError(f"{path}: not a readable {label} checkpoint "
                                     f"({text.strip().splitlines()[0][:200] if text.strip() else type(e).__name__})"
                                     ) from None


def module_tensors(record: Record, where: str, prefix: str = "", depth: int = 0) -> Dict[str, torch.Tensor]:
    """The state dict of a pickled nn.Module record, named as nn.Module.state_dict names it (fp16 -> fp32)."""
    if not isinstance(record, Record) or not isinstance(record.state, dict):
        raise ForeignCheckpointError(f"{where}: {prefix or 'model'} is a {type(record).__name__}, not a module")
    if depth > 64:
        raise ForeignCheckpointError(f"{where}: modules nested deeper than 64 levels at {prefix}")
    state = record.state
    skip = state.get("_non_persistent_buffers_set") or set()
    out: Dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, t in (state.get(group) or {}).items():
            if t is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise ForeignCheckpointError(f"{where}: {prefix}{name} is a {type(t).__name__}, not a tensor")
            t = t.detach()
            out[f"{prefix}{name}"] = t.float() if t.is_floating_point() else t
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_tensors(child, where, f"{prefix}{name}.", depth + 1))
    return out


