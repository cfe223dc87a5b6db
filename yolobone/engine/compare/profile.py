"""Size and speed of each config: parameters, GFLOPs and median latency per device (PyTorch) and per export runtime,
measured once and cached in the comparison folder's profiles.json while the YAML file and the settings match."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
import torch.nn as nn

from yolobone.engine.backends.torch_backend import TorchBackend
from yolobone.engine.compare.options import CompareOptions
from yolobone.engine.compare.report import ConfigResult
from yolobone.engine.export.latency import export_latency_ms
from yolobone.engine.train import TASKS
from yolobone.utils.image_size import stride_multiple
from yolobone.utils.profiling import ModelProfile, device_name, latency_devices, profile_model

PROFILES_FILE = "profiles.json"
TORCH_LATENCY = "TorchBackend"  # what the torch columns time (in the profile cache key: older caches re-measure)


def deployed_torch(model: nn.Module, device: torch.device) -> TorchBackend:
    """The PyTorch latency columns time what detect.py and val.py run: the inference backend (a fused copy, on the
    CPU channels_last with packed oneDNN convolutions), not the bare eager model."""
    return TorchBackend(model, device)


def file_hash(path: str) -> str:
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def build_for_profile(cfg: str, task: str, nc: int, imgsz: int) -> Tuple[nn.Module, int]:
    """The model as training builds it, and the image size training will use (a stride multiple for detection)."""
    model = TASKS[task].new_model(cfg, nc)
    return model, stride_multiple(imgsz, TASKS[task].grid_size(model))


class Profiler:
    """Profiles a comparison's configs into their rows, through the folder's cache."""

    def __init__(self, o: CompareOptions, save_dir: Path):
        self.opt, self.save_dir = o, save_dir
        self.file = save_dir / PROFILES_FILE
        try:
            self.cache: Dict[str, Any] = json.loads(self.file.read_text())
        except (OSError, ValueError):
            self.cache = {}

    def profile(self, row: ConfigResult, nc: int) -> None:
        """Set row.profile: from the cache when its key matches, else measured (and the cache rewritten)."""
        o = self.opt
        devices = [str(d) for d in latency_devices(o.device)]
        key = {"sha1": file_hash(row.cfg), "nc": nc, "imgsz": o.imgsz, "task": o.task, "devices": devices,
               "runs": o.latency_runs, "backends": list(o.backends), "torch": TORCH_LATENCY}
        cached = self.cache.get(row.name)
        if cached and cached.get("key") == key:
            row.profile = ModelProfile.from_dict(cached["profile"])
            return
        model, imgsz = build_for_profile(row.cfg, o.task, nc, o.imgsz)
        row.profile = profile_model(model, imgsz, devices=devices, runs=o.latency_runs, runner=deployed_torch)
        for kind in (b for b in o.backends if b != "torch"):  # CPU runtimes, timed from a static export
            ms, runtime = export_latency_ms(model, imgsz, kind, self.save_dir / "exports" / row.name / kind,
                                            runs=o.latency_runs)
            row.profile.latency_ms[kind], row.profile.device_names[kind] = ms, f"{runtime}, {device_name('cpu')}"
        del model
        self.cache[row.name] = {"key": key, "profile": row.profile.to_dict()}
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cache, indent=1))
        os.replace(tmp, self.file)
