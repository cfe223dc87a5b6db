"""YOLOv7's published YAMLs (configs/yolov7/) build exactly, and its blocks fuse for deployment without changing
outputs.

Expected parameter counts were measured with YOLOv7's own `Model` (yolov7detect 1.0.1, `from yolov7.models.yolo
import Model`) on these same files at nc=80, before fusing.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Dict

import pytest
import torch
import torch.nn as nn

from tolerance import assert_close_scaled
from yolobone.models import ModelConfigError, build_model
from yolobone.models.parse import load_model_yaml, parse_model
from yolobone.models.yolov7_blocks import RepConv
from yolobone.models.yolov7_heads import IAuxDetect, IDetect

YOLOV7_DIR = Path(__file__).resolve().parents[1] / "configs" / "yolov7"
YOLOV7_PARAMS: Dict[str, int] = {
    "yolov7-tiny": 6_228_762, "yolov7": 37_622_682, "yolov7x": 71_347_394, "yolov7-w6": 82_312_436,
    "yolov7-e6": 111_898_292, "yolov7-d6": 154_709_364, "yolov7-e6e": 166_408_884,
}
COMPOSED = {"yolov7-tiny-resnet18": ("yolov7-tiny", "resnet18"), "yolov7-resnet50": ("yolov7", "resnet50")}
_INDEX_COMMENT = re.compile(r"^\s*\[.*\]\s*,?\s*#\s*(\d+)\b")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def slim(name: str, width: float = 0.125) -> dict:
    """The config at a fraction of its width (every row and block as written) so that CPU forwards stay fast."""
    d = copy.deepcopy(load_model_yaml(YOLOV7_DIR / f"{name}.yaml").data)
    d["width_multiple"] = width
    return d


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm statistics and affine terms, and implicit vectors, away from their identity initialisation, so
    that folding them is actually exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            elif hasattr(m, "implicit"):
                m.implicit.add_(torch.randn(m.implicit.shape, generator=g) * 0.2)
    return model


def test_every_yolov7_config_has_a_count() -> None:
    assert {p.stem for p in YOLOV7_DIR.glob("*.yaml")} == set(YOLOV7_PARAMS) | set(COMPOSED)


@pytest.mark.parametrize("name", sorted(YOLOV7_PARAMS))
def test_param_count_matches_yolov7(name: str) -> None:
    with torch.device("meta"):
        layers = parse_model(YOLOV7_DIR / f"{name}.yaml", nc=80)[0]
    assert n_params(layers) == YOLOV7_PARAMS[name]


@pytest.mark.parametrize("name", sorted(YOLOV7_PARAMS))
def test_row_index_comments_match(name: str) -> None:
    """The `# 37` comments of the pasted files name the row they sit on (nothing was dropped or added)."""
    path = YOLOV7_DIR / f"{name}.yaml"
    lines = path.read_text().splitlines()
    spec = load_model_yaml(path)
    indices = [(i, _INDEX_COMMENT.match(lines[line - 1])) for i, line in enumerate(spec.row_lines)]
    checked = [(i, int(m.group(1))) for i, m in indices if m]
    assert len(checked) >= 5 and all(i == n for i, n in checked), checked


def test_yolov7_tiny_builds_with_leaky_relu_and_detects() -> None:
    torch.manual_seed(0)
    model = build_model(YOLOV7_DIR / "yolov7-tiny.yaml", nc=3).eval()
    assert n_params(build_model(YOLOV7_DIR / "yolov7-tiny.yaml")) == YOLOV7_PARAMS["yolov7-tiny"]
    acts = {type(m.act) for m in model.modules() if hasattr(m, "act") and hasattr(m, "conv")}
    assert acts == {nn.LeakyReLU}
    assert isinstance(model.detect, IDetect) and model.stride.tolist() == [8.0, 16.0, 32.0]
    with torch.no_grad():
        pred, maps = model(torch.rand(1, 3, 64, 64))
    assert pred.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 8) and [m.shape[2] for m in maps] == [8, 4, 2]


@pytest.mark.parametrize("c1,c2,s,g", [(8, 8, 1, 1), (8, 8, 1, 2), (8, 16, 1, 1), (8, 16, 2, 1)])
def test_repconv_fuses_to_one_conv(c1: int, c2: int, s: int, g: int) -> None:
    torch.manual_seed(0)
    block = randomize_(RepConv(c1, c2, 3, s, None, g)).eval()
    assert (block.identity is not None) == (c1 == c2 and s == 1)
    x = torch.randn(2, c1, 12, 12)
    with torch.no_grad():
        ref = block(x)
        block.fuse_deploy()
        got = block(x)
    assert isinstance(block.fused, nn.Conv2d) and block.fused.kernel_size == (3, 3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert_close_scaled(got, ref, rel=1e-5)


@pytest.mark.parametrize("name,head", [("yolov7", IDetect), ("yolov7-w6", IAuxDetect)])
def test_deploy_fused_model_gives_the_same_outputs(name: str, head: type) -> None:
    """RepConv branches, BatchNorms and the implicit terms folded: same decoded predictions as unfused."""
    torch.manual_seed(0)
    model = randomize_(build_model(slim(name), nc=3)).eval()
    assert type(model.detect) is head
    size = int(model.stride.max()) * 2
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        ref = model(x)[0]
        model.fuse()
        got = model(x)[0]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(hasattr(m, "fused") for m in model.modules() if isinstance(m, RepConv))
    assert model.detect.ia is None and model.detect.im is None
    assert not any(hasattr(m, "implicit") for m in model.modules())
    assert_close_scaled(got, ref, rel=1e-4)


def test_aux_head_trains_on_main_and_auxiliary_maps() -> None:
    torch.manual_seed(0)
    model = build_model(slim("yolov7-w6"), nc=3).train()
    maps = model(torch.rand(1, 3, 128, 128))
    assert len(maps) == 8 and [m.shape[2] for m in maps] == [16, 8, 4, 2] * 2
    assert all(m.shape[-1] == 8 for m in maps)
    model.eval()
    with torch.no_grad():
        pred, main = model(torch.rand(1, 3, 128, 128))
    assert len(main) == 4 and pred.shape == (1, 3 * (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2), 8)


def test_yolov7_tiny_exports_to_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from yolobone.engine.backends import load_backend, model_meta
    from yolobone.engine.export.onnx_format import export_onnx
    from yolobone.engine.export.prepare import dummy_input, export_ready

    torch.manual_seed(0)
    model = randomize_(build_model(YOLOV7_DIR / "yolov7-tiny.yaml", nc=2))
    model = export_ready(model, torch.device("cpu"), half=False)
    assert model.detect.ia is None  # export_ready fuses, implicit terms included
    size = (64, 64)
    x = dummy_input(1, size, torch.device("cpu"), False) + torch.rand(1, 3, *size)
    with torch.no_grad():
        ref = model(x)
    path = export_onnx(model, x, tmp_path / "yolov7-tiny.onnx", model_meta(model, imgsz=size, dynamic=False))
    assert_close_scaled(load_backend(path, "cpu")(x), ref, rtol=0.0)


def test_yolov7_block_errors_name_the_problem() -> None:
    d = slim("yolov7-e6e")
    d["backbone"][23] = [[-1, -12], 1, "Shortcut", [1]]  # 160 + 64 channels
    with pytest.raises(ModelConfigError,
                       match=r"layer 23: Shortcut adds two inputs with equal channels, got inputs with \[24, 40\]"):
        parse_model(d)
    d = slim("yolov7-w6")
    d["head"][-1][0] = d["head"][-1][0][:-1]
    with pytest.raises(ModelConfigError, match="IAuxDetect needs the main inputs then as many auxiliary inputs"):
        parse_model(d)
    d = slim("yolov7-w6")
    d["backbone"][0] = [-1, 1, "ReOrg", [2]]
    with pytest.raises(ModelConfigError, match="ReOrg takes no arguments"):
        parse_model(d)


def test_neck_on_its_own_backbone_is_the_published_model(tmp_path: Path) -> None:
    """yolov7.yaml's backbone rows as a backbone file under its own neck: the neck's reads of rows 24, 37, 50
    become P3, P4, P5 (row 40, a stride-16 branch after the stride-32 max-pool, is not P4) and the model is
    yolov7 again, parameter for parameter."""
    import yaml
    from yolobone.models.compose import with_backbone

    own = tmp_path / "elan.yaml"
    own.write_text(yaml.safe_dump({"backbone": load_model_yaml(YOLOV7_DIR / "yolov7.yaml").data["backbone"]}))
    spec = load_model_yaml(with_backbone(YOLOV7_DIR / "yolov7.yaml", str(own)))
    froms = [row[0] for row in spec.data["head"]]
    assert froms[0] == "P5" and "P4" in froms and "P3" in froms
    with torch.device("meta"):
        assert n_params(parse_model(spec, nc=80)[0]) == YOLOV7_PARAMS["yolov7"]


@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_composed_yolov7_matches_cli_backbone_swap(name: str) -> None:
    """configs/yolov7/<neck>-<backbone>.yaml is `--cfg <neck>.yaml --backbone <backbone>`, reading P3-P5."""
    from yolobone.models.compose import with_backbone

    neck, backbone = COMPOSED[name]
    spec = load_model_yaml(YOLOV7_DIR / f"{name}.yaml")
    swapped = load_model_yaml(with_backbone(YOLOV7_DIR / f"{neck}.yaml", backbone))
    assert spec.data["head"] == swapped.data["head"] and spec.data["backbone"] == swapped.data["backbone"]
    assert {r[0] for r in spec.data["head"] if isinstance(r[0], str)} == {"P3", "P4", "P5"}


def test_yolov7_tiny_on_resnet18_runs_and_fuses() -> None:
    torch.manual_seed(0)
    model = randomize_(build_model(YOLOV7_DIR / "yolov7-tiny-resnet18.yaml", nc=2)).eval()
    assert isinstance(model.detect, IDetect) and model.stride.tolist() == [8.0, 16.0, 32.0]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[0]
        model.fuse()
        got = model(x)[0]
    assert ref.shape == (1, 3 * (64 + 16 + 4), 7)
    assert_close_scaled(got, ref, rel=1e-4)


YOLOV7_HYP_CHANGES = {  # YOLOv7's hyp.scratch.* against our scratch-low, plus its 4/9-image mosaic split
    "tiny": {"mixup": 0.05, "paste_in": 0.05},
    "p5": {"lrf": 0.1, "cls": 0.3, "obj": 0.7, "translate": 0.2, "scale": 0.9, "mixup": 0.15, "paste_in": 0.15},
    "p6": {"lrf": 0.2, "cls": 0.3, "obj": 0.7, "translate": 0.2, "scale": 0.9, "mixup": 0.15, "paste_in": 0.15}}


@pytest.mark.parametrize("name", sorted(YOLOV7_HYP_CHANGES))
def test_yolov7_hyp_files_differ_from_scratch_low_where_yolov7_does(name: str) -> None:
    from yolobone.utils.hyp import Hyp, load_hyp

    hyp = load_hyp(YOLOV7_DIR.parent / "hyp" / f"hyp.yolov7-scratch-{name}.yaml").to_dict()
    assert {k: v for k, v in hyp.items() if v != Hyp().to_dict()[k]} == \
        {**YOLOV7_HYP_CHANGES[name], "loss_ota": 1.0, "mosaic9": 0.2, "warmup_min_iters": 1000}


@pytest.mark.parametrize("name,loss_ota", [("yolov7-tiny", 0.0), ("yolov7-tiny", 1.0), ("yolov7-w6", 0.0),
                                           ("yolov7-w6", 1.0)])
def test_training_loss_follows_hyp_loss_ota(name: str, loss_ota: float) -> None:
    """DetectTask.setup_loss: YOLOv7's OTA loss when the hyp says loss_ota: 1 (ComputeLossAuxOTA on IAuxDetect's lead
    and auxiliary maps), else YOLOv5's (IAuxDetect: lead maps only)."""
    from types import SimpleNamespace

    from yolobone.engine.detect.task import DetectTask
    from yolobone.models.loss import ComputeLoss
    from yolobone.models.loss_ota import ComputeLossAuxOTA, ComputeLossOTA
    from yolobone.utils.hyp import Hyp

    torch.manual_seed(0)
    model = build_model(slim(name), nc=2).train()
    t = SimpleNamespace(model=model, hyp=Hyp(loss_ota=loss_ota), imgsz=128, opt=SimpleNamespace(label_smoothing=0.0),
                        dist=SimpleNamespace(distributed=False, world_size=1))
    setup = DetectTask.setup_loss(DetectTask.__new__(DetectTask), t)
    aux = isinstance(model.detect, IAuxDetect)
    assert type(setup.loss) is ((ComputeLossAuxOTA if aux else ComputeLossOTA) if loss_ota else ComputeLoss)
    maps = model(torch.rand(2, 3, 128, 128))
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.3], [1, 0, 0.4, 0.6, 0.2, 0.4]])
    total, items = setup.criterion(maps, targets)
    total.backward()
    assert torch.isfinite(total) and items.shape == (3,)
    if aux:  # with loss_ota both heads learn; the eval-mode lead maps alone give the validation loss
        trained = [c.weight.grad is not None and bool(c.weight.grad.abs().sum() > 0) for c in model.detect.m2]
        assert trained == [bool(loss_ota)] * 4
        assert torch.isfinite(setup.loss([m.detach() for m in maps[:4]], targets)[0])
