"""Compare backbones: train every model YAML under identical settings, then tabulate size, speed and accuracy.

    python compare.py --cfgs configs/yolov5s.yaml configs/yolov5s-resnet18.yaml --epochs 30 --imgsz 256
    python compare.py --cfgs configs/yolov5s*.yaml --imgsz 640 --profile-only          # size and speed only
    python compare.py --cfg configs/yolov5s.yaml --backbones yolov5s resnet18 resnet50 mobilenetv2 convnext_atto
    python compare.py --cfgs ... --backends torch onnx openvino --pareto-backend onnx   # latency per runtime
    python compare.py --cfgs ... --name exp --exist-ok       # re-run: finished configs read back, interrupted resumed
    python compare.py --resume runs/compare/exp              # the same, with the options saved in that folder
    python compare.py --task classify --cfgs configs/yolov5s.yaml configs/yolov5s-resnet18.yaml --imgsz 96
    python compare.py --cfgs ... --seeds 0 1 2 --jobs 2       # 3 seeds each, 2 jobs at a time: mean ± std, t-test
    python compare.py --cfgs ... --seeds 0 1 2 --device 0,1,2,3   # one job per GPU
    python compare.py --cfgs ... --seeds 0 1 2 --ray auto     # Ray tasks on a cluster (shared output folder)
    python compare.py --protocol runs/compare/exp/protocol.yaml --name rerun   # rerun a recorded comparison
    python compare.py --cfgs ... --tune-each 8 --seeds 0 1 --ray local   # each config with its own tuned recipe

Writes runs/compare/exp*/results.md, .csv, .tex, .json, protocol.yaml, pareto.png, curves.png and runs/<cfg stem>/
(each training run; runs/<cfg stem>/seed<k>/ with --seeds).
A bad input (missing data, settings that differ from the reused folder's) exits with code 2 and a one-line message;
a config that fails to build or train is reported in the table and the others go on.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from yolobone.engine.compare.options import CompareOptions
from yolobone.utils.cli import run_cli
from yolobone.utils.options import add_options


def build_parser() -> argparse.ArgumentParser:
    """compare.py's parser, generated from CompareOptions."""
    p = argparse.ArgumentParser(description="Train and compare model YAMLs (backbones) under identical settings.")
    return add_options(p, CompareOptions)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opt = build_parser().parse_args(argv)

    def job() -> None:
        from yolobone.engine.compare.run import compare
        print(compare(opt).results_md.read_text())

    return run_cli(job, errors=(ValueError, FileNotFoundError),
                   interrupted="re-run the same command with --exist-ok (or --resume) to continue")


if __name__ == "__main__":
    sys.exit(main())
