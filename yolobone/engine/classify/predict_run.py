"""Classify images, folders, globs, lists and videos with a trained classifier: top-k classes with probabilities.

    python detect.py --task classify --weights runs/train-cls/exp/weights/best.pt --source path/to/images
(detect.py hands `--task classify` to `main` here.) Annotated images (top-k text in the corner) and, with
--save-txt, labels/<stem>.txt ("prob name" per line) go to runs/predict-cls/exp*. Exit code 0: every input read;
1: some inputs were skipped (each logged with its reason); 2: bad weights, source or options. The run is the shared
engine.core.predictor.Predictor.run with classification's step (engine.classify.predictor.Classifier).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from yolobone.engine.backends import Backend
from yolobone.engine.classify.predictor import Classifier
from yolobone.engine.core.predictor import OutputOptions, PredictReport
from yolobone.engine.core.sources import SourceSpec, resolve_source
from yolobone.utils.cli import add_run_folder_args, run_cli
from yolobone.utils.paths import increment_path

PathLike = Union[str, os.PathLike]


def predict_classifier(weights: Optional[PathLike] = None, source: SourceSpec = "",
                       model: Union[nn.Module, Backend, None] = None,
                       imgsz: int = 224, topk: int = 5, device: Union[str, torch.device] = "", half: bool = False,
                       save_dir: Optional[PathLike] = None, save_img: bool = True, save_txt: bool = False,
                       vid_stride: int = 1, verbose: bool = True) -> PredictReport:
    """Classify every image/frame of `source`; with save_dir, write annotated images/videos (and labels/*.txt).

    The report's `predictions` hold every ClassPrediction (a few numbers each, no images)."""
    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    clf = Classifier(weights, model, device, half)
    opts = clf.options(imgsz, topk)
    out = OutputOptions(save_dir=Path(save_dir) if save_dir is not None else None, save_img=save_img,
                        save_txt=save_txt, verbose=verbose, collect=True)
    return clf.run(resolve_source(source), opts, out, vid_stride=vid_stride)


def parse_opt(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Classify images or videos with a trained classifier (top-k).")
    p.add_argument("--task", default="classify", choices=["classify"], help="classify (detect.py dispatches on it)")
    p.add_argument("--weights", type=str, required=True, help="classification checkpoint (train.py --task classify)")
    p.add_argument("--source", type=str, required=True, help="file, folder, glob, .txt list, video, webcam, URL")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=224, help="inference size (pixels)")
    p.add_argument("--topk", type=int, default=5, help="classes reported per image")
    p.add_argument("--device", default="", help="cuda device, i.e. 0 or cpu")
    p.add_argument("--half", action="store_true", help="FP16 inference (CUDA only)")
    p.add_argument("--nosave", action="store_true", help="do not save annotated images/videos")
    p.add_argument("--save-txt", action="store_true", help="save labels/<stem>.txt with 'prob name' lines")
    p.add_argument("--vid-stride", type=int, default=1, help="video frame-rate stride")
    add_run_folder_args(p, "runs/predict-cls")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opt = parse_opt(argv)

    def job() -> int:  # CheckpointError, SourceError, bad --device, unwritable folder: exit 2
        save = not opt.nosave or opt.save_txt
        save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True) if save else None
        return predict_classifier(weights=opt.weights, source=opt.source, imgsz=opt.imgsz, topk=opt.topk,
                                  device=opt.device, half=opt.half, save_dir=save_dir, save_img=not opt.nosave,
                                  save_txt=opt.save_txt, vid_stride=opt.vid_stride).exit_code

    return run_cli(job)
