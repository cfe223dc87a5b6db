"""Every model YAML in configs/ matches YOLOv5 v7.0's architecture, checked by exact parameter counts.

Counts of all configs come from `parse_model` on the meta device (the same layers DetectionModel holds, without
allocating or initialising 140M weights); yolov5n/s are also built as real DetectionModels, unfused and fused.
Nothing is run forward here: forward passes are tested on tiny models elsewhere.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict

import pytest
import torch
import torch.nn as nn

from yolobone.models.parse import parse_model
from yolobone.models.yolo import DetectionModel, build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DETECT_CFGS = sorted(p for p in CONFIGS.glob("*.yaml") if not p.stem.startswith("yolov5s-") or
                     p.stem in ("yolov5s-ghost", "yolov5s-transformer", "yolov5s-LeakyReLU"))
# yolov5s-<backbone>.yaml swaps are checked in tests/test_backbones.py
CLS_CFGS = sorted((CONFIGS / "cls").glob("*.yaml"))

# YOLOv5 v7.0 model summaries, nc=80, before fuse().
V7_PARAMS: Dict[str, int] = {
    "yolov5n": 1_872_157, "yolov5s": 7_235_389, "yolov5m": 21_190_557, "yolov5l": 46_563_709,
    "yolov5x": 86_749_405, "yolov5n6": 3_246_940, "yolov5s6": 12_626_620, "yolov5m6": 35_731_932,
    "yolov5l6": 76_770_172, "yolov5x6": 140_794_780, "yolov5-p2": 47_493_372, "yolov5-p34": 5_331_518,
    "yolov5-p7": 144_281_723, "yolov5-fpn": 41_117_565, "yolov5-bifpn": 46_825_853,
    "yolov5s-ghost": 3_897_605, "yolov5s-transformer": 7_235_645, "yolov3": 61_949_149,
    "yolov3-spp": 62_998_749, "yolov3-tiny": 8_852_366,
}
# Configs without a published count of their own repeat the layers of one that has one
# (an activation or an anchor count instead of anchor sizes adds no parameters).
SAME_LAYERS_AS = {"yolov5-panet": "yolov5l", "yolov5-p6": "yolov5l6", "yolov5s-LeakyReLU": "yolov5s"}
V7_FUSED_PARAMS = {"yolov5n": 1_867_405, "yolov5s": 7_225_885}

# Classifiers at nc=1000: yolov5{n,s} rows 0-8 + Classify (1x1 Conv to 1280, pool, Linear). YOLOv5's README
# lists 2.5M / 5.4M, which are the fused counts below.
CLS_PARAMS = {"yolov5n-cls": 2_493_000, "yolov5s-cls": 5_453_480}
CLS_FUSED_PARAMS = {"yolov5n-cls": 2_489_464, "yolov5s-cls": 5_447_688}

_INDEX_COMMENT = re.compile(r"^\s*-\s*\[.*\]\s*#\s*(\d+)\b")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_layers(cfg: Path, nc: int) -> nn.Sequential:
    """The model's layers with shapes only: parameter counts without memory or init time."""
    with torch.device("meta"):
        return parse_model(cfg, nc=nc)[0]


def test_every_config_has_an_expected_count() -> None:
    assert {p.stem for p in DETECT_CFGS} == set(V7_PARAMS) | set(SAME_LAYERS_AS)
    assert {p.stem for p in CLS_CFGS} == set(CLS_PARAMS)


@pytest.mark.parametrize("cfg", DETECT_CFGS, ids=lambda p: p.stem)
def test_param_count_matches_yolov5_v7(cfg: Path) -> None:
    expected = V7_PARAMS[SAME_LAYERS_AS.get(cfg.stem, cfg.stem)]
    assert n_params(meta_layers(cfg, nc=80)) == expected


@pytest.mark.parametrize("cfg", CLS_CFGS, ids=lambda p: p.stem)
def test_classifier_param_count(cfg: Path) -> None:
    layers = meta_layers(cfg, nc=1000)
    assert n_params(layers) == CLS_PARAMS[cfg.stem]
    assert layers[-1].i == 9 and layers[-1].type == "Classify"  # YOLOv5 puts Classify at SPPF's index


@pytest.mark.parametrize("cfg", CLS_CFGS, ids=lambda p: p.stem)
def test_classifier_model_fused_count(cfg: Path) -> None:
    pytest.importorskip("yolobone.models.classification", reason="ClassificationModel not written yet")
    model = build_model(cfg, nc=1000).eval()
    assert n_params(model) == CLS_PARAMS[cfg.stem]
    assert n_params(model.fuse()) == CLS_FUSED_PARAMS[cfg.stem]


@pytest.mark.parametrize("name", sorted(V7_FUSED_PARAMS))
def test_detection_model_counts_unfused_and_fused(name: str) -> None:
    model = DetectionModel(CONFIGS / f"{name}.yaml", nc=80).eval()
    assert n_params(model) == V7_PARAMS[name]
    model.fuse()
    assert n_params(model) == V7_FUSED_PARAMS[name]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_leaky_relu_config_sets_activation() -> None:
    layers = meta_layers(CONFIGS / "yolov5s-LeakyReLU.yaml", nc=80)
    leaky = [m for m in layers.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == sum(isinstance(m, nn.SiLU) for m in meta_layers(CONFIGS / "yolov5s.yaml", nc=80).modules())
    assert all(m.negative_slope == pytest.approx(0.1) for m in leaky)
    assert not any(isinstance(m, nn.SiLU) for m in layers.modules())


@pytest.mark.parametrize("cfg", DETECT_CFGS + CLS_CFGS, ids=lambda p: p.stem)
def test_layer_index_comments_match_row_index(cfg: Path) -> None:
    """A row commented `# 17 ...` or `# 3-P3/8` must be row 17 / 3 of backbone + head."""
    row, checked, in_layers = -1, 0, False
    for line in cfg.read_text().splitlines():
        if re.match(r"^[A-Za-z_]", line):  # a top-level key starts or ends the layer lists
            in_layers = line.startswith(("backbone:", "head:"))
        elif in_layers and re.match(r"^\s*-\s*\[", line):
            row += 1
            m = _INDEX_COMMENT.match(line)
            if m:
                assert int(m.group(1)) == row, f"{cfg.name}: comment says layer {m.group(1)} on row {row}: {line}"
                checked += 1
    assert checked >= 2


def test_shipped_configs_resolve_from_any_folder(tmp_path, monkeypatch):
    """--cfg yolov5n.yaml, configs/hyp/..., configs/data/... work outside the checkout (an installed package)."""
    from yolobone.data.config import DatasetError, check_dataset
    from yolobone.utils.hyp import load_hyp
    from yolobone.utils.paths import PACKAGE_CONFIGS, find_config

    monkeypatch.chdir(tmp_path)
    assert find_config("yolov5n.yaml") == PACKAGE_CONFIGS / "yolov5n.yaml"
    assert find_config("configs/cls/yolov5n-cls.yaml") == PACKAGE_CONFIGS / "cls" / "yolov5n-cls.yaml"
    assert load_hyp("configs/hyp/hyp.scratch-low.yaml").lr0 == 0.01
    (tmp_path / "yolov5n.yaml").write_text("a local file wins\n")
    assert find_config("yolov5n.yaml") == Path("yolov5n.yaml")
    assert find_config("configs/nope.yaml") == Path("configs/nope.yaml")  # missing stays missing, for the caller
    with pytest.raises(DatasetError, match="data YAML not found: nope.yaml"):
        check_dataset("nope.yaml")
