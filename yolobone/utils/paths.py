"""Run-folder naming (runs/train/exp, exp2, ...) and folder names made from labels."""
from __future__ import annotations

import os
import re
from pathlib import Path

# Separators, characters Windows refuses in names, and control characters.
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')


def increment_path(path: str | os.PathLike, exist_ok: bool = False, sep: str = "", mkdir: bool = False) -> Path:
    """runs/exp -> runs/exp2, runs/exp3, ... unless exist_ok; the first free name is returned."""
    path = Path(path)
    if path.exists() and not exist_ok:
        base, suffix = (path.with_suffix(""), path.suffix) if path.is_file() else (path, "")
        n = 2
        while Path(f"{base}{sep}{n}{suffix}").exists():
            n += 1
        path = Path(f"{base}{sep}{n}{suffix}")
    if mkdir:
        path.mkdir(parents=True, exist_ok=True)
    return path


def safe_folder_name(name: str) -> str:
    """A class name as exactly one folder level: separators and unsafe characters become `_`, and a name of dots
    only (`.`, `..`), empty or blank becomes underscores, so nothing escapes the folder it is joined to."""
    safe = _UNSAFE.sub("_", str(name)).strip()
    if not safe.strip("."):
        safe = "_" * max(len(safe), 1)
    return safe


PACKAGE_CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # model, data and hyp YAMLs shipped in the package


def find_config(path: str | os.PathLike) -> Path:
    """A config path as given when it exists; else the same file among the package's shipped configs, so
    `configs/yolov5s.yaml`, `yolov5s.yaml` and `configs/hyp/hyp.scratch-low.yaml` work from any folder, as YOLOv5 finds
    its bundled YAMLs; else the path unchanged, for the caller to report missing."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    parts = p.parts[1:] if p.parts[:1] == ("configs",) else p.parts
    shipped = PACKAGE_CONFIGS.joinpath(*parts) if parts else PACKAGE_CONFIGS
    return shipped if shipped.is_file() else p
