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

from yolobone.engine.compare.options import BACKENDS, CompareOptions
from yolobone.engine.core.optim import OPTIMIZER_CHOICES
from yolobone.engine.core.trackers import LOGGER_CHOICES
from yolobone.utils.cli import parse_bool, run_cli


def build_parser() -> argparse.ArgumentParser:
    d = CompareOptions()
    p = argparse.ArgumentParser(description="Train and compare model YAMLs (backbones) under identical settings.")
    p.add_argument("--cfgs", nargs="+", default=[], help="model YAMLs to compare")
    p.add_argument("--cfg", type=str, default="", help="the model whose backbone each of --backbones replaces")
    p.add_argument("--backbones", nargs="+", default=[],
                   help="backbones for --cfg: names in configs/backbones/ or files; the --cfg stem (yolov5s) keeps "
                        "its own backbone")
    p.add_argument("--data", type=str, default=None,
                   help="data YAML (detect) or ImageFolder root (classify); default: the built-in shapes set")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs per config")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz,
                   help="train/val image size, also used for GFLOPs and latency")
    p.add_argument("--task", default=d.task, choices=("detect", "classify"), help="train detectors or classifiers")
    p.add_argument("--profile-only", action="store_true", help="only measure parameters, GFLOPs and latency")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="training batch size")
    p.add_argument("--device", default=d.device,
                   help="training device: cuda index (0) or cpu; a list (0,1,2,3) runs one job per GPU at a time")
    p.add_argument("--seed", type=int, default=d.seed, help="training seed shared by every config")
    p.add_argument("--seeds", type=int, nargs="+", default=d.seeds,
                   help="train every config once per seed; the table reports mean ± std (n) and tests each config "
                        "against the first")
    p.add_argument("--freeze", nargs="+", default=d.freeze, help="train.py --freeze for every config (detect)")
    p.add_argument("--pretrained", type=parse_bool, nargs="?", const=True, default=d.pretrained,
                   help="train.py --pretrained for every config (detect): false trains the backbones from scratch")
    p.add_argument("--jobs", type=int, default=d.jobs,
                   help="(config, seed) jobs at the same time on this machine, each in its own process and log")
    p.add_argument("--ray", default=d.ray, metavar="auto|ADDRESS|local",
                   help="run the jobs as Ray tasks on a cluster (auto, host:port) or a Ray instance here (local)")
    p.add_argument("--cpus-per-job", type=int, default=d.cpus_per_job,
                   help="CPU threads of each parallel job (the CPUs a Ray task asks for)")
    p.add_argument("--protocol", default=d.protocol, help="rerun the comparison a protocol.yaml describes")
    p.add_argument("--hyp", type=str, default=None, help="detection hyperparameter YAML (default: scratch-low)")
    p.add_argument("--optimizer", choices=list(OPTIMIZER_CHOICES), default=None,
                   help="optimizer for every config (default: SGD for detect, Adam for classify)")
    p.add_argument("--workers", type=int, default=d.workers, help="max dataloader workers")
    p.add_argument("--noplots", action="store_true", help="no plot files inside each training run")
    p.add_argument("--int8", action="store_true",
                   help="per trained config: INT8 (ONNX Runtime) mAP50-95/top-1, its drop against FP32, INT8 latency")
    p.add_argument("--latency-runs", type=int, default=d.latency_runs, help="timed forward passes per device")
    p.add_argument("--backends", nargs="+", default=d.backends, choices=BACKENDS,
                   help="latency columns: torch (PyTorch, CPU/GPU), onnx (ONNX Runtime), openvino (CPU)")
    p.add_argument("--pareto-backend", default=d.pareto_backend, choices=BACKENDS,
                   help="whose latency the Pareto plot uses (one of --backends)")
    p.add_argument("--tune-each", type=int, default=d.tune_each, metavar="K",
                   help="detect: K Ray Tune trials (ASHA) per config over lr0, weight decay, warmup, optimizer and "
                        "backbone LR on a tuning split of train; each config then trains with its own best recipe")
    p.add_argument("--tune-time", type=float, default=d.tune_time, metavar="SECONDS",
                   help="detect: a time budget for each config's tuning (alone: trials until the time is up)")
    p.add_argument("--loggers", nargs="+", default=d.loggers, choices=list(LOGGER_CHOICES),
                   help="train.py --loggers for every run; mlflow/wandb runs are grouped under the comparison")
    p.add_argument("--project", default=d.project, help="save to project/name")
    p.add_argument("--name", default=d.name, help="save to project/name")
    p.add_argument("--exist-ok", action="store_true",
                   help="reuse project/name: read back finished configs, resume interrupted ones")
    p.add_argument("--resume", nargs="?", const=True, default=False,
                   help="continue the newest (or the given) comparison folder with its saved options")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    opt = build_parser().parse_args(argv)

    def job() -> None:
        from yolobone.engine.compare.run import compare
        print(compare(opt).results_md.read_text())

    return run_cli(job, errors=(ValueError, FileNotFoundError),
                   interrupted="re-run the same command with --exist-ok (or --resume) to continue")


if __name__ == "__main__":
    sys.exit(main())
