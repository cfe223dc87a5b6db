"""Ultralytics checkpoints (pickled modules: yolo11n.pt, a run's best.pt) read as inert records: same tensors, names,
stride and outputs as the model they hold; crafted pickles and non-detection models are refused in one line; every
weights path takes them through load_checkpoint, and `yolobone convert` writes them once as ours.

No Ultralytics is installed here: the files are written by torch.save from stand-in classes whose __module__ is
ultralytics.nn.tasks / ultralytics.nn.modules.*, registered in sys.modules only while torch.save runs.
(benchmarks/ultralytics_checkpoint.py checks files written by Ultralytics itself against its own outputs.)
"""
from __future__ import annotations

import copy
import os
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest
import torch
import torch.nn as nn
import yaml

from tests.helpers import Payload, pickled_as, randomise_batchnorm
from yolobone.models.loading import convert_checkpoint, model_from_checkpoint
from yolobone.models.yolo import build_model
from yolobone.utils.checkpoint import CheckpointError, load_checkpoint
from yolobone.utils.pickled_checkpoint import checkpoint_format

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ultralytics"
NAMES = {0: "circle", 1: "square", 2: "triangle"}
PACKAGES = ("ultralytics", "ultralytics.nn", "ultralytics.nn.tasks", "ultralytics.nn.modules",
            "ultralytics.nn.modules.conv", "ultralytics.nn.modules.block", "ultralytics.nn.modules.head")
PLACE = {"DetectionModel": "tasks", "SegmentationModel": "tasks", "DetectAF": "modules.head",
         "Conv": "modules.conv", "Concat": "modules.conv"}  # the rest: modules.block
ULTRALYTICS_NAME = {"DetectAF": "Detect"}  # our class -> the name Ultralytics gives it


def _yaml_dict() -> Dict:
    """The `yaml` dict an Ultralytics model holds: its index-form family file plus scale, file name and channels."""
    d = yaml.safe_load((FIXTURES / "yolov5.yaml").read_text())
    d.update(nc=len(NAMES), scale="n", yaml_file="yolov5nu.yaml", channels=3)
    return d


@contextmanager
def _ultralytics_modules() -> Iterator[Dict[str, type]]:
    for name in PACKAGES:
        sys.modules[name] = types.ModuleType(name)
    try:
        yield {}
    finally:
        for name in PACKAGES:
            sys.modules.pop(name, None)


def _place(cls_name: str, root: bool, model_class: str) -> Tuple[str, str]:
    """(module path, class name) Ultralytics gives one of our classes (the root: its model class)."""
    name = model_class if root else cls_name
    return f"ultralytics.nn.{PLACE.get(name, 'modules.block')}", ULTRALYTICS_NAME.get(name, name)


def write_ultralytics_checkpoint(model: nn.Module, path: Path, model_class: str = "DetectionModel", **extra) -> Path:
    """A file laid out as Ultralytics' trainer writes best.pt: the EMA model in fp16 under 'model', 'ema' None."""
    with _ultralytics_modules() as made:
        m = pickled_as(model, lambda name, root: _place(name, root, model_class), made)
        m.yaml, m.names, m.nc, m.stride, m.args = _yaml_dict(), dict(NAMES), len(NAMES), model.stride.clone(), \
            {"imgsz": 64, "optimizer": "auto"}
        ckpt = {"date": "2026-01-01T00:00:00", "version": "8.4.190", "license": "AGPL-3.0", "epoch": -1,
                "best_fitness": None, "model": m, "ema": None, "updates": None, "optimizer": None,
                "train_args": {"imgsz": 64, "epochs": 3, "data": "data.yaml", "lr0": 0.01}, "git": {"branch": "main"}}
        ckpt.update(extra)
        torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def ours() -> nn.Module:
    torch.manual_seed(0)
    return randomise_batchnorm(build_model(_yaml_dict()).eval())


@pytest.fixture(scope="module")
def best_pt(ours, tmp_path_factory) -> Path:
    return write_ultralytics_checkpoint(ours, tmp_path_factory.mktemp("ultralytics") / "best.pt")


def test_reads_tensors_names_stride(ours, best_pt):
    assert checkpoint_format(best_pt) == "ultralytics"
    ckpt = load_checkpoint(best_pt)
    expected = {k: v.half().float() if v.is_floating_point() else v for k, v in ours.state_dict().items()}
    assert sorted(ckpt["model"]) == sorted(expected)
    for k, v in expected.items():
        assert ckpt["model"][k].dtype == v.dtype and torch.equal(ckpt["model"][k], v), k
    assert ckpt["names"] == list(NAMES.values()) and ckpt["nc"] == len(NAMES) and ckpt["task"] == "detect"
    assert ckpt["stride"] == [8.0, 16.0, 32.0] and ckpt["source_format"] == "ultralytics"
    assert ckpt["model_yaml"]["scale"] == "n" and "yaml_file" not in ckpt["model_yaml"]
    assert ckpt["ultralytics_args"]["epochs"] == 3


def test_model_from_its_yaml_gives_the_same_outputs(ours, best_pt):
    model = model_from_checkpoint(load_checkpoint(best_pt), str(best_pt)).eval()
    reference = copy.deepcopy(ours).half().float().eval()  # what the fp16 file holds
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = model(x)[0], reference(x)[0]
    assert a.shape == b.shape == (2, 8 * 12 + 4 * 6 + 2 * 3, 4 + len(NAMES))
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
    assert model.names == list(NAMES.values())


def test_convert_writes_a_weights_only_checkpoint(best_pt, tmp_path):
    out = convert_checkpoint(best_pt, tmp_path / "ours.pt")
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["converted_from"] == {"format": "ultralytics", "file": "best.pt"} and "source_format" not in ckpt
    assert torch.equal(ckpt["model"]["model.0.conv.weight"], load_checkpoint(best_pt)["model"]["model.0.conv.weight"])


def test_crafted_pickle_beside_an_ultralytics_model_stays_inert(ours, tmp_path):
    marker = tmp_path / "pwned"
    path = write_ultralytics_checkpoint(ours, tmp_path / "evil.pt", extra=Payload(os.system, f"touch {marker}"))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)) and "system" in msg and "Ultralytics" in msg, msg
    assert not marker.exists()


def test_other_ultralytics_tasks_are_refused_by_name(ours, tmp_path):
    path = write_ultralytics_checkpoint(ours, tmp_path / "seg.pt", model_class="SegmentationModel")
    with pytest.raises(CheckpointError, match=r"seg.pt: an Ultralytics SegmentationModel; only detection models"):
        load_checkpoint(path)
