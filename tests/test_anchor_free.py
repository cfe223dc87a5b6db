"""Anchor-free YOLOv5u / YOLOv8 / YOLO11 models: the `Detect` row dispatch, scales, the head's outputs and decoding,
NMS without objectness, fuse, checkpoints, export and val/detect through the backends, and the backbone swap.

Parameter counts against Ultralytics are in tests/test_configs.py.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from tolerance import assert_close_scaled
from yolobone.engine.backends import TorchBackend, load_backend
from yolobone.engine.detect.nms import NMSInputError, non_max_suppression
from yolobone.models import build_model, get_block, load_model
from yolobone.models.blocks import Bottleneck
from yolobone.models.c2f import C3k, C3k2
from yolobone.models.freeze import freeze_layers
from yolobone.models.heads import Detect
from yolobone.models.heads_af import DFL, DetectAF
from yolobone.models.parse import load_model_yaml, parse_model
from yolobone.models.psa import C2PSA
from yolobone.models.registry import ModelConfigError
from yolobone.data.synthetic import SHAPE_NAMES
from yolobone.utils.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
ULTRALYTICS_YAMLS = Path(__file__).resolve().parent / "fixtures" / "ultralytics"
NC = len(SHAPE_NAMES)  # the synthetic set val/detect run on


@pytest.fixture(scope="module")
def yolo11n() -> nn.Module:
    torch.manual_seed(0)
    return build_model(CONFIGS / "yolo11n.yaml", nc=NC).eval()


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- building
def test_detect_row_without_anchors_builds_the_anchor_free_head() -> None:
    assert get_block("Detect", ["nc"]).cls is DetectAF
    assert get_block("Detect", ["nc", "anchors"]).cls is Detect
    assert get_block("Detect", ["nc", 3]).cls is Detect  # YOLOv5's anchor count form stays anchor-based
    assert get_block("Detect").cls is Detect


def test_head_attributes(yolo11n) -> None:
    head = yolo11n.detect
    assert isinstance(head, DetectAF) and head.anchor_free and yolo11n.anchor_free
    assert (head.nc, head.nl, head.reg_max, head.no) == (NC, 3, 16, NC + 64)
    assert head.stride.tolist() == [8.0, 16.0, 32.0]
    assert Detect.anchor_free is False


def test_class_branch_follows_the_family() -> None:
    """YOLO11 (C3k2 in the model) gets the depth-wise class branch, YOLOv8 / YOLOv5u the two 3x3 Convs."""
    with torch.device("meta"):
        v11 = parse_model(CONFIGS / "yolo11n.yaml", nc=NC)[0][-1]
        v8 = parse_model(CONFIGS / "yolov8n.yaml", nc=NC)[0][-1]
    assert isinstance(v11.cv3[0][0], nn.Sequential) and v11.cv3[0][0][0].conv.groups > 1
    assert v8.cv3[0][0].conv.kernel_size == (3, 3) and v8.cv3[0][0].conv.groups == 1


def test_c3k_switch_follows_the_scale() -> None:
    """Ultralytics turns c3k on for every C3k2 of the m/l/x scales; n/s keep the row's value."""
    with torch.device("meta"):
        n = parse_model(CONFIGS / "yolo11n.yaml")[0]
        m = parse_model(CONFIGS / "yolo11m.yaml")[0]
    assert isinstance(n[2], C3k2) and isinstance(n[2].m[0], Bottleneck)
    assert isinstance(n[6].m[0], C3k)  # the row says True
    assert isinstance(m[2].m[0], C3k)
    assert isinstance(n[10], C2PSA) and n[10].m[0].attn.num_heads == 2  # 128 channels // 64


def test_scale_from_file_name_then_scale_key(tmp_path, log_lines) -> None:
    family = (ULTRALYTICS_YAMLS / "yolo11.yaml").read_text()
    (tmp_path / "yolo11s.yaml").write_text(family + "scale: m\n")  # the file name wins over the key
    (tmp_path / "custom.yaml").write_text(family + "scale: m\n")
    (tmp_path / "plain.yaml").write_text(family)
    (tmp_path / "bad.yaml").write_text(family + "scale: q\n")
    counts = {}
    for name in ("yolo11s", "custom", "plain", "yolo11m", "yolo11n"):
        path = tmp_path / f"{name}.yaml" if (tmp_path / f"{name}.yaml").exists() else CONFIGS / f"{name}.yaml"
        with torch.device("meta"):
            layers, _, _, spec = parse_model(path)
        counts[name] = (n_params(layers), spec.data["scale"])
    assert counts["yolo11s"][1] == "s" and counts["custom"] == counts["yolo11m"]
    assert counts["plain"] == counts["yolo11n"]  # no scale anywhere: the first one, with a warning
    assert any("no model scale" in line for line in log_lines)
    with pytest.raises(ModelConfigError, match=r"bad.yaml: scale 'q' is not in its scales table \(n, s, m, l, x\)"):
        parse_model(tmp_path / "bad.yaml")


