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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from yolobone.engine.backends import Backend
from yolobone.engine.classify.predictor import Classifier
from yolobone.engine.core.predictor import OutputOptions, PredictReport
from yolobone.engine.core.sources import SourceError, SourceSpec, resolve_source
from yolobone.utils.cli import run_cli
from yolobone.utils.options import add_options, at_least, check_options, option
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
        raise SourceError(f"topk must be >= 1, got {topk}")
    clf = Classifier(weights, model, device, half)
    opts = clf.options(imgsz, topk)
    out = OutputOptions(save_dir=Path(save_dir) if save_dir is not None else None, save_img=save_img,
                        save_txt=save_txt, verbose=verbose, collect=True)
    return clf.run(resolve_source(source), opts, out, vid_stride=vid_stride)


@dataclass
class ClassifyPredictConfig:
    """detect.py --task classify's options, each declared once: the parser is generated from these fields."""

    weights: str = option("", "classification checkpoint (train.py --task classify) or an exported classifier",
                          required=True)
    source: str = option("", "file, folder, glob, .txt list, video, webcam, URL", required=True)
    imgsz: int = option(224, "inference size (pixels)", aliases=("--img", "--img-size"), check=at_least(1))
    topk: int = option(5, "classes reported per image", check=at_least(1))
    device: str = option("", "cuda device, i.e. 0 or cpu")
    half: bool = option(False, "FP16 inference (CUDA only)")
    nosave: bool = option(False, "do not save annotated images/videos")
    save_txt: bool = option(False, "save labels/<stem>.txt with 'prob name' lines")
    vid_stride: int = option(1, "video frame-rate stride", check=at_least(1))
    project: str = option("runs/predict-cls", "save to project/name")
    name: str = option("exp", "save to project/name")
    exist_ok: bool = option(False, "existing project/name ok, do not increment")
    task: str = option("classify", "classify (detect.py dispatches on it)", choices=("classify",))


def parse_opt(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """detect.py --task classify's parser, generated from ClassifyPredictConfig."""
    p = argparse.ArgumentParser(description="Classify images or videos with a trained classifier (top-k).")
    return add_options(p, ClassifyPredictConfig).parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opt = ClassifyPredictConfig(**vars(parse_opt(argv)))

    def job() -> int:  # CheckpointError, SourceError, bad --device, unwritable folder: exit 2
        check_options(opt, SourceError)
        save = not opt.nosave or opt.save_txt
        save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True) if save else None
        return predict_classifier(weights=opt.weights, source=opt.source, imgsz=opt.imgsz, topk=opt.topk,
                                  device=opt.device, half=opt.half, save_dir=save_dir, save_img=not opt.nosave,
                                  save_txt=opt.save_txt, vid_stride=opt.vid_stride).exit_code

    return run_cli(job)
