"""Helpers shared by test modules (tests never import each other): tiny model YAMLs, a tiny detector whose outputs
score above zero without training, its checkpoint, and a generated colour ImageFolder for classification."""
from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Callable, Dict, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn
import yaml

from yolobone.models.yolo import DetectionModel
from yolobone.utils.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
HUES = {"blue": 120, "green": 60, "red": 0}  # OpenCV hue of each class of the colour ImageFolder
CLS_IMGSZ = 64  # colour ImageFolder image size
VAL_IMGSZ = 64  # tiny_detector's input size


def tiny_cfg(path: Path, width: float = 0.125, src: str = "configs/yolov5n.yaml", **edits) -> str:
    """A shipped model YAML at depth 0.33 and the given width (plus any top-level edits), written to path."""
    d = yaml.safe_load((ROOT / src).read_text())
    d["depth_multiple"], d["width_multiple"] = 0.33, width
    d.update(edits)
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(path)


def tiny_cls_yaml() -> dict:
    """yolov5n-cls at width 0.125."""
    d = yaml.safe_load((ROOT / "configs/cls/yolov5n-cls.yaml").read_text())
    d["width_multiple"] = 0.125
    d["yaml_file"] = "yolov5n-cls (tiny)"
    return d


def write_colour_folder(root: Path, n_train: int = 80, n_val: int = 10, seed: int = 0) -> Path:
    """root/{train,val}/<colour>/*.jpg: noisy images of one hue per class, random saturation and brightness."""
    rng = np.random.default_rng(seed)
    size = CLS_IMGSZ
    for split, n in (("train", n_train), ("val", n_val)):
        for name, hue in HUES.items():
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                hsv = np.empty((size, size, 3), np.uint8)
                hsv[..., 0] = (hue + rng.integers(-8, 9)) % 180
                hsv[..., 1] = rng.integers(150, 256)
                hsv[..., 2] = rng.integers(100, 256)
                img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).astype(np.int16) + rng.integers(-30, 31, (size, size, 3))
                cv2.imwrite(str(d / f"{i:03d}.jpg"), np.clip(img, 0, 255).astype(np.uint8))
    return root


def tiny_detector(nc: int) -> DetectionModel:
    """yolov5n layout at width 0.125 whose detections overlap the objects often enough to score above zero.

    Training even one epoch costs more than a test file may, and a freshly initialised net outputs the same
    score everywhere (its features vanish), which leaves the metrics nothing to rank. So BatchNorm statistics are
    set from one batch, boxes are the anchors at the cell centres, objectness varies with the image, and the
    class outputs are constant: every box is a candidate for every class.
    """
    d = yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text())
    d.update(depth_multiple=0.33, width_multiple=0.125, nc=nc)
    torch.manual_seed(0)
    model = DetectionModel(d)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch sets the statistics
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 3, VAL_IMGSZ, VAL_IMGSZ, generator=torch.Generator().manual_seed(0)))
        for conv in model.detect.m:  # boxes = anchors at cell centres, objectness from the features, classes flat
            w, bias = conv.weight.view(model.detect.na, model.detect.no, -1), conv.bias.view(model.detect.na, -1)
            w[:, :4], bias[:, :4] = 0.0, 0.0
            w[:, 4] *= 0.1
            w[:, 5:], bias[:, 4:] = 0.0, 0.0
    return model.eval()


def save_detector(model: DetectionModel, path: Path, names: Sequence[str]) -> str:
    """model as one of our checkpoints (best.pt layout), for val / detect / export tests."""
    save_checkpoint({"model": model.state_dict(), "model_yaml": model.yaml, "task": "detect", "nc": len(names),
                     "names": list(names), "epoch": -1, "best_fitness": 0.0}, path)
    return str(path)


def randomise_batchnorm(model: nn.Module, mean: float = 0.2, var: tuple = (0.5, 1.5)) -> nn.Module:
    """Non-trivial BatchNorm running statistics, as a trained model has (in place)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-mean, mean)
                m.running_var.uniform_(*var)
    return model


class Payload:
    """Pickles as a call of `func(*args)`: what a malicious checkpoint asks the unpickler to do."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def pickled_as(model: nn.Module, place_of: Callable[[str, bool], Tuple[str, str]], made: Dict[str, type]) -> nn.Module:
    """A half-precision copy of model whose yolobone module classes are stand-ins, so that torch.save names them as
    another project's files do: place_of(class name, is the root module) -> (module path, class name); the stand-in
    is registered in sys.modules[module path] (which the caller created) and kept in made. Our own bookkeeping
    objects (the parsed YAML spec) are dropped: no other project's file holds them."""
    m = copy.deepcopy(model).half()
    for module in m.modules():
        cls = type(module)
        if not cls.__module__.startswith("yolobone."):
            continue
        place, name = place_of(cls.__name__, module is m)
        if f"{place}.{name}" not in made:
            made[f"{place}.{name}"] = type(name, (nn.Module,), {"__module__": place})
            setattr(sys.modules[place], name, made[f"{place}.{name}"])
        module.__class__ = made[f"{place}.{name}"]
        for attr in [k for k, v in vars(module).items() if type(v).__module__.startswith("yolobone.")]:
            delattr(module, attr)
    return m
