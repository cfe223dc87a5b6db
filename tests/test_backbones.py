"""Backbone zoo: every backbone config trains a step and has strides 8/16/32; the blocks are the published ones;
torchvision features are found by probing; pretrained weights load offline; --freeze freezes the right layers."""
from __future__ import annotations

import copy
import dataclasses
import math
import re
from pathlib import Path
from typing import Dict

import pytest
import torch
import torch.nn as nn

import yolobone.models.backbones as backbones_pkg
from yolobone.models import DetectionModel
from yolobone.models.backbones.common import Index
from yolobone.models.backbones.feature_info import FeatureInfo
from yolobone.models.backbones.features import StageFeatures, feature_body, probe_features, probe_unwrapped
from yolobone.models.backbones.hgnet import DWDown, HGBlock, HGStem
from yolobone.models.backbones.pretrained import no_pretrained
from yolobone.models.backbones.res2net import Bottle2neck, C3_Res2Block
from yolobone.models.backbones.resnet import BasicBlock, ResBottleneck
from yolobone.models.backbones.torchvision_wrap import TorchVision
from yolobone.models.freeze import FreezeSpecError, backbone_layer_count, freeze_layers, set_frozen_bn_eval
from yolobone.models.loss import ComputeLoss
from yolobone.models.compose import compose, load_backbone
from yolobone.models.parse import load_model_yaml, parse_model
from yolobone.models.registry import ModelConfigError, get_block
from tolerance import assert_close_scaled
from yolobone.models.yolo import build_model
from yolobone.utils.hyp import load_hyp

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
NECK = [  # the YOLOv5s neck + head fed by backbone layers P3=a, P4=b, P5=c; SPPF is layer n
    ["-1", 1, "SPPF", [1024, 5]], [-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
    [[-1, "b"], 1, "Concat", [1]], [-1, 1, "C3", [512, False]], [-1, 1, "Conv", [256, 1, 1]],
    [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, "a"], 1, "Concat", [1]], [-1, 1, "C3", [256, False]],
    [-1, 1, "Conv", [256, 3, 2]], [[-1, "n+5"], 1, "Concat", [1]], [-1, 1, "C3", [512, False]],
    [-1, 1, "Conv", [512, 3, 2]], [[-1, "n+1"], 1, "Concat", [1]], [-1, 1, "C3", [1024, False]],
    [["n+8", "n+11", "n+14"], 1, "Detect", ["nc", "anchors"]]]
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]


def _uses_backbone_block(cfg: Path) -> bool:
    names = {r[2] for r in load_model_yaml(cfg).rows}
    return any(get_block(n).cls.__module__.startswith(backbones_pkg.__name__ + ".") for n in names
               if not n.startswith("nn."))


BACKBONE_CFGS = sorted(p for p in CONFIGS.glob("*.yaml") if _uses_backbone_block(p))
_MODELS: Dict[str, DetectionModel] = {}


def model_for(cfg: Path) -> DetectionModel:
    """Each config built once per session; strides probed at 64 px (the default 256 only costs time here)."""
    if cfg.stem not in _MODELS:
        torch.manual_seed(0)
        _MODELS[cfg.stem] = DetectionModel(cfg, nc=3, probe_size=64)
    return _MODELS[cfg.stem]


def yaml_with_neck(backbone: list, p3: int, p4: int, p5: int, width: float = 0.25) -> dict:
    """A model dict: the given backbone rows + the YOLOv5s neck (tiny width) on layers p3/p4/p5."""
    n = len(backbone)
    sub = {"a": p3, "b": p4, "n+1": n + 1, "n+5": n + 5, "n+8": n + 8, "n+11": n + 11, "n+14": n + 14}

    def fix(v):
        return [fix(x) for x in v] if isinstance(v, list) else sub.get(v, v) if isinstance(v, str) else v
    head = [[(p5 if p5 != n - 1 else -1) if r[0] == "-1" else fix(r[0]), r[1], r[2], r[3]] for r in NECK]
    return {"nc": 3, "depth_multiple": 1.0, "width_multiple": width, "anchors": ANCHORS, "backbone": backbone,
            "head": head}