def test_max_channels_caps_the_width() -> None:
    """yolov8l caps 1024 at 512 (max_channels) before the width multiple: the P5 stage has 512 channels."""
    with torch.device("meta"):
        chs = parse_model(CONFIGS / "yolov8l.yaml")[2]
    assert chs[7] == 512 and chs[4] == 256


# ---------------------------------------------------------------------------------------------- forward
def test_forward_shapes_train_and_eval(yolo11n) -> None:
    x = torch.rand(2, 3, 64, 96)
    model = copy.deepcopy(yolo11n).train()
    maps = model(x)
    sizes = [(8, 12), (4, 6), (2, 3)]
    assert [tuple(m.shape) for m in maps] == [(2, 64 + NC, h, w) for h, w in sizes]
    with torch.no_grad():
        y, raw = yolo11n(x)
    assert tuple(y.shape) == (2, sum(h * w for h, w in sizes), 4 + NC)
    assert [tuple(m.shape) for m in raw] == [(2, 64 + NC, h, w) for h, w in sizes]
    assert float(y[..., 4:].min()) >= 0.0 and float(y[..., 4:].max()) <= 1.0
    assert float(y[..., 2:4].min()) >= 0.0  # widths and heights are sums of non-negative distances


def test_bias_init(yolo11n) -> None:
    head = build_model(CONFIGS / "yolov8n.yaml", nc=NC).detect
    for box, cls, s in zip(head.cv2, head.cv3, (8, 16, 32)):
        assert torch.all(box[-1].bias == 2.0)
        assert torch.allclose(cls[-1].bias, torch.full((NC,), math.log(5 / NC / (640 / s) ** 2)))


def _one_hot_sides(bins, reg_max: int = 16, peak: float = 40.0) -> torch.Tensor:
    """Box logits (4 * reg_max,) that put all probability on bins[side] (or split it evenly over a pair)."""
    logits = torch.zeros(4, reg_max)
    for side, b in enumerate(bins):
        for k in (b if isinstance(b, tuple) else (b,)):
            logits[side, k] = peak
    return logits.view(-1)


def test_decode_hand_made_input() -> None:
    head = DetectAF(nc=2, ch=(8, 8), reg_max=16, dw_cls=False)
    head.stride = torch.tensor([8.0, 16.0])
    p3 = torch.zeros(1, 64 + 2, 1, 2)  # one row of two cells at stride 8
    p4 = torch.zeros(1, 64 + 2, 1, 1)  # one cell at stride 16
    p3[0, :64, 0, 1] = _one_hot_sides((1, 0, 2, 3))  # cell (x 1, y 0), centre (1.5, 0.5)
    p3[0, 64:, 0, 1] = torch.tensor([0.0, math.log(3.0)])
    p4[0, :64, 0, 0] = _one_hot_sides(((2, 3), 0, 1, 1))  # left distance 2.5: half the mass on bins 2 and 3
    y = head.decode([p3, p4])
    assert tuple(y.shape) == (1, 3, 6)
    # cell (1.5, 0.5) - (1, 0) .. + (2, 3) -> x 0.5..3.5, y 0.5..3.5 -> xywh (2, 2, 3, 3) grid units x stride 8
    assert_close_scaled(y[0, 1], torch.tensor([16.0, 16.0, 24.0, 24.0, 0.5, 0.75]))
    # cell (0.5, 0.5) at stride 16: x -2.0..1.5, y 0.5..1.5 -> centre (-0.25, 1.0), size (3.5, 1.0) x 16
    assert_close_scaled(y[0, 2], torch.tensor([-4.0, 16.0, 56.0, 16.0, 0.5, 0.5]))
    # all-zero logits: the uniform distribution's mean 7.5 on every side
    assert_close_scaled(y[0, 0, :4], torch.tensor([4.0, 4.0, 15.0 * 8, 15.0 * 8]))


