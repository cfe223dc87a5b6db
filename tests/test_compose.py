"""Backbone swap in one edit: necks that name P3/P4/P5, backbone files composed with any YOLOv5 neck, the one-line
errors of a composition, and blocks that declare how their repeats chain."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from yolobone.models import DetectionModel
from yolobone.models.compose import (BACKBONES_DIR, available_backbones, backbone_levels, compose, dump_model_yaml,
                            load_backbone, neck_rows)
from yolobone.models.loss import ComputeLoss
from yolobone.models.parse import load_model_yaml, parse_model
from yolobone.models.registry import ModelConfigError
from yolobone.models.yolo import main as yolo_main
from yolobone.utils.hyp import load_hyp

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BACKBONES = sorted(BACKBONES_DIR.glob("*.yaml"))
NECKS = ("yolov5n", "yolov5s", "yolov5m")
P6_NECKS = ("yolov5n6", "yolov5s6", "yolov5m6")  # for the backbones with a P6 stage (a P5 neck leaves it unused)
P6_BACKBONES = {b.stem for b in BACKBONES if 6 in backbone_levels(b.stem)}
# resnet101 costs as much as all the small backbones together (mostly torchvision's init of 44M weights) and swin_t's
# attention is slow on CPU: they run with the yolov5n neck only; resnet50 and efficientnet_b0 cover the same
# TorchVision rows with all three necks.
HEAVY_ONE_NECK = {"resnet101", "swin_t"}

# The YOLOv5s neck and head written for any backbone: backbone levels by name, the head's own rows by offset.
YOLOV5S_LEVEL_HEAD = [
    ["P5", 1, "SPPF", [1024, 5]],
    [-1, 1, "Conv", [512, 1, 1]],
    [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
    [[-1, "P4"], 1, "Concat", [1]],
    [-1, 3, "C3", [512, False]],
    [-1, 1, "Conv", [256, 1, 1]],
    [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
    [[-1, "P3"], 1, "Concat", [1]],
    [-1, 3, "C3", [256, False]],  # P3/8-small
    [-1, 1, "Conv", [256, 3, 2]],
    [[-1, -5], 1, "Concat", [1]],  # the Conv 256 1x1 above
    [-1, 3, "C3", [512, False]],  # P4/16-medium
    [-1, 1, "Conv", [512, 3, 2]],
    [[-1, -12], 1, "Concat", [1]],  # the Conv 512 1x1 (the neck's first Conv)
    [-1, 3, "C3", [1024, False]],  # P5/32-large
    [[-7, -4, -1], 1, "Detect", ["nc", "anchors"]],
]
V7_PARAMS = {"yolov5n": 1_872_157, "yolov5s": 7_235_389, "yolov5m": 21_190_557, "yolov5l": 46_563_709,
             "yolov5x": 86_749_405, "yolov5n6": 3_246_940, "yolov5s6": 12_626_620, "yolov5m6": 35_731_932,
             "yolov5l6": 76_770_172, "yolov5x6": 140_794_780}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_count(spec) -> int:
    with torch.device("meta"):
        return n_params(parse_model(spec)[0])


# ---- every backbone file x the n/s/m necks -------------------------------------------------------------------

@pytest.mark.parametrize("backbone", BACKBONES, ids=lambda p: p.stem)
def test_backbone_in_n_s_m_necks_trains_a_step(backbone: Path) -> None:
    """Strides 8/16/32 (and 64) measured at build, a forward + backward with finite gradients everywhere (64 px)."""
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.4], [1, 0, 0.3, 0.6, 0.2, 0.2]])
    p6 = backbone.stem in P6_BACKBONES
    strides = (8, 16, 32, 64) if p6 else (8, 16, 32)
    necks = P6_NECKS if p6 else NECKS[:1] if backbone.stem in HEAVY_ONE_NECK else NECKS
    for neck in necks:
        torch.manual_seed(0)
        spec = compose(CONFIGS / f"{neck}.yaml", backbone)
        model = DetectionModel(spec, nc=2, probe_size=64).train()
        assert model.stride.tolist() == list(strides), (neck, backbone.stem)
        assert model.yaml_spec.name == f"{neck}-{backbone.stem}"
        preds = model(torch.rand(2, 3, 64, 64))
        assert [tuple(p.shape) for p in preds] == [(2, 3, 64 // s, 64 // s, 7) for s in strides]
        loss, _ = ComputeLoss(model.detect, load_hyp(), imgsz=64)(preds, targets)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()), \
            f"{neck} + {backbone.stem}: a parameter without a finite gradient"


def test_p6_neck_needs_a_p6_backbone() -> None:
    assert P6_BACKBONES == {"cspdarknet6"} and backbone_levels("cspdarknet") == {1: 0, 2: 2, 3: 4, 4: 6, 5: 8}
    with pytest.raises(ModelConfigError) as e:
        meta_count(compose(CONFIGS / "yolov5s6.yaml", "resnet18"))
    msg = str(e.value)
    assert "\n" not in msg and msg.endswith("neck asks for P6; backbone resnet18 has P2, P3, P4, P5")
    assert "yolov5s6.yaml:26: layer 5 (SPPF)" in msg  # the neck file's own line for the row that asks
    spec = compose(CONFIGS / "yolov5s6.yaml", "cspdarknet6")
    model = DetectionModel(copy.deepcopy(spec.data) | {"width_multiple": 0.125}, nc=2, probe_size=128)
    assert model.stride.tolist() == [8.0, 16.0, 32.0, 64.0]


# ---- the YOLOv5 necks in level form ----------------------------------------------------------------------------

def test_level_form_yolov5s_equals_yolov5s_yaml() -> None:
    """The neck written with P-names and offsets + the CSPDarknet file is yolov5s.yaml: 7,235,389 parameters and,
    with the same weights, the same outputs."""
    ref_data = yaml.safe_load((CONFIGS / "yolov5s.yaml").read_text())
    data = {**ref_data, "backbone": load_backbone("cspdarknet").rows, "head": YOLOV5S_LEVEL_HEAD}
    assert neck_rows(load_model_yaml(CONFIGS / "yolov5s.yaml"))[0] == YOLOV5S_LEVEL_HEAD  # what --backbone builds
    torch.manual_seed(0)
    ref = DetectionModel(CONFIGS / "yolov5s.yaml").eval()
    model = DetectionModel(data).eval()
    assert n_params(model) == n_params(ref) == 7_235_389
    model.load_state_dict(ref.state_dict(), strict=True)  # same rows, same keys
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = ref(x)[0], model(x)[0]
    torch.testing.assert_close(got, expected, atol=1e-5 * max(1.0, float(expected.abs().max())), rtol=1e-5)
    assert model.model[-1].sources == [17, 20, 23] and model.model[12].sources == [11, 6]


@pytest.mark.parametrize("name", sorted(V7_PARAMS))
def test_stock_necks_with_cspdarknet_keep_yolov5_counts(name: str) -> None:
    backbone = "cspdarknet6" if name.endswith("6") else "cspdarknet"
    assert meta_count(compose(CONFIGS / f"{name}.yaml", backbone)) == V7_PARAMS[name]


def test_seed_style_index_yaml_equals_its_composition() -> None:
    """The hand-numbered ResNet18 config of earlier releases (index form) still builds, and is the same model as
    the composition that replaced it."""
    torch.manual_seed(0)
    seed = DetectionModel(FIXTURES / "yolov5s-resnet18-index.yaml", nc=3, probe_size=64).eval()
    composed = DetectionModel(CONFIGS / "yolov5s-resnet18.yaml", nc=3, probe_size=64).eval()
    assert n_params(seed) == n_params(composed) == 14_897_341 - 229_245 + 21_576  # Detect at nc=3
    composed.load_state_dict(seed.state_dict(), strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = seed(x)[0]
        torch.testing.assert_close(composed(x)[0], expected, atol=1e-5 * max(1.0, float(expected.abs().max())),
                                   rtol=1e-5)


def test_composition_file_equals_backbone_flag_and_dump_roundtrips(tmp_path: Path) -> None:
    by_file = load_model_yaml(CONFIGS / "yolov5s-resnet50.yaml")
    by_flag = compose(CONFIGS / "yolov5s.yaml", "resnet50")
    assert by_file.data == by_flag.data and by_file.name == "yolov5s-resnet50"
    assert by_file.data["backbone"] == load_backbone("resnet50").rows
    path = tmp_path / "dumped.yaml"
    path.write_text(dump_model_yaml(by_flag.data))
    assert load_model_yaml(path).data == by_flag.data  # the printed / saved YAML is loadable as --cfg
    # a composed model can be the neck of another composition
    assert compose(CONFIGS / "yolov5s-resnet50.yaml", "resnet18").data == compose(CONFIGS / "yolov5s.yaml",
                                                                                  "resnet18").data


def test_backbone_multiples_stay_with_the_backbone() -> None:
    """ResNet repeats are literal under every neck; CSPDarknet scales with the neck."""
    with torch.device("meta"):
        layers = parse_model(compose(CONFIGS / "yolov5n.yaml", "resnet34"))[0]
    assert [len(layers[i]) for i in range(1, 5)] == [3, 4, 6, 3]
    assert len(layers[5].cv2.conv.weight) == 256  # SPPF is the neck's: 1024 at width 0.25
    with torch.device("meta"):
        layers = parse_model(compose(CONFIGS / "yolov5m.yaml", "cspdarknet"))[0]
    assert [len(layers[i].m) for i in (2, 4, 6, 8)] == [2, 4, 6, 2]


# ---- one-line errors -----------------------------------------------------------------------------------------

def test_unknown_backbone_lists_the_available_ones() -> None:
    with pytest.raises(ModelConfigError, match=r"unknown backbone 'resnet5' \(closest: resnet50") as e:
        compose(CONFIGS / "yolov5s.yaml", "resnet5")
    assert all(name in str(e.value) for name in available_backbones())
    with pytest.raises(ModelConfigError, match="backbone file .*missing.yaml not found"):
        compose(CONFIGS / "yolov5s.yaml", "missing.yaml")


def test_backbone_and_composition_file_errors(tmp_path: Path) -> None:
    full = tmp_path / "full.yaml"
    full.write_text((CONFIGS / "yolov5s.yaml").read_text())
    with pytest.raises(ModelConfigError, match=r"holds only 'backbone:' rows .* found anchors, .*head"):
        compose(CONFIGS / "yolov5s.yaml", str(full))
    bad = tmp_path / "bad.yaml"
    bad.write_text("neck: yolov5s.yaml\nbackbone: resnet18\nhead: []\n")
    with pytest.raises(ModelConfigError, match="a composition file holds neck, backbone .* found head"):
        load_model_yaml(bad)
    rows = tmp_path / "levels-in-backbone.yaml"
    rows.write_text("backbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [P1, 1, Conv, [32, 3, 2]]\n")
    with pytest.raises(ModelConfigError, match=r"levels-in-backbone.yaml:3: layer 1 \(Conv\): `from` P1 names a "
                                               r"backbone level; levels are for head rows"):
        meta_count(compose(CONFIGS / "yolov5s.yaml", str(rows)))


def test_translation_refuses_a_row_that_is_not_a_level() -> None:
    d = yaml.safe_load((CONFIGS / "yolov5s.yaml").read_text())
    d["head"][2][0] = [-1, 5]  # row 5 is the stride-16 Conv, not the last row at stride 16 (row 6)
    with pytest.raises(ModelConfigError, match=r"layer 12: `from` 5 reads backbone row 5 \(stride 16, the last row "
                                               r"at that stride is 6\)"):
        compose(d, "resnet18")


def test_cli_prints_the_composed_yaml_table_and_summary(capsys: pytest.CaptureFixture) -> None:
    assert yolo_main(["--cfg", str(CONFIGS / "yolov5n.yaml"), "--backbone", "resnet18", "--imgsz", "64"]) == 0
    out = capsys.readouterr().out
    assert "backbone_name: resnet18" in out and "  - [[-1, P4], 1, Concat, [1]]" in out
    assert "  5                P5  1" in out  # the layer table shows the level a row reads
    assert out.strip().splitlines()[-1].startswith("yolov5n-resnet18 summary: ")
    assert yolo_main(["--cfg", str(CONFIGS / "yolov5n.yaml"), "--backbone", "resnet5"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown backbone 'resnet5'")


# ---- repeats -------------------------------------------------------------------------------------------------

def test_block_without_a_repeat_rule_cannot_be_repeated() -> None:
    d = {"nc": 2, "anchors": 1, "backbone": [[-1, 2, "HGStem", [16, 32]]],
         "head": [[-1, 1, "Conv", [8, 1, 1]], [[-1], 1, "Detect", ["nc", "anchors"]]]}
    with pytest.raises(ModelConfigError, match=r"layer 0 \(HGStem\): `number` 2 asks for 2 chained copies, but "
                                               r"HGStem declares no rule"):
        meta_count(d)
    d["backbone"] = [[-1, 1, "HGStem", [16, 32]], [-1, 2, "DWDown", [3, 2]]]  # declared: the same arguments
    with torch.device("meta"):
        layers, _, chs, _ = parse_model(d)
    assert len(layers[1]) == 2 and chs[1] == 32


def test_composition_file_names_a_shipped_neck_from_another_folder(tmp_path):
    """`neck: yolo11n.yaml` in a user's own folder: a neck not beside the file is a shipped config."""
    f = tmp_path / "yolo11n-resnet18.yaml"
    f.write_text("neck: yolo11n.yaml\nbackbone: resnet18\n")
    spec = load_model_yaml(f)
    assert spec.name == "yolo11n-resnet18" and spec.data["backbone_name"] == "resnet18"
    (tmp_path / "missing.yaml").write_text("neck: nope.yaml\nbackbone: resnet18\n")
    with pytest.raises(ModelConfigError, match="nope.yaml"):
        load_model_yaml(tmp_path / "missing.yaml")
