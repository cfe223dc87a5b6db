"""Checkpoints: plain state dicts + model YAML + metadata, written atomically, read with weights_only=True."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, List

import torch

from yolobone.utils.errors import first_line, YoloboneError
from yolobone.utils.faults import fault_point
from yolobone.utils.logging import LOGGER
from yolobone.utils.pickled_checkpoint import FORMAT_NAMES, ForeignCheckpointError, checkpoint_format
from yolobone.utils.yolov5_convert import load_ultralytics_checkpoint, load_yolov5_checkpoint

FOREIGN_LOADERS = {"yolov5": load_yolov5_checkpoint, "ultralytics": load_ultralytics_checkpoint}

CHECKPOINT_VERSION = 1
ZIP_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x80"  # torch.save's zip archive; the legacy pickle format
# Sentences of torch's weights-only error that advise loading the file unsafely (or point to the docs about it).
_ADVICE = ("weights_only", "safe_globals", "Weights only load failed", "documentation", "trusted source",
           "trust the source", "allowlist")


class CheckpointError(YoloboneError, ValueError):
    """A checkpoint file is missing, unreadable or not one of ours."""


TEMP_GLOB = ".*.tmp"  # save_checkpoint's temp files (.<name>.<random>.tmp) that a kill leaves behind


@contextmanager
def _atomic_file(path: Path, step: str) -> Iterator[BinaryIO]:
    """A temp file beside path to write into; on success it is fsynced and renamed over path, on failure removed.
    step names the write for fault injection (yolobone/utils/faults.py: point `<step>:<file name>`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            fault_point(f"{step}:{path.name}")
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(obj: Dict[str, Any], path: str | os.PathLike, step: str = "save") -> Path:
    """Write obj to path atomically: a temp file in the same folder, fsync, then rename over the target.
    step names the write for fault injection (yolobone/utils/faults.py: point `<step>:<file name>`)."""
    path = Path(path)
    with _atomic_file(path, step) as f:
        torch.save({"format_version": CHECKPOINT_VERSION, **obj}, f)
    return path


def copy_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, step: str = "save") -> Path:
    """Copy a written checkpoint file to dst atomically (temp file, fsync, rename): cheaper than serializing the
    same dict twice. step names the write for fault injection, as in save_checkpoint."""
    dst = Path(dst)
    with _atomic_file(dst, step) as f, open(src, "rb") as source:
        shutil.copyfileobj(source, f, 1 << 22)
    return dst


def remove_stale_temp_files(folder: str | os.PathLike) -> List[Path]:
    """Delete (and log) the temp files of checkpoint writes that a kill interrupted (the targets are intact)."""
    removed = []
    for f in sorted(Path(folder).glob(TEMP_GLOB)):
        if f.is_file():
            f.unlink(missing_ok=True)
            LOGGER.info(f"Removed {f.name}, the temp file of an interrupted checkpoint write")
            removed.append(f)
    return removed


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """Load a checkpoint written by save_checkpoint, or a YOLOv5 v7.0 or Ultralytics one converted to that form (its
    "source_format" entry says so); any failure becomes a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != ZIP_MAGIC and head[:1] != PICKLE_MAGIC:
        found = f"starts with {head!r}" if head else "is empty"
        raise CheckpointError(f"{path}: not a checkpoint (torch.save writes a zip archive; this file {found})")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types (UnpicklingError, RuntimeError, EOFError...)
        fmt = checkpoint_format(path)
        if fmt is None:
            raise CheckpointError(f"{path}: not a loadable weights-only checkpoint ({_load_failure(e)})") from None
        try:  # a pickled YOLOv5 / Ultralytics model: read as inert records (utils/pickled_checkpoint.py)
            ckpt = FOREIGN_LOADERS[fmt](path)
        except ForeignCheckpointError as foreign:
            raise CheckpointError(str(foreign)) from None
        LOGGER.info(f"{path}: {FORMAT_NAMES[fmt]} checkpoint read as data, none of its code run ('yolobone convert "
                    f"{path}' writes it once as a weights-only checkpoint)")
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_yaml" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: expected a checkpoint with 'model' and 'model_yaml' entries, found {keys}")
    return ckpt


def _load_failure(e: Exception) -> str:
    """Why torch refused the file, without torch's advice to retry with weights_only=False: for a file that needs
    it, that means running whatever code the file carries."""
    text = str(e)
    if "weights_only" not in text and "safe_globals" not in text:
        return first_line(e)[:200]
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text)
    reasons = [s.strip() for s in sentences if s.strip() and not any(w in s for w in _ADVICE)]
    reason = reasons[0].rstrip(".") if reasons else "it holds objects other than tensors and plain data"
    return f"{reason[:200]}; files that need more than weights-only loading are refused"


def intersect_state_dicts(src: Dict[str, torch.Tensor], dst: Dict[str, torch.Tensor],
                          exclude: tuple = ()) -> Dict[str, torch.Tensor]:
    """Entries of src whose key and shape exist in dst (and whose key contains none of `exclude`)."""
    return {k: v for k, v in src.items()
            if k in dst and not any(x in k for x in exclude) and v.shape == dst[k].shape}
