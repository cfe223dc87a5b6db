"""YOLOv5 v7.0 checkpoints (pickled modules) read as inert records: same tensors, names, stride, anchors and outputs
as the model they hold; crafted pickles stay inert; every weights path (val, detect, train --weights, export) takes
them; --resume refuses them.

No YOLOv5 is installed here: the files are written by torch.save from stand-in classes whose __module__ is
models.yolo / models.common (or yolov5.models.*), registered in sys.modules only while torch.save runs.
"""
from __future__ import annotations

import copy
import importlib
import os
import subprocess
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest
import torch
import torch.nn as nn
import yaml

from tests.helpers import Payload, pickled_as, randomise_batchnorm
from yolobone.models.loading import model_from_checkpoint
from yolobone.models.yolo import build_model
from yolobone.utils.checkpoint import CheckpointError, load_checkpoint
from yolobone.utils.pickled_checkpoint import is_yolov5_checkpoint, read_records

ROOT = Path(__file__).resolve().parents[1]
HEAD_CLASSES = ("DetectionModel", "Detect", "ClassificationModel")
NAMES = dict(enumerate(["circle", "square", "triangle", "star", "cross", "ring"]))  # make_detection_dataset's


def _tiny_cfg() -> Dict:
    d = yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text())
    d.update(nc=len(NAMES), depth_multiple=0.33, width_multiple=0.125, ch=3)  # YOLOv5 stores ch in its yaml dict
    d["head"][1][3] = ["None", 2, "nearest"]  # as YOLOv5's yaml dict holds nn.Upsample's arguments
    return d


@contextmanager
def _yolov5_modules(prefix: str) -> Iterator[Dict[str, type]]:
    """Stand-in classes named as YOLOv5's, importable (for pickle) only inside the outermost block."""
    names = [prefix, f"{prefix}.yolo", f"{prefix}.common"] if prefix == "models" else \
        ["yolov5", "yolov5.models", "yolov5.models.yolo", "yolov5.models.common"]
    if hasattr(sys.modules.get(prefix), "stand_ins"):  # nested: the same modules and classes
        yield sys.modules[prefix].stand_ins
        return
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[prefix].stand_ins = {}
    try:
        yield sys.modules[prefix].stand_ins
    finally:
        for name in names:
            sys.modules.pop(name, None)


def _as_yolov5(model: nn.Module, prefix: str, made: Dict[str, type]) -> nn.Module:
    """A half-precision copy of our model whose yolobone module classes are stand-ins named as YOLOv5's."""
    return pickled_as(model, lambda name, root: (f"{prefix}.{'yolo' if name in HEAD_CLASSES else 'common'}", name),
                      made)


def write_yolov5_checkpoint(model: nn.Module, cfg: Optional[Dict], path: Path, prefix: str = "models",
                            **extra) -> Path:
    """A file laid out as YOLOv5 v7.0's train.py writes it (stripped: ema None, model in fp16). cfg None: a
    classification model, which YOLOv5 keeps without its YAML dict or strides."""
    with _yolov5_modules(prefix) as made:
        m = _as_yolov5(model, prefix, made)
        m.names, m.nc = dict(NAMES), len(NAMES)
        if cfg is None:
            del m.yaml
        else:
            m.yaml, m.stride = copy.deepcopy(cfg), model.stride.clone()
        ckpt = {"epoch": -1, "best_fitness": None, "model": m, "ema": None, "updates": None, "optimizer": None,
                "opt": {"weights": "", "imgsz": 64, "save_dir": "runs/train/exp"}, "date": "2026-01-01T00:00:00"}
        ckpt.update(extra)
        torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def ours() -> nn.Module:
    torch.manual_seed(0)
    model = randomise_batchnorm(build_model(_tiny_cfg()).eval(), mean=0.5, var=(0.5, 2.0))
    with torch.no_grad():  # non-trivial anchors, as a trained model has
        model.detect.anchors.mul_(1.25)
    model.detect.reset_grids()
    return model


