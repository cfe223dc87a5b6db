"""Validate an image classifier: loss, top-1/top-5 accuracy, per-class accuracy and the confusion matrix.

    python val.py --task classify --weights runs/train-cls/exp/weights/best.pt --data <root> --imgsz 224
(val.py hands `--task classify` to `main` here.) Library use: `val_classifier(weights=..., data=...)`, or
`evaluate(model, loader)` inside a training loop.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from yolobone.engine.backends import Backend, load_backend
from yolobone.data.classify import ClassifyDataError, create_classify_loader, resolve_classify_data
from yolobone.engine.classify.validator import ClassifyMetrics, evaluate
from yolobone.utils.cli import run_cli
from yolobone.utils.errors import YoloboneError
from yolobone.utils.logging import LOGGER
from yolobone.utils.options import add_options, at_least, check_options, option
from yolobone.utils.paths import increment_path
from yolobone.utils.torch_utils import select_device

PathLike = Union[str, os.PathLike]


class ClassifierLoadError(YoloboneError, ValueError):
    """The weights given are not a classification checkpoint."""


def load_classifier(weights: PathLike, device: Union[str, torch.device] = "cpu") -> Backend:
    """A classifier checkpoint or export as an inference backend; detection models are refused by name."""
    backend = load_backend(weights, device)
    if backend.task != "classify":
        raise ClassifierLoadError(f"{weights}: a {backend.task!r} checkpoint; classify mode needs one written by "
                                  f"`train.py --task classify` (or its export)")
    return backend


def classifier_on_device(weights: Optional[PathLike], model: Union[nn.Module, Backend, None],
                         device: Union[str, torch.device], caller: str) -> Tuple[Union[nn.Module, Backend],
                                                                                  torch.device]:
    """(the classifier, the device): `model` moved there, or `weights` loaded there."""
    device = select_device(device)
    if model is None:
        if weights is None:
            raise ClassifierLoadError(f"{caller}: give weights (a checkpoint path) or model")
        model = load_classifier(weights, device)
    return (model.to(device) if isinstance(model, nn.Module) else model), device


def backend_imgsz(model: Union[nn.Module, Backend], imgsz: int) -> int:
    """The image size a classifier runs at: a static-shape export's own (with a warning when it differs)."""
    return model.input_size((imgsz, imgsz))[0] if isinstance(model, Backend) else imgsz


def label_mapping(data_names: Sequence[str], model_names: Sequence[str], where: str) -> Optional[np.ndarray]:
    """None when the names agree; else dataset id -> model id by name, or ClassifyDataError when a class is unknown."""
    data_names, model_names = list(data_names), list(model_names)
    if data_names == model_names:
        return None
    unknown = [n for n in data_names if n not in model_names]
    if unknown:
        raise ClassifyDataError(f"{where}: class folder(s) {unknown[:5]} are not classes of the model "
                                f"({model_names[:10]}{' ...' if len(model_names) > 10 else ''})")
    return np.array([model_names.index(n) for n in data_names], dtype=np.int64)


def val_classifier(weights: Optional[PathLike] = None, data: Optional[PathLike] = None,
                   model: Union[nn.Module, Backend, None] = None, imgsz: int = 224, batch_size: int = 64,
                   device: Union[str, torch.device] = "", workers: int = 8, half: bool = False,
                   save_dir: Optional[PathLike] = None, plots: bool = True, verbose: bool = True,
                   val_ratio: float = 0.2, seed: int = 0) -> ClassifyMetrics:
    """Validate `weights` (or an in-memory `model`) on the val split of `data`; plots go to save_dir if given."""
    model, device = classifier_on_device(weights, model, device, "val_classifier()")
    imgsz = backend_imgsz(model, imgsz)
    ds = resolve_classify_data(data, val_ratio=val_ratio, seed=seed, verbose=verbose, check_train=False)
    names = list(getattr(model, "names", ds.names))
    mapping = label_mapping(ds.names, names, str(ds.root))
    loader = create_classify_loader(ds.val, imgsz, batch_size, workers=workers)
    metrics = evaluate(model, loader, device, names=names, half=half,
                       desc=f"{'Validating':>24}" if verbose else None, target_map=mapping)
    if verbose:
        LOGGER.info(metrics.table())
        pre, inf, post = metrics.speed_ms
        LOGGER.info(f"Speed: {pre:.1f}ms pre-process, {inf:.1f}ms inference, {post:.1f}ms post-process per image "
                    f"at shape (1, 3, {imgsz}, {imgsz})")
    if save_dir is not None and plots:
        from yolobone.engine.classify.plots import plot_classify_confusion

        plot_classify_confusion(metrics.confusion, metrics.names, Path(save_dir) / "confusion_matrix.png")
        if verbose:
            LOGGER.info(f"Results saved to {save_dir}")
    return metrics


@dataclass
class ClassifyValConfig:
    """val.py --task classify's options, each declared once: the parser is generated from these fields."""

    weights: str = option("", "classification checkpoint (train.py --task classify) or an exported classifier",
                          required=True)
    data: str = option("", "ImageFolder root, YAML or built-in name ('' = shapes-cls)")
    imgsz: int = option(224, "inference size (pixels)", aliases=("--img", "--img-size"), check=at_least(1))
    batch_size: int = option(64, "images per batch", check=at_least(1))
    device: str = option("", "cuda device, i.e. 0 or cpu")
    workers: int = option(8, "max dataloader workers", check=at_least(0))
    half: bool = option(False, "FP16 inference (CUDA only)")
    val_ratio: float = option(0.2, "val fraction when the data has no val/ folder")
    seed: int = option(0, "seed of the ratio split (use the training run's)")
    project: str = option("runs/val-cls", "save to project/name")
    name: str = option("exp", "save to project/name")
    exist_ok: bool = option(False, "existing project/name ok, do not increment")
    noplots: bool = option(False, "do not save the confusion matrix")
    task: str = option("classify", "classify (val.py dispatches on it)", choices=("classify",))


def parse_opt(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """val.py --task classify's parser, generated from ClassifyValConfig."""
    p = argparse.ArgumentParser(description="Validate a classification checkpoint (top-1/top-5, confusion matrix).")
    return add_options(p, ClassifyValConfig).parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opt = ClassifyValConfig(**vars(parse_opt(argv)))

    def job() -> None:  # CheckpointError, ClassifyDataError, bad --device, unwritable folder: exit 2
        check_options(opt, ClassifierLoadError)
        save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True)
        val_classifier(weights=opt.weights, data=opt.data, imgsz=opt.imgsz, batch_size=opt.batch_size,
                       device=opt.device, workers=opt.workers, half=opt.half, save_dir=save_dir,
                       plots=not opt.noplots, val_ratio=opt.val_ratio, seed=opt.seed)

    return run_cli(job)