def test_dfl_is_the_expected_bin_and_frozen(yolo11n) -> None:
    dfl = DFL(4)
    x = torch.randn(2, 16, 5)
    p = x.view(2, 4, 4, 5).softmax(2)
    assert_close_scaled(dfl(x), (p * torch.arange(4.0).view(1, 1, 4, 1)).sum(2))
    assert not dfl.conv.weight.requires_grad and n_params(dfl) == 4
    assert tuple(dfl(torch.randn(1, 16, 3, 2)).shape) == (1, 4, 3, 2)
    model = copy.deepcopy(yolo11n)
    frozen = freeze_layers(model, [])  # training unfreezes everything else, never DFL's bins
    assert frozen == ["model.23.dfl.conv.weight"] and not model.detect.dfl.conv.weight.requires_grad


def test_fuse_keeps_outputs(yolo11n) -> None:
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = yolo11n(x)[0]
        fused = copy.deepcopy(yolo11n).fuse()
        got = fused(x)[0]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert_close_scaled(got, ref)


# ---------------------------------------------------------------------------------------------- NMS
def test_nms_without_objectness() -> None:
    pred = torch.tensor([[[50, 50, 20, 20, 0.9, 0.1],     # box A, class 0
                          [52, 50, 20, 20, 0.8, 0.05],    # overlaps A (IoU ~0.82), suppressed
                          [150, 150, 10, 10, 0.1, 0.6],   # far away, class 1
                          [300, 300, 10, 10, 0.2, 0.1]]])  # below conf 0.25
    det = non_max_suppression(pred, conf_thres=0.25, iou_thres=0.45, objectness=False)[0]
    assert det.shape == (2, 6)
    assert_close_scaled(det, torch.tensor([[40, 40, 60, 60, 0.9, 0], [145, 145, 155, 155, 0.6, 1]]))
    multi = non_max_suppression(pred, conf_thres=0.15, iou_thres=0.45, multi_label=True, objectness=False)[0]
    assert multi[:, 4].tolist() == pytest.approx([0.9, 0.6, 0.2]) and multi[:, 5].tolist() == [0, 1, 0]
    with pytest.raises(NMSInputError, match=r"\(B, N, 4 \+ nc\)"):
        non_max_suppression(pred[..., :4], objectness=False)


class _FixedAnchorFree(nn.Module):
    """A stand-in anchor-free detector whose decoded output is fixed rows [cx, cy, w, h, class scores...]."""

    anchor_free = True

    def __init__(self, rows: torch.Tensor):
        super().__init__()
        self.rows = rows

    def forward(self, x: torch.Tensor):
        return self.rows.expand(x.shape[0], -1, -1).clone(), []


def test_validate_reads_anchor_free_rows_without_objectness() -> None:
    """Column 4 is class 0's score here: read as objectness, the box would become class 0 at 0.05 x 0.95."""
    from yolobone.engine.detect.validator import validate

    rows = torch.tensor([[[32.0, 32.0, 20.0, 20.0, 0.05, 0.95]]])
    batch = (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.tensor([[0, 1, 0.5, 0.5, 20 / 64, 20 / 64]]),
             ["a.jpg"], [None])
    assert validate(_FixedAnchorFree(rows), [batch], names=["a", "b"]).map50 == pytest.approx(1.0)
    anchor_based = _FixedAnchorFree(rows)
    anchor_based.anchor_free = False
    assert validate(anchor_based, [batch], names=["a", "b"]).map50 == pytest.approx(0.0)


# ---------------------------------------------------------------------------------------------- checkpoints, backends
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, yolo11n) -> Path:
    path = tmp_path_factory.mktemp("af") / "yolo11n.pt"
    save_checkpoint({"model_yaml": yolo11n.yaml, "model": yolo11n.state_dict(), "nc": NC,
                     "names": list(SHAPE_NAMES), "task": "detect"}, path)
    return path


def test_checkpoint_loads_back_weights_only(checkpoint, yolo11n) -> None:
    model = load_model(checkpoint)
    assert isinstance(model.detect, DetectAF) and model.yaml["scale"] == "n"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)[0], yolo11n(x)[0])


def test_torch_and_onnx_backends(checkpoint, tmp_path) -> None:
    from yolobone.engine.export import ExportConfig, export_model

    torch_backend = TorchBackend.load(checkpoint, torch.device("cpu"))
    assert torch_backend.anchor_free and torch_backend.meta.anchor_free
    files = export_model(ExportConfig(weights=checkpoint, include=("onnx", "torchscript"), imgsz=64, dynamic=True))
    x = torch.rand(2, 3, 64, 96)
    ref = torch_backend(x)
    assert tuple(ref.shape) == (2, 126, 4 + NC)
    for f in files.values():
        backend = load_backend(f, "cpu")
        assert backend.anchor_free and backend.names == list(SHAPE_NAMES)
        assert_close_scaled(backend(x), ref, rel=1e-3)


