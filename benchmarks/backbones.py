"""Backbone zoo table: parameters, GFLOPs at 640 and median CPU latency (batch 1) of every backbone config + yolov5s.

    python benchmarks/backbones.py [--imgsz 320] [--runs 10] [--threads 1] [--cfgs configs/a.yaml ...]

Latency: fused eval model (BatchNorm folded in YOLOv5 Conv blocks and in torchvision backbones alike; --unfused to
skip), torch.inference_mode, 3 warm-up runs, median of --runs. Parameters are counted before fusing.
GFLOPs: torch's FLOP counter (multiply-add = 2) at 640.
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import List, Sequence

import torch
from tqdm import tqdm

import models.backbones as backbones_pkg
from models import DetectionModel
from models.registry import get_block
from utils.torch_utils import count_gflops
from utils.yaml_io import load_yaml

ROOT = Path(__file__).resolve().parents[1]


def backbone_configs(config_dir: Path = ROOT / "configs") -> List[Path]:
    """yolov5s.yaml plus every config using a block from models/backbones/."""
    found = []
    for cfg in sorted(config_dir.glob("*.yaml")):
        d = load_yaml(cfg)
        names = {r[2] for r in (d.get("backbone") or []) + (d.get("head") or []) if not str(r[2]).startswith("nn.")}
        if any(get_block(n).cls.__module__.startswith(backbones_pkg.__name__ + ".") for n in names):
            found.append(cfg)
    return [config_dir / "yolov5s.yaml", *found]


def median_latency_ms(model: torch.nn.Module, imgsz: int, runs: int, warmup: int = 3) -> float:
    x = torch.rand(1, 3, imgsz, imgsz)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            t = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def table(cfgs: Sequence[Path], imgsz: int, runs: int, fuse: bool = True) -> List[str]:
    rows = ["| config | backbone params (M) | params (M) | GFLOPs @640 | CPU ms @%d (median) |" % imgsz,
            "|---|---|---|---|---|"]
    for cfg in tqdm(cfgs, desc="backbones", leave=False):
        torch.manual_seed(0)
        model = DetectionModel(cfg).eval()
        n_back = len(model.yaml["backbone"])
        back = sum(p.numel() for m in model.model[:n_back] for p in m.parameters())
        total = sum(p.numel() for p in model.parameters())
        gflops = count_gflops(model, 640, probe=model.probe_size)
        ms = median_latency_ms(model.fuse() if fuse else model, imgsz, runs)
        rows.append(f"| {cfg.stem} | {back / 1e6:.2f} | {total / 1e6:.2f} | {gflops:.1f} | {ms:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfgs", nargs="+", type=Path, default=None, help="default: yolov5s + all backbone configs")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--unfused", action="store_true", help="time the model without folding BatchNorm")
    opt = parser.parse_args()
    torch.set_num_threads(opt.threads)
    cfgs = opt.cfgs or backbone_configs()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {opt.threads} CPU thread(s), "
          f"load average {load:.1f}, input 1x3x{opt.imgsz}x{opt.imgsz}, median of {opt.runs} runs after 3 warm-up, "
          f"{'unfused' if opt.unfused else 'fused'} eval model")
    for row in table(cfgs, opt.imgsz, opt.runs, fuse=not opt.unfused):
        print(row, flush=True)


if __name__ == "__main__":
    main()