def test_backbone_configs_are_found() -> None:
    names = {p.stem for p in BACKBONE_CFGS}
    assert {"yolov5s-resnet18", "yolov5s-resnet34", "yolov5s-resnet50", "yolov5s-resnet101", "yolov5s-res2net",
            "yolov5s-mobilenetv2", "yolov5s-shufflenetv2", "yolov5s-hgnetv2"} <= names
    assert "yolov5s" not in names and "yolov5s-ghost" not in names


@pytest.mark.parametrize("cfg", BACKBONE_CFGS, ids=lambda p: p.stem)
def test_backbone_config_trains_a_step(cfg: Path) -> None:
    model = model_for(cfg)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    line = model.summary_line(640, probe=64)
    assert re.fullmatch(rf"{cfg.stem} summary: \d+ layers, [\d,]+ parameters, [\d,]+ gradients, [\d.]+ GFLOPs", line)
    # ResNet101 and Swin-T are 4x the compute of the others: a smaller image keeps the file fast (strides are checked
    # above)
    size = 64 if cfg.stem in ("yolov5s-resnet101", "yolov5s-swin_t") else 160
    x = torch.rand(2, 3, size, size)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.4], [1, 2, 0.3, 0.6, 0.2, 0.2]])
    model.train()
    model.zero_grad(set_to_none=True)
    preds = model(x)
    assert [tuple(p.shape) for p in preds] == [(2, 3, size // s, size // s, 8) for s in (8, 16, 32)]
    loss, _ = ComputeLoss(model.detect, load_hyp(), imgsz=size)(preds, targets)
    loss.backward()
    assert torch.isfinite(loss)
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters outside the graph (a classifier left in?): {unused[:3]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        decoded, raw = model(torch.rand(2, 3, 64, 96))  # a non-square eval image
    assert decoded.shape == (2, 3 * sum((64 // s) * (96 // s) for s in (8, 16, 32)), 8)
    assert [tuple(r.shape) for r in raw] == [(2, 3, 64 // s, 96 // s, 8) for s in (8, 16, 32)]
    assert torch.isfinite(decoded).all()


@pytest.mark.parametrize("cfg", BACKBONE_CFGS, ids=lambda p: p.stem)
def test_fuse_folds_every_batchnorm_and_keeps_outputs(cfg: Path) -> None:
    model = copy.deepcopy(model_for(cfg)).eval()
    gen = torch.Generator().manual_seed(0)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):  # stats far from the identity
        bn.running_mean.copy_(torch.rand(bn.num_features, generator=gen) - 0.5)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
    x = torch.rand(1, 3, 64, 64, generator=gen)
    with torch.no_grad():
        expected, expected_raw = model(x)
        fused = model.fuse()
        got, got_raw = fused(x)
    assert not [n for n, m in fused.named_modules() if isinstance(m, nn.BatchNorm2d)]
    # boxes are in pixels (~500), scores in [0, 1], raw maps are logits: each compared at its own scale
    assert_close_scaled(got[..., :4], expected[..., :4])
    assert_close_scaled(got[..., 4:], expected[..., 4:])
    for a, b in zip(got_raw, expected_raw):
        assert_close_scaled(a, b)


# ---- ResNet blocks -----------------------------------------------------------------------------------------

def _zero_residual_branch(block: nn.Module, last: str) -> None:
    bn = getattr(block, last).bn
    nn.init.zeros_(bn.weight)
    nn.init.zeros_(bn.bias)


def test_basic_block_identity_shortcut() -> None:
    block = BasicBlock(64, 64, 1).eval()
    assert isinstance(block.shortcut, nn.Identity) and block.cv1.conv.stride == (1, 1)
    x = torch.randn(1, 64, 8, 8)
    _zero_residual_branch(block, "cv2")
    torch.testing.assert_close(block(x), torch.relu(x))


def test_basic_block_strided_projection() -> None:
    block = BasicBlock(64, 128, 2).eval()
    assert block.cv1.conv.stride == (2, 2) and block.cv2.conv.stride == (1, 1)
    assert block.shortcut.conv.kernel_size == (1, 1) and block.shortcut.conv.stride == (2, 2)
    x = torch.randn(1, 64, 16, 16)
    assert block(x).shape == (1, 128, 8, 8)
    _zero_residual_branch(block, "cv2")
    torch.testing.assert_close(block(x), torch.relu(block.shortcut(x)))
    assert not isinstance(BasicBlock(64, 128, 1).shortcut, nn.Identity)  # channels change: projection too


def test_stage_repeat_strides_only_the_first_block() -> None:
    d = yaml_with_neck([[-1, 1, "ResStem", [64]], [-1, 3, "BasicBlock", [128, 2]],
                        [-1, 2, "BasicBlock", [128, 2]], [-1, 2, "BasicBlock", [128, 2]]], 1, 2, 3)
    with torch.device("meta"):
        layers = parse_model(d)[0]
    stage = layers[1]
    assert [b.cv1.conv.stride for b in stage] == [(2, 2), (1, 1), (1, 1)]
    assert [isinstance(b.shortcut, nn.Identity) for b in stage] == [False, True, True]
    assert stage[0].cv1.conv.in_channels == 64 and stage[1].cv1.conv.in_channels == 128


def test_basic_block_default_is_relu_and_true_means_model_activation() -> None:
    assert isinstance(BasicBlock(8, 8).act, nn.ReLU)
    d = yaml_with_neck([[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "BasicBlock", [8, 2, True]],
                        [-1, 1, "BasicBlock", [8, 2, True]], [-1, 1, "BasicBlock", [8, 2, True]],
                        [-1, 1, "BasicBlock", [8, 2, True]]], 2, 3, 4)
    d["activation"] = "nn.LeakyReLU(0.1)"
    with torch.device("meta"):
        layers = parse_model(d)[0]
    assert isinstance(layers[1].act, nn.LeakyReLU)


@pytest.mark.parametrize("cfg,tv", [("yolov5s-resnet18", "resnet18"), ("yolov5s-resnet34", "resnet34")])
def test_yaml_resnet_matches_torchvision_parameter_count(cfg: str, tv: str) -> None:
    from torchvision.models import get_model
    with torch.device("meta"):
        layers = parse_model(CONFIGS / f"{cfg}.yaml")[0]
        ref = get_model(tv)
    ours = sum(p.numel() for layer in layers[:5] for p in layer.parameters())
    assert ours == sum(p.numel() for n, p in ref.named_parameters() if not n.startswith("fc."))


def test_yaml_resnet50_bottlenecks_match_torchvision() -> None:
    from torchvision.models import get_model
    rows = [[-1, 1, "ResStem", [64]], [-1, 3, "ResBottleneck", [256, 1]], [-1, 4, "ResBottleneck", [512, 2]],
            [-1, 6, "ResBottleneck", [1024, 2]], [-1, 3, "ResBottleneck", [2048, 2]]]
    with torch.device("meta"):
        layers = parse_model(yaml_with_neck(rows, 2, 3, 4))[0]
        ref = get_model("resnet50")
    assert sum(p.numel() for layer in layers[:5] for p in layer.parameters()) == \
        sum(p.numel() for n, p in ref.named_parameters() if not n.startswith("fc."))
    assert isinstance(layers[2][0], ResBottleneck) and layers[2][0].cv2.conv.stride == (2, 2)


def test_user_basic_block_yaml_builds_and_trains() -> None:
    rows = [[-1, 1, "Conv", [64, 1]], [-1, 2, "BasicBlock", [64]], [-1, 1, "Conv", [128, 3, 2]],
            [-1, 2, "BasicBlock", [128]], [-1, 1, "Conv", [128, 3, 2]], [-1, 1, "Conv", [128, 3, 2]],
            [-1, 2, "BasicBlock", [128]], [-1, 1, "Conv", [256, 3, 2]], [-1, 2, "BasicBlock", [256]],
            [-1, 1, "Conv", [256, 3, 2]], [-1, 2, "BasicBlock", [256]]]
    d = yaml_with_neck(rows, 6, 8, 10, width=1.0)
    d["width_multiple"] = 0.125  # the user's Conv rows scale, BasicBlock widths are literal: both must build
    d["probe_size"] = 64
    torch.manual_seed(0)
    model = DetectionModel(d)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, targets = torch.rand(2, 3, 64, 64), torch.tensor([[0, 1, 0.5, 0.5, 0.4, 0.4]])
    loss_fn = ComputeLoss(model.detect, load_hyp(), imgsz=64)
    losses = []
    for _ in range(2):
        opt.zero_grad()
        loss, _ = loss_fn(model(x), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)


# ---- Res2Net ------------------------------------------------------------------------------------------------

def test_bottle2neck_parameter_count_formula() -> None:
    c1, c2, bw, s = 64, 64, 26, 4
    w = c2 * bw // 64
    block = Bottle2neck(c1, c2, True, bw, s)
    expected = (c1 * w * s + 2 * w * s) + (s - 1) * (9 * w * w + 2 * w) + (w * s * c2 + 2 * c2)
    assert sum(p.numel() for p in block.parameters()) == expected
    assert block.width == 26 and block.add


def test_bottle2neck_hierarchy_shapes_and_no_prints(capsys: pytest.CaptureFixture) -> None:
    block = Bottle2neck(32, 32, True, 26, 4).eval()
    seen = {}
    block.cv1.register_forward_hook(lambda m, i, o: seen.__setitem__("split", o))
    block.cv3.register_forward_hook(lambda m, i, o: seen.__setitem__("cat", i[0]))
    block.convs[0].register_forward_hook(lambda m, i, o: seen.__setitem__("y0", o))
    block.convs[1].register_forward_hook(lambda m, i, o: seen.__setitem__("in1", i[0]))
    x = torch.randn(2, 32, 16, 16)
    with torch.no_grad():
        y = block(x)
    assert y.shape == x.shape
    w = block.width
    torch.testing.assert_close(seen["cat"][:, -w:], seen["split"][:, -w:])  # last group passed through
    torch.testing.assert_close(seen["in1"], seen["y0"] + seen["split"][:, w:2 * w])  # adds previous output
    assert seen["cat"].shape[1] == 4 * w
    C3_Res2Block(32, 64, 2, False)(x)
    assert capsys.readouterr().out == ""


def test_res2net_config_replaces_every_c3() -> None:
    with torch.device("meta"):
        layers = parse_model(CONFIGS / "yolov5s-res2net.yaml")[0]
    types = [m.type for m in layers]
    assert "C3" not in types and types.count("C3_Res2Block") == 8
    neck = [m for m in layers if m.type == "C3_Res2Block" and m.i > 9]
    assert neck and all(not b.add for m in neck for b in m.m)


# ---- HGNetV2 ------------------------------------------------------------------------------------------------

def test_hgnet_blocks() -> None:
    x = torch.randn(1, 3, 64, 64)
    assert HGStem(3, 16, 16)(x).shape == (1, 16, 16, 16)
    light = HGBlock(16, 8, 32, 5, 3, light=True)
    assert light.m[0].conv2.conv.groups == 8 and light.m[0].conv2.conv.kernel_size == (5, 5)
    assert light.sc.conv.in_channels == 16 + 3 * 8 and light.ec.conv.out_channels == 32 and not light.add
    assert DWDown(32).conv.conv.groups == 32 and DWDown(32)(torch.randn(1, 32, 8, 8)).shape == (1, 32, 4, 4)
    d = yaml_with_neck([[-1, 1, "HGStem", [16, 16]], [-1, 1, "DWDown", [3, 2]], [-1, 3, "HGBlock", [8, 32, 3, 2]],
                        [-1, 1, "DWDown", [3, 2]], [-1, 1, "DWDown", [3, 2]]], 2, 3, 4)
    with torch.device("meta"):
        stage = parse_model(d)[0][2]
    assert [b.add for b in stage] == [False, True, True]  # residual from the second block of a stage on


# ---- torchvision wrappers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,channels", [
    ("resnet50", (512, 1024, 2048)), ("resnext50_32x4d", (512, 1024, 2048)), ("convnext_tiny", (192, 384, 768)),
    ("efficientnet_b0", (40, 112, 320)), ("mobilenet_v3_large", (40, 112, 160)), ("regnet_y_400mf", (104, 208, 440)),
    ("mobilenet_v2", (32, 96, 320)), ("shufflenet_v2_x0_5", (48, 96, 192)), ("shufflenet_v2_x1_0", (116, 232, 464))])
def test_probe_finds_stride_8_16_32_stages(name: str, channels: tuple) -> None:
    spec = probe_features(name)
    assert spec.channels == channels and spec.strides == (8, 16, 32)


def test_probe_chain_and_last_conv() -> None:
    r50 = probe_features("resnet50")
    assert r50.modules == ("layer2", "layer3", "layer4") and r50.chain[:4] == ("conv1", "bn1", "relu", "maxpool")
    mb = probe_features("mobilenet_v2")
    assert mb.modules[:2] == ("features.6", "features.13") and mb.dropped == "features.18"
    assert mb.chain[-1] == "features.18" and mb.returns == ("features.6", "features.13", "features.18")
    assert probe_features("mobilenet_v2", last_conv=True).channels == (32, 96, 1280)
    assert probe_features("shufflenet_v2_x1_0", last_conv=True).channels == (116, 232, 1024)
    assert probe_features("convnext_tiny").dropped is None  # no head conv to drop
    assert probe_features("swin_t").layouts == ("NHWC", "NHWC", "NCHW")  # channels-last stages, permuted when run


def test_stage_features_match_torchvision_fx_extractor() -> None:
    from torchvision.models import get_model
    spec = probe_features("mobilenet_v2")
    torch.manual_seed(0)
    net = get_model("mobilenet_v2").eval()
    ours = feature_body(copy.deepcopy(net), spec)
    fx = feature_body(net, dataclasses.replace(spec, chain=None, returns=spec.modules))
    assert isinstance(ours, StageFeatures) and set(ours.state_dict()) <= set(net.state_dict())
    assert not any(k.startswith(("classifier", "features.18")) for k in ours.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(ours(x), fx(x).values()):
            torch.testing.assert_close(a, b)


def test_backbone_survives_deepcopy() -> None:
    model = model_for(CONFIGS / "yolov5s-mobilenetv2.yaml").eval()
    twin = copy.deepcopy(model)  # what the EMA does
    assert not any(m.training for m in twin.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(twin(x)[0], model(x)[0])


def test_swapping_the_model_name_is_enough() -> None:
    bb = load_backbone("efficientnet_b0")
    bb.rows[0][3][0] = "regnet_y_400mf"
    spec = compose(CONFIGS / "yolov5s.yaml", bb)
    spec.data["width_multiple"] = 0.125
    model = DetectionModel(spec, nc=3, probe_size=64)
    assert model.layer_channels[0] == [104, 208, 440] and model.stride.tolist() == [8.0, 16.0, 32.0]


def test_mobilenet_width_mult_and_shufflenet_width() -> None:
    with torch.device("meta"):
        rows = [[-1, 1, "MobileNetV2", [0.5]], [0, 1, "Index", [0]], [0, 1, "Index", [1]], [0, 1, "Index", [2]]]
        assert parse_model(yaml_with_neck(rows, 1, 2, 3))[2][0] == [16, 48, 160]
        rows[0] = [-1, 1, "ShuffleNetV2", [0.5]]
        assert parse_model(yaml_with_neck(rows, 1, 2, 3))[2][0] == [48, 96, 192]


def test_index_errors() -> None:
    base = [[-1, 1, "TorchVision", ["resnet18"]], [0, 1, "Index", [0]], [0, 1, "Index", [1]], [0, 1, "Index", [2]]]
    bad_index = [list(r) for r in base]
    bad_index[3] = [0, 1, "Index", [3]]
    with pytest.raises(ModelConfigError, match="layer 3.*index 3 is out of range"):
        parse_model(yaml_with_neck(bad_index, 1, 2, 3))
    direct = [base[0], [-1, 1, "Conv", [64, 1]]]
    with pytest.raises(ModelConfigError, match="layer 1.*select one first with an Index row"):
        parse_model(yaml_with_neck(direct, 1, 1, 1))
    single = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Index", [0]]]
    with pytest.raises(ModelConfigError, match="single feature map"):
        parse_model(yaml_with_neck(single, 1, 1, 1))
    assert Index(1)([torch.zeros(1), torch.ones(1)]).item() == 1


def test_ultralytics_torchvision_rows_build() -> None:
    # ultralytics' documented convnext_tiny example: split outputs [input, features.0 ... features.7]
    assert [probe_unwrapped("convnext_tiny", (), True, 2, True)[i] for i in (4, 6, 8)] == [192, 384, 768]
    rows = [[-1, 1, "TorchVision", [320, "mobilenet_v2", None, True, 2, True]],
            [0, 1, "Index", [32, 7]], [0, 1, "Index", [96, 14]], [0, 1, "Index", [320, 18]]]
    d = yaml_with_neck(rows, 1, 2, 3, width=0.125)
    model = DetectionModel(d, probe_size=64)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    assert isinstance(model.model[0], TorchVision) and isinstance(model.model[0].body, nn.Sequential)
    rows[1] = [0, 1, "Index", [24, 7]]
    with pytest.raises(ModelConfigError, match="declares 24 channels but output 7 has 32"):
        parse_model(yaml_with_neck(rows, 1, 2, 3))
    with pytest.raises(ModelConfigError, match="declares c2=100"):
        parse_model(yaml_with_neck([[-1, 1, "TorchVision", [100, "resnet18", None, True, 2]]], 0, 0, 0))


def test_torchvision_keeps_its_batchnorm_settings() -> None:
    model = model_for(CONFIGS / "yolov5s-mobilenetv2.yaml")
    tv_bns = [m for m in model.model[0].modules() if isinstance(m, nn.BatchNorm2d)]
    assert tv_bns and all(m.eps == 1e-5 and m.momentum == 0.1 for m in tv_bns)


# ---- pretrained weights (offline) -------------------------------------------------------------------------

def _fake_checkpoint(name: str) -> Dict[str, torch.Tensor]:
    """A full-model state dict whose every tensor differs from any init."""
    from torchvision.models import get_model
    g = torch.Generator().manual_seed(1)
    state = get_model(name).state_dict()
    return {k: (torch.randint(0, 7, v.shape, generator=g) if not v.is_floating_point()
                else torch.randn(v.shape, generator=g)).to(v.dtype) for k, v in state.items()}


def _shufflenet_yaml(weights) -> dict:
    rows = [[-1, 1, "ShuffleNetV2", [0.5, weights]], [0, 1, "Index", [0]], [0, 1, "Index", [1]],
            [0, 1, "Index", [2]]]
    return {**yaml_with_neck(rows, 1, 2, 3, width=0.125), "probe_size": 64}


def _assert_backbone_equals(model: DetectionModel, state: Dict[str, torch.Tensor]) -> int:
    own = model.model[0].body.state_dict()
    for k, v in own.items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    return len(own)


def test_pretrained_from_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pretrained_on) -> None:
    from torchvision.models import get_model_weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = get_model_weights("shufflenet_v2_x0_5").DEFAULT.url
    file = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    with pytest.raises(ModelConfigError, match=re.escape(f"put {file.name} (from {url}) in {file.parent}/")):
        DetectionModel(_shufflenet_yaml(True))
    state = _fake_checkpoint("shufflenet_v2_x0_5")
    file.parent.mkdir(parents=True)
    torch.save(state, file)
    model = DetectionModel(_shufflenet_yaml(True))
    n = _assert_backbone_equals(model, state)
    assert n == len([k for k in state if not k.startswith(("conv5.", "fc."))])  # everything but the head
    assert _assert_backbone_equals(DetectionModel(_shufflenet_yaml("IMAGENET1K_V1")), state) == n
    with no_pretrained():  # rebuilding a checkpoint: weights come from it, no file needed
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
        DetectionModel(_shufflenet_yaml(True))


def test_pretrained_from_local_file(tmp_path: Path, pretrained_on) -> None:
    state = _fake_checkpoint("shufflenet_v2_x0_5")
    path = tmp_path / "backbone.pth"
    torch.save({"model": state}, path)
    model = DetectionModel(_shufflenet_yaml(str(path)))
    _assert_backbone_equals(model, state)
    with pytest.raises(ModelConfigError, match="not found"):
        DetectionModel(_shufflenet_yaml(str(tmp_path / "missing.pth")))
    torch.save({"backbone." + k: v for k, v in state.items()}, path)
    with pytest.raises(ModelConfigError, match="keys are not in the model"):
        DetectionModel(_shufflenet_yaml(str(path)))
    wrong = dict(state)
    wrong["stage2.0.branch1.0.weight"] = torch.zeros(1)
    torch.save(wrong, path)
    with pytest.raises(ModelConfigError, match="1 of another shape"):
        DetectionModel(_shufflenet_yaml(str(path)))
    with pytest.raises(ModelConfigError, match="unknown weights 'IMAGENET9K'"):
        DetectionModel(_shufflenet_yaml("IMAGENET9K"))


# ---- freezing -----------------------------------------------------------------------------------------------

def test_backbone_layer_count() -> None:
    holder = nn.Module()
    with torch.device("meta"):
        holder.model, _, _, spec = parse_model(CONFIGS / "yolov5s.yaml")
    holder.yaml = spec.data
    assert backbone_layer_count(holder) == 10  # YOLOv5's --freeze 10 is its backbone
    assert backbone_layer_count(model_for(CONFIGS / "yolov5s-mobilenetv2.yaml")) == 4
    assert backbone_layer_count(model_for(CONFIGS / "yolov5s-resnet18.yaml")) == 5


def test_freeze_backbone_and_yolov5_numbers() -> None:
    model = model_for(CONFIGS / "yolov5s-resnet18.yaml")
    try:
        frozen = freeze_layers(model, "backbone")
        expected = [n for n, _ in model.named_parameters() if int(n.split(".")[1]) < 5]
        assert frozen == expected and all(p.requires_grad for n, p in model.named_parameters() if n not in frozen)
        assert freeze_layers(model, 3) == [n for n in expected if int(n.split(".")[1]) < 3]
        assert freeze_layers(model, ["10"]) == [n for n, _ in model.named_parameters() if int(n.split(".")[1]) < 10]
        picked = freeze_layers(model, [0, 2])
        assert picked and {n.split(".")[1] for n in picked} == {"0", "2"}
        assert freeze_layers(model, 0) == [] and freeze_layers(model, None) == []
        for bad in ("neck", [1.5], 99, -1):
            with pytest.raises(FreezeSpecError):
                freeze_layers(model, bad)
    finally:
        freeze_layers(model, 0)


def test_frozen_batchnorm_stays_in_eval() -> None:
    model = model_for(CONFIGS / "yolov5s-resnet18.yaml")
    try:
        freeze_layers(model, "backbone")
        model.train()
        n = set_frozen_bn_eval(model)
        frozen_bn = model.model[1][0].cv1.bn
        neck_bn = model.model[6].bn
        assert n == sum(isinstance(m, nn.BatchNorm2d) for m in model.model[:5].modules())
        assert not frozen_bn.training and neck_bn.training
        before = frozen_bn.running_mean.clone(), neck_bn.running_mean.clone()
        model(torch.rand(1, 3, 64, 64))
        torch.testing.assert_close(frozen_bn.running_mean, before[0])
        assert not torch.equal(neck_bn.running_mean, before[1])
    finally:
        freeze_layers(model, 0)
        model.train()


@pytest.mark.parametrize("cfg, backbone, kind", [("configs/yolov5n.yaml", "", None),  # CSPDarknet rows
                                                 ("configs/yolov5n.yaml", "resnet18", None),  # ResNet rows
                                                 ("configs/yolov5n.yaml", "mobilenetv2", "MobileNetV2"),  # torchvision
                                                 ("configs/yolov5n.yaml", "convnext_atto", "Timm"),
                                                 ("configs/yolo11n.yaml", "", None)])
def test_every_backbone_kind_describes_its_maps_with_one_feature_info(cfg: str, backbone: str, kind) -> None:
    with no_pretrained():
        model = build_model(cfg, backbone=backbone or None)
    info = model.backbone_info()
    assert isinstance(info, FeatureInfo) and info.strides == (8, 16, 32) and info.levels == ("P3", "P4", "P5")
    neck_inputs = {i: model.layer_channels[i] for i in range(len(model.model))}
    assert all(neck_inputs[int(m.split(".")[1])] == c for m, c in zip(info.modules, info.channels))
    if kind:  # the block's own record is the same contract, with the module names inside the wrapped model
        block = next(m for m in model.model if m.type == kind)
        assert isinstance(block.spec, FeatureInfo) and block.spec.channels == info.channels
        assert block.spec.strides == info.strides and all(block.spec.modules)
    with pytest.raises(ValueError, match="expected one of each per map"):
        FeatureInfo(channels=(1, 2), strides=(8,), modules=("a",))
