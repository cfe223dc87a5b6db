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
from dataclasses import dataclass
from typing import Optional, Sequence

from yolobone.engine.detect.options import DetectOptions
from yolobone.utils.cli import RESUME_HINT, run_cli, task_of
from yolobone.utils.options import add_options, option


@dataclass
class SearchOptions:
    """Hyperparameter search instead of one training run: --evolve (YOLOv5's genetic search) or --tune (Ray Tune)."""

    evolve: Optional[int] = option(None, "evolve the hyp for N generations (YOLOv5's genetic search; default 300), "
                                         "saving to runs/evolve/; the same command with --exist-ok continues a "
                                         "stopped search", nargs="?", const=300, metavar="N")
    evolve_parent: str = option("single", "--evolve parent selection from the 5 fittest generations",
                                choices=("single", "weighted"))
    tune: int = option(0, "search the recipe (lr0, weight decay, warmup, optimizer, backbone LR) with K Ray Tune "
                          "trials (ASHA) on a tuning split of train, saving hyp_tuned.yaml to runs/tune/", metavar="K")
    tune_time: float = option(0.0, "--tune's time budget (alone: trials until the time is up)", metavar="SECONDS")
    ray: str = option("", "--tune on a Ray cluster: 'auto' or its address (default: a local Ray)")
    cpus_per_trial: int = option(1, "--tune: CPUs (threads) each trial asks for")


def build_parser() -> argparse.ArgumentParser:
    """train.py's detection parser, generated from DetectOptions and SearchOptions."""
    p = argparse.ArgumentParser(description="Train a YOLOv5-style detector on a YOLO-format dataset.")
    return add_options(add_options(p, DetectOptions), SearchOptions)


def parse_opt(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def run_classify(argv: Sequence[str]) -> int:
    """Hand the whole command line to the classification task's parser (it has its own flags)."""
    from yolobone.engine.classify.task import main as classify_main
    return int(classify_main(list(argv)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if task_of(argv, "detect") == "classify":
        return run_classify(argv)
    opt = parse_opt(argv)
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