def test_val_and_detect_take_the_model(checkpoint, tmp_path) -> None:
    from yolobone.data.synthetic import make_detection_dataset
    from yolobone.engine.detect.predict_run import DetectConfig, run_detect
    from yolobone.engine.detect.val_run import ValConfig, run_val

    data = make_detection_dataset(tmp_path / "data", n_train=2, n_val=4, imgsz=64, seed=0, max_objects=2,
                                  verbose=False)
    report = run_val(ValConfig(weights=checkpoint, data=data, imgsz=64, batch_size=4, device="cpu", workers=0,
                               plots=False, project=str(tmp_path / "val"), name="pt", compile="off"))
    assert 0.0 <= report.result.map50 <= 1.0
    out = run_detect(DetectConfig(weights=checkpoint, source=str(tmp_path / "data" / "images" / "val"), imgsz=64,
                                  conf_thres=0.001, device="cpu", project=str(tmp_path / "det"), name="pt",
                                  nosave=True, save_txt=True, compile="off"))
    labels = list(Path(out.save_dir).rglob("*.txt"))
    assert labels, "an untrained model still scores some boxes above conf 0.001"
    assert all(len(line.split()) == 5 for f in labels for line in f.read_text().splitlines())


# ---------------------------------------------------------------------------------------------- backbone swap
def test_resnet18_drops_into_the_yolo11_neck() -> None:
    model = build_model(CONFIGS / "yolo11n.yaml", nc=NC, backbone="resnet18").eval()
    assert isinstance(model.detect, DetectAF) and model.stride.tolist() == [8.0, 16.0, 32.0]
    types = [m.type for m in model.model]
    assert types[:5] == ["ResStem", "BasicBlock", "BasicBlock", "BasicBlock", "BasicBlock"]
    assert types[5:7] == ["SPPF", "C2PSA"]  # the neck's own SPPF and attention stay with the neck
    with torch.no_grad():
        y, maps = model(torch.rand(1, 3, 64, 64))
    assert tuple(y.shape) == (1, 64 + 16 + 4, 4 + NC)


def test_index_form_yaml_composes_like_the_level_form(tmp_path) -> None:
    """Ultralytics' own yolo11.yaml (SPPF and C2PSA under its backbone key) takes --backbone the same way."""
    cfg = tmp_path / "yolo11n.yaml"
    cfg.write_text((ULTRALYTICS_YAMLS / "yolo11.yaml").read_text())
    from yolobone.models.compose import compose

    pasted = compose(cfg, "resnet18").data
    ours = compose(CONFIGS / "yolo11n.yaml", "resnet18").data
    assert pasted["head"] == ours["head"] and pasted["backbone"] == ours["backbone"]
    assert load_model_yaml(cfg).data["scale"] == "n"


def test_yolo11n_resnet18_trains_and_exports(tmp_path) -> None:
    """The issue's swap end to end: `--cfg configs/yolo11n.yaml --backbone resnet18` trains (anchor-free loss) and
    its best.pt exports to ONNX with PyTorch's outputs."""
    from yolobone.data.synthetic import make_detection_dataset
    from yolobone.engine.export import ExportConfig, export_model
    from yolobone.engine.train import train

    data = make_detection_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=64, max_objects=2, min_size=0.25,
                                  max_size=0.6, verbose=False)
    result = train({"cfg": str(CONFIGS / "yolo11n.yaml"), "backbone": "resnet18", "data": str(data), "epochs": 1,
                    "imgsz": 64, "batch_size": 4, "device": "cpu", "workers": 0, "project": str(tmp_path),
                    "name": "train", "noplots": True, "seed": 0})
    model = load_model(result.best)
    assert isinstance(model.detect, DetectAF) and model.yaml["backbone_name"] == "resnet18"
    onnx_file = export_model(ExportConfig(weights=result.best, include=("onnx",), imgsz=64))["onnx"]
    x = torch.rand(1, 3, 64, 64)
    assert_close_scaled(load_backend(onnx_file, "cpu")(x), TorchBackend(model, torch.device("cpu"))(x), rel=1e-3)
