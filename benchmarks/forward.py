"""Median eval-mode forward latency at batch 1: unfused vs fused vs fused + inference_mode + channels_last.

    python benchmarks/forward.py [--cfgs configs/yolov5n.yaml configs/yolov5s.yaml] [--imgsz 640] [--runs 20]
"""
from __future__ import annotations

import argparse
import copy
from typing import List

import torch

from yolobone.models import DetectionModel
from yolobone.utils.profiling import median_ms


def bench(cfg: str, imgsz: int, runs: int, threads: int) -> List[str]:
    torch.set_num_threads(threads)
    model = DetectionModel(cfg).eval()
    fused = copy.deepcopy(model).fuse().eval()
    fused_cl = copy.deepcopy(fused).to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, imgsz, imgsz)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def no_grad(m, inp):
        def run():
            with torch.no_grad():
                m(inp)
        return run

    def inference(m, inp):
        def run():
            with torch.inference_mode():
                m(inp)
        return run

    base = median_ms(no_grad(model, x), runs)
    rows = [("unfused, no_grad", base),
            ("fused, no_grad", median_ms(no_grad(fused, x), runs)),
            ("fused, inference_mode", median_ms(inference(fused, x), runs)),
            ("fused, inference_mode + channels_last", median_ms(inference(fused_cl, x_cl), runs))]
    name = cfg.rsplit("/", 1)[-1].removesuffix(".yaml")
    return [f"| {name} | {label} | {ms:.1f} | {base / ms:.2f}x |" for label, ms in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfgs", nargs="+", default=["configs/yolov5n.yaml", "configs/yolov5s.yaml"])
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    opt = parser.parse_args()
    print(f"torch {torch.__version__}, CPU threads {opt.threads}, input 1x3x{opt.imgsz}x{opt.imgsz}, "
          f"median of {opt.runs} runs")
    print("| model | variant | median ms | speed-up vs unfused |")
    print("|---|---|---|---|")
    for cfg in opt.cfgs:
        for row in bench(cfg, opt.imgsz, opt.runs, opt.threads):
            print(row, flush=True)


if __name__ == "__main__":
    main()
