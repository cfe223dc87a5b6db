"""Every model YAML in configs/ builds, runs forward in train and eval mode, has the strides it declares, and fuses."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from yolobone.models import DetectionModel, build_model
from yolobone.models.heads import Detect
from tolerance import assert_close_scaled

ROOT = Path(__file__).resolve().parents[1]
YOLOV5_VARIANTS = ("yolov5s-ghost", "yolov5s-transformer", "yolov5s-LeakyReLU")
# YOLOv5 v7.0 architectures; the yolov5s-<backbone>.yaml swaps get the same checks in tests/test_backbones.py, the
# anchor-free Ultralytics-style configs (a `scales:` table) theirs in tests/test_anchor_free.py
DETECT_CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml")
                        if (not p.stem.startswith("yolov5s-") or p.stem in YOLOV5_VARIANTS)
                        and "\nscales:" not in p.read_text())
CLS_CONFIGS = sorted((ROOT / "configs" / "cls").glob("*.yaml"))


def _small(cfg: Path) -> dict:
    """The same architecture with tiny multiples so forward passes stay cheap (layer graph and strides unchanged)."""
    d = yaml.safe_load(cfg.read_text())
    d["depth_multiple"] = min(float(d.get("depth_multiple", 1.0)), 0.33)
    d["width_multiple"] = min(float(d.get("width_multiple", 1.0)), 0.125)
    d["yaml_file"] = str(cfg)
    return d


def test_config_list_is_complete():
    names = {p.stem for p in DETECT_CONFIGS}
    expected = {"yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x", "yolov5n6", "yolov5s6", "yolov5m6",
                "yolov5l6", "yolov5x6", "yolov5-p2", "yolov5-p34", "yolov5-p6", "yolov5-p7", "yolov5-fpn",
                "yolov5-bifpn", "yolov5-panet", "yolov5s-ghost", "yolov5s-transformer", "yolov5s-LeakyReLU",
                "yolov3", "yolov3-spp", "yolov3-tiny"}
    assert expected <= names, f"missing configs: {sorted(expected - names)}"


@pytest.mark.parametrize("cfg", DETECT_CONFIGS, ids=lambda p: p.stem)
def test_detection_config_builds_and_runs(cfg: Path):
    torch.manual_seed(0)
    model = DetectionModel(_small(cfg), nc=3)
    head = model.model[-1]
    assert isinstance(head, Detect)
    strides = head.stride.tolist()
    # strides are powers of two, increasing, one per Detect input
    assert len(strides) == head.nl and strides == sorted(strides)
    assert all(s >= 4 and (int(s) & (int(s) - 1)) == 0 for s in strides), strides
    if cfg.stem.endswith("6"):
        assert strides == [8, 16, 32, 64]
    elif cfg.stem == "yolov5-p2":
        assert strides == [4, 8, 16, 32]
    elif cfg.stem == "yolov5-p34":
        assert strides == [8, 16]
    elif cfg.stem == "yolov5-p7":
        assert strides == [8, 16, 32, 64, 128]
    elif cfg.stem == "yolov3-tiny":
        assert strides == [16, 32]
    else:
        assert strides == [8, 16, 32]
    size = 256
    x = torch.rand(1, 3, size, size)

    model.train()
    maps = model(x)
    assert len(maps) == head.nl
    for m, s in zip(maps, strides):
        assert m.shape == (1, head.na, size // s, size // s, 5 + 3)
        assert torch.isfinite(m).all()

    model.eval()
    with torch.no_grad():
        decoded, raw = model(x)
        n_expected = sum(head.na * (size // s) ** 2 for s in strides)
        assert decoded.shape == (1, n_expected, 5 + 3)
        assert torch.isfinite(decoded).all()
        fused = copy.deepcopy(model).fuse()
        decoded_fused = fused(x)[0]
    assert_close_scaled(decoded_fused[..., :4], decoded[..., :4])  # pixels
    assert_close_scaled(decoded_fused[..., 4:], decoded[..., 4:])  # scores
    assert not any(isinstance(m, nn.BatchNorm2d) and hasattr(p, "conv")
                   for p in fused.modules() for m in p.children())


@pytest.mark.parametrize("cfg", CLS_CONFIGS, ids=lambda p: p.stem)
def test_classification_config_builds(cfg: Path):
    pytest.importorskip("yolobone.models.classification")
    model = build_model(_small(cfg), nc=4).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 4)


def test_decode_matches_yolov5_formula():
    """Eval output = ((sigmoid*2 - 0.5 + grid) * stride, (sigmoid*2)^2 * anchor_px, sigmoid scores)."""
    model = DetectionModel(_small(ROOT / "configs/yolov5n.yaml"), nc=2).eval()
    head = model.model[-1]
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        decoded, raw = model(x)
    level = 1
    r = raw[level][0]  # (na, H, W, no)
    stride = head.stride[level]
    a, gy, gx = 2, 1, 3
    p = r[a, gy, gx].sigmoid()
    exp_xy = (p[:2] * 2 - 0.5 + torch.tensor([gx, gy], dtype=torch.float32)) * stride
    exp_wh = (p[2:4] * 2) ** 2 * head.anchors[level, a] * stride
    offset = head.na * (128 // int(head.stride[0])) ** 2
    h, w = raw[level].shape[2:4]
    idx = offset + a * h * w + gy * w + gx
    torch.testing.assert_close(decoded[0, idx, :2], exp_xy)
    torch.testing.assert_close(decoded[0, idx, 2:4], exp_wh)
    torch.testing.assert_close(decoded[0, idx, 4:], p[4:])


def test_bias_priors():
    model = DetectionModel(ROOT / "configs/yolov5n.yaml", nc=80)
    head = model.model[-1]
    for conv, s in zip(head.m, head.stride.tolist()):
        b = conv.bias.view(head.na, -1)
        # default conv bias init is uniform in +-1/sqrt(fan_in); the prior dominates it
        assert torch.allclose(b[:, 4], torch.full_like(b[:, 4], torch.log(torch.tensor(8 / (640 / s) ** 2))),
                              atol=0.2)
        assert torch.allclose(b[:, 5:].mean(), torch.log(torch.tensor(0.6 / (80 - 0.99999))), atol=0.2)


def test_anchors_in_grid_units_and_ordered():
    model = DetectionModel(ROOT / "configs/yolov5s.yaml")
    head = model.model[-1]
    px = head.anchors * head.stride.view(-1, 1, 1)
    expected = torch.tensor([[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119],
                             [116, 90, 156, 198, 373, 326]], dtype=torch.float32).view(3, 3, 2)
    torch.testing.assert_close(px, expected)


def test_reversed_anchors_are_reordered():
    d = yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text())
    d["anchors"] = list(reversed(d["anchors"]))
    head = DetectionModel(d).model[-1]
    px = head.anchors * head.stride.view(-1, 1, 1)
    assert px[0].prod(-1).mean() < px[-1].prod(-1).mean()


def test_batchnorm_settings_match_yolov5():
    model = DetectionModel(_small(ROOT / "configs/yolov5s.yaml"))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)


def test_build_does_not_touch_batchnorm_statistics():
    model = DetectionModel(_small(ROOT / "configs/yolov5n.yaml"))
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert int(bn.num_batches_tracked) == 0


def test_activation_does_not_leak_between_models():
    leaky_cfg = ROOT / "configs/yolov5s-LeakyReLU.yaml"
    a = DetectionModel(_small(leaky_cfg))
    b = DetectionModel(_small(ROOT / "configs/yolov5n.yaml"))
    c = DetectionModel(_small(leaky_cfg))

    def acts(model):
        return {type(m.act) for m in model.modules() if hasattr(m, "act") and hasattr(m, "conv")}

    assert acts(a) == {nn.LeakyReLU} and acts(c) == {nn.LeakyReLU}
    assert acts(b) == {nn.SiLU}
    assert all(m.act.negative_slope == 0.1 for m in a.modules() if isinstance(getattr(m, "act", None), nn.LeakyReLU))
    # A built Conv outside any model build keeps SiLU
    from yolobone.models.blocks import Conv
    assert isinstance(Conv(3, 8).act, nn.SiLU)


def test_nc_override_and_summary_line():
    model = DetectionModel(_small(ROOT / "configs/yolov5s.yaml"), nc=7)
    assert model.yaml["nc"] == 7 and model.model[-1].no == 12
    line = model.summary_line(640)
    assert line.startswith("yolov5s summary: ")
    assert "parameters" in line and "gradients" in line and "GFLOPs" in line


def test_yolov5s_summary_matches_yolov5():
    model = DetectionModel(ROOT / "configs/yolov5s.yaml")
    from yolobone.utils.torch_utils import count_gflops
    assert len(list(model.modules())) == 214  # YOLOv5 v7.0 reports 214 layers
    assert abs(count_gflops(model, 640) - 16.5) / 16.5 < 0.01


def test_layer_attributes_and_save_list():
    model = DetectionModel(_small(ROOT / "configs/yolov5s.yaml"))
    assert [m.i for m in model.model] == list(range(len(model.model)))
    assert model.model[12].f == [-1, 6] and model.model[12].type == "Concat"
    assert set(model.save) == {4, 6, 10, 14, 17, 20}  # 23 feeds Detect as the previous layer


def test_depth_multiple_rounding():
    # n = max(round(n * gd), 1) when n > 1
    d = _small(ROOT / "configs/yolov5l.yaml")
    d["depth_multiple"] = 0.33
    model = DetectionModel(d)
    assert [len(model.model[i].m) for i in (2, 4, 6, 8)] == [1, 2, 3, 1]


def test_fuse_leaves_yaml_rows_that_skip_their_neighbour_alone():
    # layer 2 normalises layer 0's output, not layer 1's: the layer list runs by `from`, so nothing may be folded
    spec = {"nc": 3, "depth_multiple": 1.0, "width_multiple": 1.0,
            "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "nn.Conv2d", [8, 8, 3, 1, 1]],
                         [0, 1, "nn.BatchNorm2d", [8]], [[-1, 1], 1, "Concat", [1]]],
            "head": [[-1, 1, "Classify", ["nc"]]]}
    torch.manual_seed(0)
    model = build_model(spec, nc=3).eval()
    bn = model.model[2]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        fused = copy.deepcopy(model).fuse()
        assert_close_scaled(fused(x), expected)
    assert isinstance(fused.model[2], nn.BatchNorm2d) and isinstance(fused.model[1], nn.Conv2d)
