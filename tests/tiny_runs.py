"""Tiny detection runs shared by the training tests: data and model files, a run cut after its first epoch, and the
final-weights comparison behind every exact-resume test (importable by any test module)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import torch
import yaml

from yolobone.data.synthetic import make_detection_dataset
from yolobone.engine.train import train

ROOT = Path(__file__).resolve().parents[1]


def tiny_detection_files(root: Path) -> Tuple[Path, Path]:
    """(data.yaml, model YAML): 8 + 2 generated images of 64 px and a yolov5n-layout model at width 0.125."""
    data = make_detection_dataset(root / "data", n_train=8, n_val=2, imgsz=64, max_objects=2, min_size=0.3,
                                  max_size=0.6, verbose=False)
    d = yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text())
    d["depth_multiple"], d["width_multiple"] = 0.33, 0.125
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(d, sort_keys=False))
    return data, cfg


class Interrupt(Exception):
    """Raised by a callback to stop a run the way a crash would (last.pt stays as the last finished epoch left it)."""


def train_cut_after_first_epoch(options: Dict[str, Any], name: str) -> Path:
    """Train `options` under `name`, stopped after epoch 0; returns its last.pt."""
    def stop_after_first(trainer) -> None:
        if trainer.epoch == 0:
            raise Interrupt

    try:
        train(options, name=name, callbacks={"on_fit_epoch_end": stop_after_first})
    except Interrupt:
        return Path(options["project"]) / name / "weights" / "last.pt"
    raise AssertionError("the run was not cut after its first epoch")


def assert_same_weights(a: Path, b: Path) -> None:
    """Two checkpoints hold the same model weights (to 1e-6)."""
    x = torch.load(a, weights_only=True)["model"]
    y = torch.load(b, weights_only=True)["model"]
    assert x.keys() == y.keys()
    for k in x:
        assert torch.allclose(x[k].float(), y[k].float(), atol=1e-6, rtol=0), k