@pytest.fixture(scope="module")
def v5_file(ours, tmp_path_factory) -> Path:
    return write_yolov5_checkpoint(ours, _tiny_cfg(), tmp_path_factory.mktemp("v5") / "best.pt")


@pytest.mark.parametrize("prefix", ["models", "yolov5.models"])
def test_reads_tensors_names_stride_anchors(ours, tmp_path, prefix):
    path = write_yolov5_checkpoint(ours, _tiny_cfg(), tmp_path / "best.pt", prefix=prefix)
    assert is_yolov5_checkpoint(path)
    ckpt = load_checkpoint(path)
    expected = {k: v.half().float() if v.is_floating_point() else v for k, v in ours.state_dict().items()}
    assert sorted(ckpt["model"]) == sorted(expected)
    for k, v in expected.items():
        assert ckpt["model"][k].dtype == v.dtype and torch.equal(ckpt["model"][k], v), k
    assert ckpt["names"] == list(NAMES.values()) and ckpt["nc"] == len(NAMES) and ckpt["task"] == "detect"
    assert ckpt["stride"] == [8.0, 16.0, 32.0] and ckpt["source_format"] == "yolov5"
    assert torch.equal(ckpt["anchors"], expected["model.24.anchors"])
    assert ckpt["model_yaml"]["head"] == _tiny_cfg()["head"]


def test_unfinished_run_prefers_ema_and_skips_training_state(ours, tmp_path):
    """A last.pt of a run in progress: 'ema' beside 'model', a numpy best_fitness and optimizer state. The EMA is
    what YOLOv5's val.py and detect.py run, so it is what is read; the rest loads as inert data."""
    import numpy as np

    ema = copy.deepcopy(ours)
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(0.5)
    with _yolov5_modules("models") as made:
        ema_v5 = _as_yolov5(ema, "models", made)
        ema_v5.yaml, ema_v5.names, ema_v5.nc, ema_v5.stride = _tiny_cfg(), dict(NAMES), len(NAMES), ours.stride
        optimizer = torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
        path = write_yolov5_checkpoint(ours, _tiny_cfg(), tmp_path / "last.pt", epoch=3, ema=ema_v5, updates=96,
                                       best_fitness=np.array([0.25]), optimizer=optimizer.state_dict())
    ckpt = load_checkpoint(path)
    key = "model.0.conv.weight"
    assert torch.equal(ckpt["model"][key], ema.state_dict()[key].half().float())
    assert not torch.equal(ckpt["model"][key], ours.state_dict()[key].half().float())


def test_model_from_its_yaml_gives_the_same_outputs(ours, v5_file):
    model = model_from_checkpoint(load_checkpoint(v5_file), str(v5_file)).eval()
    reference = copy.deepcopy(ours).half().float().eval()  # what the fp16 file holds
    reference.detect.reset_grids()
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = model(x)[0], reference(x)[0]
    assert a.shape == b.shape == (2, 3 * (8 * 12 + 4 * 6 + 2 * 3), 5 + len(NAMES))
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
    assert model.names == list(NAMES.values())


@pytest.mark.parametrize("payload, named", [
    (lambda marker: Payload(os.system, f"touch {marker}"), "system"),
    (lambda marker: Payload(eval, f"open({str(marker)!r}, 'w')"), "eval"),
    (lambda marker: Payload(exec, f"open({str(marker)!r}, 'w')"), "exec"),
    (lambda marker: Payload(subprocess.call, ["touch", str(marker)]), ".call"),  # protocol 2: commands.call
    (lambda marker: Payload(open, str(marker), "w"), "open"),
    (lambda marker: Payload(importlib.import_module, "os"), "import_module"),
])
def test_crafted_pickles_stay_inert(ours, tmp_path, payload, named):
    """Code hidden in a YOLOv5-looking file (beside a real YOLOv5 model) is refused, naming what it wanted."""
    marker = tmp_path / "pwned"
    path = write_yolov5_checkpoint(ours, _tiny_cfg(), tmp_path / "evil.pt", extra_entry=payload(marker))
    assert is_yolov5_checkpoint(path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)) and named in msg and "allow-list" in msg, msg
    assert not marker.exists()


