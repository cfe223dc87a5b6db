"""Backbone zoo table: parameters, GFLOPs at 640 and median CPU latency (batch 1) of yolov5s and of the YOLOv5s neck
on every backbone in configs/backbones/ (torchvision, timm and YAML-native), plus the other backbone configs.

    python benchmarks/backbones.py [--imgsz 320] [--runs 10] [--threads 1] [--neck configs/yolov5s.yaml]
                                   [--backbones resnet50 convnext_atto ...] [--cfgs configs/a.yaml ...]

Latency: fused eval model (BatchNorm folded in YOLOv5 Conv blocks and in torchvision backbones alike; --unfused to
skip), torch.inference_mode, 3 warm-up runs, median of --runs. Parameters are counted before fusing.
GFLOPs: torch's FLOP counter (multiply-add = 2) at 640. The backend columns time the PyTorch inference backend as
detect.py runs it (a fused copy, channels_last, convolutions packed for oneDNN: yolobone/engine/backends/onednn_pack.py), and
the same without packing; --no-backend leaves them out.
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
from tqdm import tqdm

import yolobone.models.backbones as backbones_pkg
from yolobone.engine.backends.torch_backend import TorchBackend
from yolobone.models import DetectionModel
from yolobone.models.backbones.pretrained import no_pretrained
from yolobone.models.compose import available_backbones, backbone_levels, compose
from yolobone.models.parse import ModelSpec, load_model_yaml
from yolobone.models.registry import get_block
from yolobone.utils.torch_utils import count_gflops

ROOT = Path(__file__).resolve().parents[1]
Config = Union[Path, ModelSpec]


def backbone_configs(neck: Path = ROOT / "configs" / "yolov5s.yaml", backbones: Optional[Sequence[str]] = None,
                     config_dir: Path = ROOT / "configs") -> List[Config]:
    """The neck YAML itself, the neck on each backbone (default: every file in configs/backbones/ that fits a
    P3-P5 neck, except cspdarknet, which is the neck YAML itself), then the configs of config_dir that use backbone
    blocks but are no composition (yolov5s-res2net)."""
    names = backbones if backbones is not None else \
        [b for b in available_backbones() if b != "cspdarknet" and not _has_p6(b)]
    composed: List[Config] = [compose(neck, b) for b in names]
    others = []
    if backbones is None:
        for cfg in sorted(config_dir.glob("*.yaml")):
            spec = load_model_yaml(cfg)
            if spec.data.get("backbone_name"):
                continue  # a composition: its backbone is benchmarked above
            blocks = {r[2] for r in spec.rows if not str(r[2]).startswith("nn.")}
            if any(get_block(n).cls.__module__.startswith(backbones_pkg.__name__ + ".") for n in blocks):
                others.append(cfg)
    return [neck, *composed, *others]


def _has_p6(backbone: str) -> bool:
    """Backbones with a P6 stage go with the P6 necks (yolov5s6.yaml)."""
    return 6 in backbone_levels(backbone)


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


def table(cfgs: Sequence[Config], imgsz: int, runs: int, fuse: bool = True, backend: bool = True) -> List[str]:
    head = "| config | backbone params (M) | params (M) | GFLOPs @640 | CPU ms @%d (median) |" % imgsz
    rule = "|---|---|---|---|---|"
    if backend:  # what detect.py runs: the PyTorch backend (channels_last, packed oneDNN convs) and without packing
        head += " backend ms, unpacked | backend ms (detect.py's) | backend / eager |"
        rule += "---|---|---|"
    rows = [head, rule]
    for cfg in tqdm(cfgs, desc="backbones", leave=False):
        torch.manual_seed(0)
        with no_pretrained():  # speed does not depend on the weights: read (or download) no ImageNet files
            model = DetectionModel(cfg).eval()
        name = model.yaml_spec.name
        n_back = len(model.yaml["backbone"])
        back = sum(p.numel() for m in model.model[:n_back] for p in m.parameters())
        total = sum(p.numel() for p in model.parameters())
        gflops = count_gflops(model, 640, probe=model.probe_size)
        ms = median_latency_ms(model.fuse() if fuse else model, imgsz, runs)
        row = f"| {name} | {back / 1e6:.2f} | {total / 1e6:.2f} | {gflops:.1f} | {ms:.1f} |"
        if backend:
            cpu = torch.device("cpu")
            plain = median_latency_ms(TorchBackend(model, cpu, pack=False), imgsz, runs)
            packed = median_latency_ms(TorchBackend(model, cpu), imgsz, runs)
            row += f" {plain:.1f} | {packed:.1f} | {packed / ms:.2f}x |"
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfgs", nargs="+", type=Path, default=None,
                        help="model YAMLs to time instead of the neck + backbones list")
    parser.add_argument("--neck", type=Path, default=ROOT / "configs" / "yolov5s.yaml", help="the neck YAML")
    parser.add_argument("--backbones", nargs="+", default=None, help="default: every file in configs/backbones/")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--unfused", action="store_true", help="time the model without folding BatchNorm")
    parser.add_argument("--no-backend", action="store_true", help="leave out the PyTorch inference backend columns")
    opt = parser.parse_args()
    torch.set_num_threads(opt.threads)
    cfgs = opt.cfgs or backbone_configs(opt.neck, opt.backbones)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {opt.threads} CPU thread(s), "
          f"load average {load:.1f}, input 1x3x{opt.imgsz}x{opt.imgsz}, median of {opt.runs} runs after 3 warm-up, "
          f"{'unfused' if opt.unfused else 'fused'} eval model")
    for row in table(cfgs, opt.imgsz, opt.runs, fuse=not opt.unfused, backend=not opt.no_backend):
        print(row, flush=True)


if __name__ == "__main__":
    main()
