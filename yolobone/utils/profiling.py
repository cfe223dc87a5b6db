"""Model size and speed figures: parameters, GFLOPs at an image size, median batch-1 latency per device.

    prof = profile_model(DetectionModel("configs/yolov5s.yaml"), imgsz=640)
    print(prof.params, prof.gflops, prof.latency_ms)   # latency_ms: {"cpu": 71.3, "cuda:0": 4.2}
"""
from __future__ import annotations

import copy
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from yolobone.utils.torch_utils import count_gflops

Device = Union[str, torch.device]


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def model_gflops(model: nn.Module, imgsz: int) -> float:
    """GFLOPs of one forward pass at imgsz x imgsz (counted at the model's probe size and scaled)."""
    probe = int(getattr(model, "probe_size", 256))
    return count_gflops(model, imgsz, probe=probe)


def device_name(device: Device) -> str:
    """Human-readable name: the CUDA card's name, or the CPU's with the torch thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    n = torch.get_num_threads()
    return f"{cpu}, {n} thread{'s' if n > 1 else ''}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


Runner = Callable[[nn.Module, torch.device], Callable[[torch.Tensor], object]]


def median_latency_ms(model: nn.Module, imgsz: int, device: Device = "cpu", runs: int = 20, warmup: int = 3,
                      fuse: bool = True, runner: Optional[Runner] = None) -> float:
    """Median wall time (ms) of one batch-1 float32 forward pass on device, in eval mode under inference_mode.

    The model is deep-copied (the caller's model is untouched) and, with fuse=True, its Conv+BatchNorm pairs are
    folded as detect.py does before timing. `runner(model, device)`, when given, builds what is timed instead (the
    caller's model, uncopied: e.g. an inference backend that copies and prepares it itself).
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"median_latency_ms: need runs >= 1 and warmup >= 0, got {runs} and {warmup}")
    device = torch.device(device)
    x = torch.rand(1, int(getattr(model, "in_channels", 3)), imgsz, imgsz, device=device)
    if runner is not None:
        run = runner(model, device)
        return median_ms(lambda: run(x), runs, warmup, device)
    m = copy.deepcopy(model).float().to(device).eval()
    if fuse and hasattr(m, "fuse"):
        with torch.no_grad():
            m.fuse()
    with torch.inference_mode():
        return median_ms(lambda: m(x), runs, warmup, device)


def median_ms(fn: Callable[[], object], runs: int = 20, warmup: int = 3, device: Device = "cpu") -> float:
    """Median wall time (ms) of fn() over `runs` calls after `warmup` untimed ones (CUDA synchronised)."""
    device = torch.device(device)
    times: List[float] = []
    for i in range(warmup + runs):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def latency_devices(device: Device = "") -> List[torch.device]:
    """CPU always, plus the CUDA device when CUDA is present and `device` is not 'cpu'."""
    devices = [torch.device("cpu")]
    spec = str(device).strip().lower()
    if spec != "cpu" and torch.cuda.is_available():
        index = spec.replace("cuda:", "").split(",")[0]
        devices.append(torch.device(f"cuda:{int(index) if index.isdigit() else 0}"))
    return devices


@dataclass
class ModelProfile:
    """Size and speed of one model at one image size."""

    params: int
    gflops: float
    imgsz: int
    latency_ms: Dict[str, float] = field(default_factory=dict)  # device ('cpu', 'cuda:0') -> median ms, batch 1
    device_names: Dict[str, str] = field(default_factory=dict)  # same keys -> CPU model / GPU name

    def to_dict(self) -> dict:
        return {"params": self.params, "gflops": self.gflops, "imgsz": self.imgsz,
                "latency_ms": dict(self.latency_ms), "device_names": dict(self.device_names)}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelProfile":
        return cls(params=int(d["params"]), gflops=float(d["gflops"]), imgsz=int(d["imgsz"]),
                   latency_ms={k: float(v) for k, v in d.get("latency_ms", {}).items()},
                   device_names={k: str(v) for k, v in d.get("device_names", {}).items()})


def profile_model(model: nn.Module, imgsz: int, devices: Optional[Sequence[Device]] = None, runs: int = 20,
                  warmup: int = 3, runner: Optional[Runner] = None) -> ModelProfile:
    """Parameters, GFLOPs at imgsz and median batch-1 latency on each device (default: latency_devices());
    `runner` as in median_latency_ms."""
    prof = ModelProfile(params=count_params(model), gflops=model_gflops(model, imgsz), imgsz=int(imgsz))
    for dev in devices if devices is not None else latency_devices():
        dev = torch.device(dev)
        key = str(dev)
        prof.latency_ms[key] = median_latency_ms(model, imgsz, dev, runs=runs, warmup=warmup, runner=runner)
        prof.device_names[key] = device_name(dev)
    return prof
