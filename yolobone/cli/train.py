"""Train a detector from a model YAML (or a checkpoint) the way YOLOv5's train.py does.

    python train.py --cfg configs/yolov5n.yaml --epochs 30 --imgsz 256            # built-in shapes dataset
    python train.py --cfg configs/yolov5s.yaml --data data.yaml --weights last.pt  # transfer matching weights
    python train.py --cfg configs/yolov5m.yaml --backbone resnet50                 # YOLOv5m neck on a ResNet50
    python train.py --cfg configs/yolov5s-resnet50.yaml --freeze backbone --freeze-epochs 3 --backbone-lr 0.1
    python train.py --resume runs/train/exp/weights/last.pt                        # continue an interrupted run
    python train.py --cfg configs/yolov5n.yaml --epochs 10 --evolve 100 --name evo --exist-ok  # hyp evolution
    python train.py --cfg configs/yolov5n.yaml --epochs 10 --tune 16                # Ray Tune + ASHA recipe search
    torchrun --nproc_per_node 2 train.py --cfg configs/yolov5n.yaml --device cpu   # DDP (gloo on CPU)
    python train.py --task classify ...                                            # classification trainer

A bad input (missing data, bad YAML, incompatible checkpoint) exits with code 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from yolobone.engine.core.acceleration import add_speedup_args
from yolobone.engine.core.optim import OPTIMIZER_CHOICES
from yolobone.engine.core.trackers import add_logger_args
from yolobone.engine.detect.options import DEFAULT_DATA, DEFAULT_HYP
from yolobone.utils.cli import RESUME_HINT, add_run_folder_args, parse_bool, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a YOLOv5-style detector on a YOLO-format dataset.")
    p.add_argument("--task", default="detect", choices=("detect", "classify"),
                   help="what to train; 'classify' hands all flags to engine.classify.task")
    p.add_argument("--weights", type=str, default="", help="initial weights: a checkpoint of this project")
    p.add_argument("--cfg", type=str, default="", help="model YAML, e.g. configs/yolov5s.yaml")
    p.add_argument("--backbone", type=str, default="",
                   help="replace the backbone of --cfg: a name in configs/backbones/ (resnet50, ...) or a backbone YAML")
    p.add_argument("--data", type=str, default=None, help=f"data YAML (default {DEFAULT_DATA}, built-in shapes)")
    p.add_argument("--hyp", type=str, default=None, help=f"hyperparameter YAML (default {DEFAULT_HYP})")
    p.add_argument("--epochs", type=int, default=100, help="total training epochs")
    p.add_argument("--batch-size", type=int, default=16, help="total batch size for all processes")
    p.add_argument("--nbs", type=int, default=0, help="nominal batch size: gradients accumulate to this many images "
                                                      "per optimizer step (0 = 64 for detection, none for classify)")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=640, help="train, val image size (pixels)")
    p.add_argument("--rect", action="store_true", help="rectangular training")
    p.add_argument("--resume", nargs="?", const=True, default=False, help="resume the most recent or the given run")
    p.add_argument("--nosave", action="store_true", help="only save the final checkpoint")
    p.add_argument("--noval", action="store_true", help="only validate the final epoch")
    p.add_argument("--noautoanchor", action="store_true", help="disable AutoAnchor")
    p.add_argument("--noplots", action="store_true", help="save no plot files")
    p.add_argument("--cache", type=str, nargs="?", const="ram", help="image --cache ram (default) or disk")
    p.add_argument("--image-weights", action="store_true", help="use weighted image selection for training")
    p.add_argument("--device", default="", help="cuda device, i.e. 0 or 0,1,2,3 or cpu")
    p.add_argument("--multi-scale", action="store_true", help="vary img-size +/- 50%%")
    p.add_argument("--close-mosaic", type=int, default=None,
                   help="train the last N epochs without mosaic (0: never; default 10 for anchor-free heads, else 0)")
    p.add_argument("--single-cls", action="store_true", help="train multi-class data as single-class")
    p.add_argument("--optimizer", type=str, choices=list(OPTIMIZER_CHOICES), default=None,
                   help="optimizer (default: auto for anchor-free heads, SGD for anchor-based ones, Adam to classify)")
    p.add_argument("--sync-bn", action="store_true", help="use SyncBatchNorm, only available in DDP mode")
    p.add_argument("--workers", type=int, default=8, help="max dataloader workers (per RANK in DDP mode)")
    add_run_folder_args(p, "runs/train")
    p.add_argument("--cos-lr", action="store_true", help="cosine LR scheduler")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing epsilon")
    p.add_argument("--patience", type=int, default=100, help="EarlyStopping patience (epochs without improvement)")
    p.add_argument("--freeze", nargs="+", type=str, default=["0"],
                   help="freeze layers: backbone=10, first3=0 1 2, or 'backbone' (the YAML's backbone section)")
    p.add_argument("--freeze-epochs", type=int, default=0,
                   help="staged unfreezing: the --freeze layers train again after N epochs (0: frozen throughout)")
    p.add_argument("--backbone-lr", type=float, default=1.0,
                   help="learning-rate multiplier for the backbone section's parameters (e.g. 0.1 for a pretrained one)")
    p.add_argument("--pretrained", type=parse_bool, nargs="?", const=True, default=True,
                   help="backbone blocks load their ImageNet weights, downloaded once into the cache (default true); "
                        "--pretrained false trains them from random init")
    p.add_argument("--save-period", type=int, default=-1, help="save a checkpoint every x epochs (disabled if < 1)")
    p.add_argument("--seed", type=int, default=0, help="global training seed")
    p.add_argument("--local_rank", "--local-rank", type=int, default=-1, help="automatic DDP multi-GPU argument")
    p.add_argument("--deterministic", action="store_true", help="deterministic torch kernels")
    add_logger_args(p)
    add_search_args(p)
    add_speedup_args(p)
    return p


def add_search_args(p: argparse.ArgumentParser) -> None:
    """Hyperparameter search instead of one training run: --evolve (YOLOv5's genetic search) or --tune (Ray Tune)."""
    p.add_argument("--evolve", type=int, nargs="?", const=300, default=None, metavar="N",
                   help="evolve the hyp for N generations (YOLOv5's genetic search; default 300), saving to "
                        "runs/evolve/; the same command with --exist-ok continues a stopped search")
    p.add_argument("--evolve-parent", default="single", choices=("single", "weighted"),
                   help="--evolve parent selection from the 5 fittest generations")
    p.add_argument("--tune", type=int, default=0, metavar="K",
                   help="search the recipe (lr0, weight decay, warmup, optimizer, backbone LR) with K Ray Tune trials "
                        "(ASHA) on a tuning split of train, saving hyp_tuned.yaml to runs/tune/")
    p.add_argument("--tune-time", type=float, default=0.0, metavar="SECONDS",
                   help="--tune's time budget (alone: trials until the time is up)")
    p.add_argument("--ray", default="", help="--tune on a Ray cluster: 'auto' or its address (default: a local Ray)")
    p.add_argument("--cpus-per-trial", type=int, default=1, help="--tune: CPUs (threads) each trial asks for")


def parse_opt(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _freeze_values(values: Sequence[str]) -> list:
    """'10' -> [10]; '0 1 2' -> [0, 1, 2]; 'backbone' stays a word (checked by DetectOptions)."""
    return [int(v) if v.lstrip("-").isdigit() else v for v in values]


def _task(argv: Sequence[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="detect", choices=("detect", "classify"))
    return pre.parse_known_args(argv)[0].task


def run_classify(argv: Sequence[str]) -> int:
    """Hand the whole command line to the classification task's parser (it has its own flags)."""
    from yolobone.engine.classify.task import main as classify_main
    return int(classify_main(list(argv)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _task(argv) == "classify":
        return run_classify(argv)
    opt = parse_opt(argv)
    opt.freeze = _freeze_values(opt.freeze)
    if opt.local_rank == -1 and "LOCAL_RANK" in os.environ:
        opt.local_rank = int(os.environ["LOCAL_RANK"])

    generations, parent = opt.evolve, opt.evolve_parent
    tune = {"trials": opt.tune, "seconds": opt.tune_time, "ray": opt.ray, "cpus": opt.cpus_per_trial}
    del opt.evolve, opt.evolve_parent, opt.tune, opt.tune_time, opt.ray, opt.cpus_per_trial
    tuning = bool(tune["trials"] or tune["seconds"])
    if (generations is not None or tuning) and opt.project == "runs/train":
        opt.project = "runs/tune" if tuning else "runs/evolve"

    def job() -> None:
        options = {k: v for k, v in vars(opt).items() if v is not None}
        if tuning:
            from yolobone.engine.compare.train_tune import tune_training
            if not opt.cfg:
                raise ValueError("--tune: pass --cfg (the model whose recipe is searched)")
            tune_training(options, **tune)
            return
        if generations is not None:
            from yolobone.engine.evolve import evolve
            evolve(options, generations, parent)
            return
        from yolobone.engine.train import train
        train(options)

    return run_cli(job, errors=(ValueError, FileNotFoundError), interrupted=RESUME_HINT)


if __name__ == "__main__":
    sys.exit(main())
