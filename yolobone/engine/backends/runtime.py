"""Optional runtimes: import them with a one-line error naming the pip package, and share the thread count."""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Tuple

import torch

from yolobone.engine.core.backend import BackendError

PIP_NAMES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "onnx": "onnx", "onnxslim": "onnxslim"}


def require(module: str, purpose: str) -> ModuleType:
    """import `module`, or raise BackendError telling which package to pip install for `purpose`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise BackendError(f"{purpose} needs the '{PIP_NAMES.get(module, module)}' package, which is not installed "
                           f"({e}); run: pip install {PIP_NAMES.get(module, module)}") from None


def cpu_threads() -> int:
    """Intra-op threads for ONNX Runtime and OpenVINO: the same as torch's (OMP_NUM_THREADS / set_num_threads)."""
    return max(int(torch.get_num_threads()), 1)


def export_folder_files(path: Path, model_file: str, siblings: Tuple[str, ...], include: str) -> Tuple[Path, ...]:
    """(model, *siblings) of an export folder (or its model file); BackendError naming what is missing."""
    model = path / model_file if path.is_dir() else path
    files = (model, *(model.parent / s for s in siblings))
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise BackendError(f"{path}: expected an export folder with {', '.join([model_file, *siblings])} "
                           f"(python export.py --include {include}); missing {', '.join(missing)}")
    return files
