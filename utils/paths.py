"""Run-folder naming (runs/train/exp, exp2, ...)."""
from __future__ import annotations

import os
from pathlib import Path


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
