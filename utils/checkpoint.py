"""Checkpoints: plain state dicts + model YAML + metadata, written atomically, read with weights_only=True."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict

import torch

from utils.errors import first_line

CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not one of ours."""


def save_checkpoint(obj: Dict[str, Any], path: str | os.PathLike) -> Path:
    """Write obj to path atomically: a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format_version": CHECKPOINT_VERSION, **obj}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """Load a checkpoint written by save_checkpoint; any failure becomes a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types (UnpicklingError, RuntimeError, EOFError...)
        raise CheckpointError(f"{path}: not a loadable weights-only checkpoint ({first_line(e)[:200]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_yaml" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: expected a checkpoint with 'model' and 'model_yaml' entries, found {keys}")
    return ckpt


def intersect_state_dicts(src: Dict[str, torch.Tensor], dst: Dict[str, torch.Tensor],
                          exclude: tuple = ()) -> Dict[str, torch.Tensor]:
    """Entries of src whose key and shape exist in dst (and whose key contains none of `exclude`)."""
    return {k: v for k, v in src.items()
            if k in dst and not any(x in k for x in exclude) and v.shape == dst[k].shape}
