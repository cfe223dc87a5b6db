"""--compile for inference (yolobone/engine/backends/compiled.py): compiled outputs equal eager ones, the shape stays pinned,
a failed compile runs eagerly with one warning, and 'auto' compiles only where the compile time is repaid."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from yolobone.cli import detect
from yolobone.cli import val
from yolobone.engine.backends import TorchBackend, load_backend
from yolobone.engine.backends.compiled import COMPILE_MIN_MEGAPIXELS, dominant_shape, wants_compile
from yolobone.engine.core.sources import resolve_source
from yolobone.engine.detect.predictor import Detector
from yolobone.engine.detect.val_run import ValConfig, loader_batch_shapes, run_val
from yolobone.models import DetectionModel
from tolerance import assert_close_scaled
from yolobone.data.augment import letterbox, letterbox_geometry
from yolobone.utils.checkpoint import save_checkpoint
from yolobone.data.datasets import create_dataloader
from yolobone.data.synthetic import SHAPE_NAMES, make_detection_dataset

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def _tiny(nc: int = 2) -> DetectionModel:
    d = yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text())
    d.update(depth_multiple=0.33, width_multiple=0.125, nc=nc)
    torch.manual_seed(0)
    return DetectionModel(d).eval()


def _micro(nc: int = 2) -> DetectionModel:
    """Conv, C3, Detect at one level: every kind of op the compiled graph fuses, in seconds of compiling."""
    d = {"nc": nc, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": [[10, 13, 16, 30, 33, 23]],
         "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "Conv", [16, 3, 2]], [-1, 1, "C3", [16]],
                      [-1, 1, "Conv", [16, 3, 2]]],
         "head": [[[3], 1, "Detect", ["nc", "anchors"]]]}
    torch.manual_seed(0)
    return DetectionModel(d).eval()


def _checkpoint(path: Path, nc: int = len(SHAPE_NAMES)) -> str:
    m = _tiny(nc)
    save_checkpoint({"model": m.state_dict(), "model_yaml": m.yaml, "task": "detect", "nc": nc,
                     "names": list(SHAPE_NAMES)[:nc], "epoch": -1, "best_fitness": 0.0}, path)
    return str(path)


class _RecordingCompile:
    """Stands in for torch.compile: runs the module eagerly and records each input shape it was given."""

    def __init__(self, fail: bool = False):
        self.shapes, self.options, self.fail = [], [], fail

    def __call__(self, module, dynamic=None, options=None, **kw):
        self.options.append((dynamic, options))

        def run(x):
            if self.fail:
                raise RuntimeError("InductorError: no working C++ compiler\nmore details")
            self.shapes.append(tuple(x.shape))
            return module(x)
        return run


@pytest.mark.slow  # ~25 s of compiling with an empty inductor cache on a loaded 2-core machine
def test_compiled_outputs_match_eager(monkeypatch, log_lines):
    monkeypatch.delenv("YOLOBONE_NO_COMPILE", raising=False)
    model = _micro()
    eager = TorchBackend(model, CPU)
    compiled = TorchBackend(model, CPU, compile="on")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    got, want = compiled(x), eager(x)
    assert compiled.compiled.compile_s is not None, "the first call at the pinned shape should have compiled"
    assert_close_scaled(got, want, rel=1e-4)
    assert_close_scaled(compiled(x * 0.5), eager(x * 0.5), rel=1e-4)  # the compiled graph, not a cached output
    other = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    assert_close_scaled(compiled(other), eager(other), rel=1e-4)  # another shape: eager, no recompile
    compiled(other)
    assert sum("not the compiled shape" in m for m in log_lines) == 1


def test_inductor_options_are_per_call(monkeypatch):
    monkeypatch.delenv("YOLOBONE_NO_COMPILE", raising=False)
    fake = _RecordingCompile()
    monkeypatch.setattr(torch, "compile", fake)
    b = TorchBackend(_tiny(), CPU, compile="on")
    b(torch.rand(2, 3, 64, 64))
    b(torch.rand(1, 3, 64, 64))  # not the pinned (first) shape
    assert fake.options == [(False, {"freezing": True})]
    assert fake.shapes == [(2, 3, 64, 64)]


def test_compile_failure_runs_eagerly(monkeypatch, log_lines):
    monkeypatch.delenv("YOLOBONE_NO_COMPILE", raising=False)
    monkeypatch.setattr(torch, "compile", _RecordingCompile(fail=True))
    model = _tiny()
    b = TorchBackend(model, CPU, compile="on")
    x = torch.rand(1, 3, 64, 64)
    assert_close_scaled(b(x), TorchBackend(model, CPU)(x))
    assert_close_scaled(b(x), TorchBackend(model, CPU)(x))
    warnings = [m for m in log_lines if "torch.compile cannot be used here" in m]
    assert len(warnings) == 1 and "no working C++ compiler" in warnings[0] and "\n" not in warnings[0]
    assert not b.compiled.active


def test_no_compile_environment(monkeypatch):
    fake = _RecordingCompile()
    monkeypatch.setattr(torch, "compile", fake)
    monkeypatch.setenv("YOLOBONE_NO_COMPILE", "1")
    b = TorchBackend(_tiny(), CPU, compile="on")
    b(torch.rand(1, 3, 64, 64))
    assert b.compiled is None and not b.plan_compile((1, 3, 64, 64), 10 ** 6) and fake.options == []


def test_auto_decision(monkeypatch):
    monkeypatch.delenv("YOLOBONE_NO_COMPILE", raising=False)
    enough = int(COMPILE_MIN_MEGAPIXELS * 1e6 / (640 * 640)) + 1
    assert wants_compile("auto", CPU, (1, 3, 640, 640), enough)
    assert not wants_compile("auto", CPU, (1, 3, 640, 640), enough - 2)
    assert not wants_compile("auto", CPU, (1, 3, 64, 64), enough)  # small images save too little per image
    assert not wants_compile("auto", torch.device("cuda"), (1, 3, 640, 640), enough)  # measured on CPU only
    assert not wants_compile("off", CPU, (1, 3, 640, 640), 10 ** 6)
    assert wants_compile("on", CPU, (1, 3, 64, 64), 1)
    assert dominant_shape([(1, 3, 64, 64), (1, 3, 32, 64), (1, 3, 32, 64)]) == ((1, 3, 32, 64), 2)
    assert dominant_shape([]) == (None, 0)
    b = TorchBackend(_tiny(), CPU, compile="auto")
    assert b.compiled is None  # auto waits for the caller's plan


@pytest.mark.parametrize("hw", [(96, 72), (480, 640), (37, 500), (640, 640)])
def test_letterbox_geometry_is_letterbox(hw):
    im = np.zeros((*hw, 3), np.uint8)
    for auto in (True, False):
        out = letterbox(im, (64, 64) if hw[0] < 100 else 640, auto=auto, stride=32)[0]
        nw, nh, pw, ph = letterbox_geometry(*hw, 64 if hw[0] < 100 else 640, auto=auto, stride=32)
        assert out.shape[:2] == (nh + ph, nw + pw)


def test_val_pins_the_most_common_batch_shape(tmp_path, monkeypatch):
    monkeypatch.delenv("YOLOBONE_NO_COMPILE", raising=False)
    fake = _RecordingCompile()
    monkeypatch.setattr(torch, "compile", fake)
    data = make_detection_dataset(tmp_path / "data", n_train=1, n_val=7, imgsz=96, max_objects=2, verbose=False)
    weights = _checkpoint(tmp_path / "w.pt")
    _, dataset = create_dataloader(str(tmp_path / "data/images/val"), 64, 3, 32, pad=0.5, rect=True, workers=0)
    pinned, n = dominant_shape(loader_batch_shapes(dataset, 3, 64))
    run_val(ValConfig(weights=weights, data=str(data), imgsz=64, batch_size=3, device="cpu", workers=0,
                      project=str(tmp_path / "runs"), plots=False, compile="on"))
    assert fake.shapes and set(fake.shapes) == {pinned}  # warm-up compiles it; other batch shapes ran eagerly
    assert n >= 3
    auto = load_backend(weights, "cpu", compile="auto")
    run_val(ValConfig(weights=weights, data=str(data), imgsz=64, batch_size=3, device="cpu", workers=0,
                      project=str(tmp_path / "runs"), plots=False), model=auto)
    assert auto.compiled is None  # 7 images at 64 px are far below the auto threshold


def test_detect_plans_the_most_common_letterbox_shape(tmp_path, monkeypatch):
    monkeypatch.delenv("YOLOBONE_NO_COMPILE", raising=False)
    fake = _RecordingCompile()
    monkeypatch.setattr(torch, "compile", fake)
    src = tmp_path / "imgs"
    src.mkdir()
    for i, (h, w) in enumerate([(60, 80), (60, 80), (80, 60)]):
        cv2.imwrite(str(src / f"{i}.jpg"), np.full((h, w, 3), 40 * i, np.uint8))
    det = Detector(_checkpoint(tmp_path / "w.pt"), device="cpu", compile="on")
    shape, n = det.main_input_shape(resolve_source(str(src)), det.options(imgsz=128))
    assert (shape, n) == ((1, 3, 96, 128), 2)  # 60x80 -> 96x128 twice, 80x60 -> 128x96 once
    assert detect.main(["--weights", det.weights, "--source", str(src), "--imgsz", "128", "--device", "cpu",
                        "--project", str(tmp_path / "runs"), "--nosave", "--compile", "on"]) == 0
    assert set(fake.shapes) == {(1, 3, 96, 128)}


def test_compile_flags():
    assert detect.parse_opt(["--weights", "w.pt", "--source", "x"]).compile == "auto"
    assert detect.parse_opt(["--weights", "w.pt", "--source", "x", "--compile"]).compile == "on"
    assert val.build_parser().parse_args(["--weights", "w.pt", "--compile", "off"]).compile == "off"
