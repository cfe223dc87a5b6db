"""Device selection, seeding and timing helpers."""
from __future__ import annotations

import os
import random
import time

import numpy as np
import torch


def select_device(device: str | int | torch.device | None = "") -> torch.device:
    """'' -> cuda:0 if available else cpu; 'cpu'; '0' or 'cuda:0'; '0,1' -> cuda:0 (DDP picks its own rank)."""
    if isinstance(device, torch.device):
        return device
    spec = str(device if device is not None else "").strip().lower().replace("cuda:", "")
    if spec in ("", "none"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("device 'mps' requested but MPS is not available on this machine")
        return torch.device("mps")
    ids = [s for s in spec.split(",") if s]
    if not all(s.isdigit() for s in ids):
        raise ValueError(f"device {device!r}: expected 'cpu', 'mps', a CUDA index like '0' or a list like '0,1'")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use the device 'cpu')")
    n = torch.cuda.device_count()
    bad = [i for i in ids if int(i) >= n]
    if bad:
        raise ValueError(f"device {device!r}: CUDA device {bad[0]} not found, this machine has {n}")
    return torch.device(f"cuda:{ids[0]}")


def init_seeds(seed: int = 0, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; deterministic=True also asks torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def time_sync() -> float:
    """time.perf_counter() after waiting for queued CUDA work."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


@torch.no_grad()
def fuse_conv_and_bn(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> torch.nn.Conv2d:
    """A Conv2d (with bias) computing bn(conv(x)) in eval mode."""
    fused = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                            dilation=conv.dilation, groups=conv.groups, bias=True).requires_grad_(False)
    fused = fused.to(conv.weight.device)
    scale = bn.weight.div(torch.sqrt(bn.running_var + bn.eps))
    fused.weight.copy_(conv.weight.detach() * scale.view(-1, 1, 1, 1))
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels, device=conv.weight.device)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def count_gflops(model: torch.nn.Module, imgsz=640, probe: int = 256, channels: int = 3) -> float:
    """GFLOPs of one forward pass at imgsz, counted with torch's FLOP counter on a probe-size input and scaled.

    Convolutions dominate and scale exactly with the number of pixels, so counting at the probe size (a multiple
    of every stride) and scaling is exact for them and cheap.
    """
    from torch.utils.flop_counter import FlopCounterMode

    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    p = next(model.parameters())
    x = torch.zeros(1, channels, probe, probe, device=p.device, dtype=p.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9 * (h * w) / (probe * probe)