def test_reduce_of_an_allowed_class_builds_only_a_record(tmp_path):
    """A YOLOv5 class name called with arguments (REDUCE) or given any state builds a Record: nothing runs."""
    with _yolov5_modules("models"):
        stand_in = type("Conv", (nn.Module,), {"__module__": "models.common"})
        sys.modules["models.common"].Conv = stand_in
        torch.save({"model": Payload(stand_in, "rm -rf /", {"__class__": "x"})}, tmp_path / "odd.pt")
    loaded = read_records(tmp_path / "odd.pt")["model"]
    assert type(loaded).__name__ == "Conv" and loaded.qualname == "models.common.Conv"
    assert loaded.args == ("rm -rf /", {"__class__": "x"})
    with pytest.raises(CheckpointError, match="odd.pt: .*model is a Conv.*no model YAML|odd.pt: the YOLOv5 Conv"):
        load_checkpoint(tmp_path / "odd.pt")


def test_classification_checkpoint_rows_read_back_from_its_layers(tmp_path):
    """YOLOv5's ClassificationModel keeps no YAML: the rows come from the layer records, and the model built from
    them gives the same logits."""
    from yolobone.models.classification import ClassificationModel

    torch.manual_seed(0)
    ours = ClassificationModel("configs/cls/yolov5n-cls.yaml", nc=len(NAMES)).eval()
    path = write_yolov5_checkpoint(ours, None, tmp_path / "cls.pt")
    ckpt = load_checkpoint(path)
    assert ckpt["task"] == "classify" and ckpt["nc"] == len(NAMES) and ckpt["names"] == list(NAMES.values())
    rows = ckpt["model_yaml"]["backbone"] + ckpt["model_yaml"]["head"]
    assert rows[:3] == [[-1, 1, "Conv", [16, 6, 2, 2]], [-1, 1, "Conv", [32, 3, 2, 1]], [-1, 1, "C3", [32, True]]]
    assert rows[-1] == [-1, 1, "Classify", ["nc"]] and len(rows) == len(ours.model)
    model = model_from_checkpoint(ckpt, str(path)).eval()
    reference = copy.deepcopy(ours).half().float().eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = model(x), reference(x)
    assert a.shape == (2, len(NAMES)) and torch.allclose(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
    from yolobone.cli import val
    from yolobone.data.synthetic import make_classification_dataset
    root = make_classification_dataset(tmp_path / "cls", n_train_per_class=1, n_val_per_class=2, imgsz=32,
                                       verbose=False)
    assert len([d for d in (root / "val").iterdir() if d.is_dir()]) == len(NAMES)
    assert val.main(["--task", "classify", "--weights", str(path), "--data", str(root), "--imgsz", "64",
                     "--device", "cpu", "--workers", "0", "--project", str(tmp_path / "val")]) == 0


def test_yolov5_file_in_val_detect_export(v5_file, tmp_path):
    from yolobone.data.synthetic import make_detection_dataset

    data = make_detection_dataset(tmp_path / "data", n_train=2, n_val=4, imgsz=64, verbose=False)
    from yolobone.cli import detect, export, val
    common = ["--weights", str(v5_file), "--imgsz", "64", "--device", "cpu"]
    assert val.main([*common, "--data", str(data), "--project", str(tmp_path / "val"), "--workers", "0"]) == 0
    images = Path(data).parent / "images" / "val"
    assert detect.main([*common, "--source", str(images), "--project", str(tmp_path / "det"), "--nosave"]) == 0
    assert export.main([*common, "--include", "torchscript"]) == 0
    assert any(p.suffix == ".torchscript" for p in v5_file.parent.iterdir())


def test_resume_refuses_a_yolov5_file(v5_file, tmp_path, capsys):
    from yolobone.cli.train import main
    assert main(["--resume", str(v5_file), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "yolov5 checkpoint holds no yolobone training state" in err[0], err


BACKBONE = """# P3-P5 with the tiny yolov5n's channels (32, 64, 128), so every neck tensor of the checkpoint fits
width_multiple: 1.0
depth_multiple: 1.0
backbone:
  - [-1, 1, Conv, [16, 3, 2]]   # 0-P1/2
  - [-1, 1, Conv, [32, 3, 2]]   # 1-P2/4
  - [-1, 1, Conv, [32, 3, 2]]   # 2-P3/8
  - [-1, 1, Conv, [32, 1, 1]]   # 3: P3 is the last row at stride 8
  - [-1, 1, Conv, [64, 3, 2]]   # 4-P4/16
  - [-1, 1, Conv, [128, 3, 2]]  # 5-P5/32
"""


def test_transfer_into_a_swapped_backbone_renumbers_neck_rows(ours, v5_file, tmp_path, log_lines):
    """--cfg yolov5n --backbone other --weights yolov5.pt: YOLOv5 rows 9 (SPPF) .. 24 (Detect) land on rows
    6 .. 21 of the composed model, and the report names the file per section."""
    from yolobone.engine.detect.options import DetectOptions
    from yolobone.engine.detect.task import transfer_detection_weights

    cfg, bb = tmp_path / "tiny.yaml", tmp_path / "six.yaml"
    cfg.write_text(yaml.safe_dump(_tiny_cfg(), sort_keys=False))
    bb.write_text(BACKBONE)
    opt = DetectOptions(cfg=str(cfg), backbone=str(bb), weights=str(v5_file))
    model = transfer_detection_weights(opt, nc=len(NAMES), anchors=None)
    source = load_checkpoint(v5_file)["model"]
    state = model.state_dict()
    neck = [k for k in state if int(k.split(".")[1]) >= 6]
    moved = [k for k in neck if "anchors" not in k]  # anchors come from --cfg, as in YOLOv5's train.py
    for k in moved:
        row, rest = k.split(".", 2)[1:]
        assert torch.equal(state[k], source[f"model.{int(row) + 3}.{rest}"]), k
    n_back = len(state) - len(neck)
    text = "\n".join(log_lines)
    assert f"backbone six: 0/{n_back}, random init; neck + head: {len(moved)}/{len(neck)} tensors from checkpoint " \
           f"{v5_file}, 1 random init (model.21)" in text, text
    assert not any(torch.equal(state["model.0.conv.weight"], v) for v in source.values()
                   if v.shape == state["model.0.conv.weight"].shape)  # its own backbone is not YOLOv5's


def test_transfer_reports_tensors_that_do_not_fit(v5_file, tmp_path, log_lines):
    """Another class count: the Detect output convs start random and are named."""
    from yolobone.engine.detect.options import DetectOptions
    from yolobone.engine.detect.task import transfer_detection_weights

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_tiny_cfg(), sort_keys=False))
    transfer_detection_weights(DetectOptions(cfg=str(cfg), weights=str(v5_file)), nc=2, anchors=None)
    assert "7 random init (model.24, model.24.m)" in "\n".join(log_lines)


def test_convert_once_to_a_weights_only_checkpoint(ours, v5_file, tmp_path, capsys):
    from yolobone.cli import main
    out = tmp_path / "ours.pt"
    assert main(["convert", str(v5_file), "-o", str(out)]) == 0
    assert f"-> {out}: {len(ours.state_dict())} tensors, {len(NAMES)} classes" in capsys.readouterr().out
    plain = torch.load(out, map_location="cpu", weights_only=True)  # no allow-list needed any more
    assert plain["converted_from"] == {"format": "yolov5", "file": "best.pt"} and "source_format" not in plain
    direct = load_checkpoint(v5_file)
    assert all(torch.equal(plain["model"][k], v) for k, v in direct["model"].items())
    assert main(["convert", str(out)]) == 2  # already ours
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already a yolobone checkpoint" in err[0], err
