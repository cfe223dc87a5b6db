"""Every torchvision classifier as a backbone: each model in torchvision.models.list_models() gives stride-8/16/32 maps
(or a listed subset, or a listed refusal); the unusual families (ceil-mode/unpadded CNNs, channels-last Swin, ViT,
MaxViT) produce those maps for real; a backbone without a stride-32 map gets P5 from a YAML row and trains."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from yolobone.models.backbones.features import StageFeatures, _map_stride, probe_features
from yolobone.models.backbones.torchvision_wrap import TorchVision
from yolobone.models.backbones.tv_adapters import ImageSizeError, SimplePyramid, SquarePadded, ViTMap, window_unit
from yolobone.models.parse import load_model_yaml, parse_model
from yolobone.models.registry import ModelConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def _all_models() -> list:
    import torchvision
    return torchvision.models.list_models(module=torchvision.models)


# Models that give fewer than P3/P4/P5, and models refused with the reason they are refused (none today: if a future
# torchvision adds one, it must be listed here with its one-line reason).
PARTIAL = {"squeezenet1_0": (8, 16), "squeezenet1_1": (8, 16)}  # no stride-32 map: the YAML adds P5
REFUSED: dict = {}


@pytest.mark.parametrize("name", _all_models())
def test_every_torchvision_classifier_gives_p3_p4_p5(name: str) -> None:
    if name in REFUSED:
        with pytest.raises(ModelConfigError, match=REFUSED[name]):
            probe_features(name)
        return
    spec = probe_features(name)  # built on the meta device, probed at 256x384
    assert spec.strides == PARTIAL.get(name, (8, 16, 32))
    assert len(spec.channels) == len(spec.strides) and all(c > 0 for c in spec.channels)
    assert set(spec.layouts) <= {"NCHW", "NHWC"} and len(spec.layouts) == len(spec.strides)


def test_listed_exceptions_are_real_model_names() -> None:
    assert set(PARTIAL) | set(REFUSED) <= set(_all_models())


# Real forward passes (random init) on a 96x128 image: every map has the probe's channels and lies on the exact
# ceil(H/s) x ceil(W/s) grid the detector expects, for the families the stage finder adapts (swin_t is run by its own
# test below).
REAL = ["squeezenet1_1", "alexnet", "inception_v3", "googlenet", "swin_v2_t", "maxvit_t", "vit_b_16",
        "mobilenet_v3_small"]
_BUILT: dict = {}


def backbone_for(name: str) -> TorchVision:
    """Each real backbone built once per session (random init, eval mode)."""
    if name not in _BUILT:
        torch.manual_seed(0)
        _BUILT[name] = TorchVision(3, name).eval()
    return _BUILT[name]


def _assert_on_grid(maps: list, spec, batch: int, h: int, w: int) -> None:
    assert [tuple(m.shape) for m in maps] == [(batch, c, math.ceil(h / s), math.ceil(w / s))
                                              for c, s in zip(spec.channels, spec.strides)]
    assert all(torch.isfinite(m).all() for m in maps)


@pytest.mark.parametrize("name", REAL)
def test_real_forward_matches_the_probe(name: str) -> None:
    backbone = backbone_for(name)
    with torch.no_grad():
        maps = backbone(torch.rand(1, 3, 96, 128))
    _assert_on_grid(maps, backbone.spec, 1, 96, 128)


def test_swin_channels_last_stages_are_permuted_not_reinterpreted() -> None:
    backbone = backbone_for("swin_t")
    assert backbone.spec.layouts == ("NHWC", "NHWC", "NCHW")
    x = torch.rand(1, 3, 64, 96)
    stages = nn.Sequential(*[backbone.body.get_submodule(f"features.{i}") for i in range(4)])  # the same modules
    with torch.no_grad():
        maps = backbone(x)
        raw = stages(x)  # (1, 8, 12, 192): channels-last
    _assert_on_grid(maps, backbone.spec, 1, 64, 96)
    torch.testing.assert_close(maps[0], raw.permute(0, 3, 1, 2))


def test_squeezenet_odd_maps_are_resampled_to_the_grid() -> None:
    backbone = backbone_for("squeezenet1_1")
    spec = backbone.spec
    assert not spec.exact and spec.channels == (256, 512) and spec.modules == ("features.7", "features")
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        raw = backbone.body(x)  # ceil-mode pooling: 15x15 and 7x7 for a 128 px image
        p3, p4 = backbone(x)
    assert [tuple(m.shape[-2:]) for m in raw] == [(15, 15), (7, 7)]
    torch.testing.assert_close(p4, F.interpolate(raw[1], size=(8, 8), mode="bilinear", align_corners=False))
    assert p3.shape[-2:] == (16, 16)


def test_inception_and_alexnet_stages() -> None:
    inception = probe_features("inception_v3")
    assert inception.modules == ("Mixed_5d", "Mixed_6e", "Mixed_7c") and inception.chain is not None
    assert "AuxLogits" not in inception.chain  # never run in eval mode, so not part of the cut network
    alexnet = probe_features("alexnet")  # its 6x6 adaptive pool has two strides on a non-square probe: no map
    assert alexnet.modules == ("features.4", "features.11", "features") and alexnet.channels == (192, 256, 256)


def test_map_stride_tells_layouts_apart() -> None:
    size = (256, 384)
    assert _map_stride((1, 96, 32, 48), size) == (8, "NCHW", True)
    assert _map_stride((1, 32, 48, 96), size) == (8, "NHWC", True)  # also a loose NCHW stride-4 reading: exact wins
    assert _map_stride((1, 64, 96, 96), size) == (4, "NHWC", True)
    assert _map_stride((1, 512, 15, 23), size) == (16, "NCHW", False)  # ceil-mode sizes round to the stride
    assert _map_stride((1, 256, 6, 6), size) is None  # a fixed-size pool: 256/6 and 384/6 differ


# ---- ViT ----------------------------------------------------------------------------------------------------

def _tiny_vit(patch: int, image: int):
    from torchvision.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    return VisionTransformer(image_size=image, patch_size=patch, num_layers=2, num_heads=2, hidden_dim=32,
                             mlp_dim=64).eval()


def test_vit_map_equals_torchvision_at_the_built_size_and_runs_at_others() -> None:
    vit = _tiny_vit(16, 64)
    trunk = ViTMap(vit, "tiny")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        tokens = vit._process_input(x)
        ref = vit.encoder(torch.cat([vit.class_token.expand(2, -1, -1), tokens], dim=1))[:, 1:]
        ours = trunk(x)
        assert ours.shape == (2, 32, 4, 4)
        torch.testing.assert_close(ours.flatten(2).transpose(1, 2), ref)
        assert trunk(torch.rand(1, 3, 96, 160)).shape == (1, 32, 6, 10)  # position embeddings interpolated
    with pytest.raises(ImageSizeError, match=r"tiny takes image sides that are multiples of 16 .*got 100x100"):
        trunk(torch.rand(1, 3, 100, 100))


def test_vit_patch_14_counts_as_stride_16_and_pyramid_channels() -> None:
    trunk = ViTMap(_tiny_vit(14, 56), "tiny14")
    with torch.no_grad():
        assert trunk.stride == 16 and trunk(torch.rand(1, 3, 64, 96)).shape == (1, 32, 4, 6)
    for stride, expected in ((16, [16, 32, 32]), (32, [8, 16, 32])):
        pyramid = SimplePyramid(32, stride, (8, 16, 32))
        maps = pyramid(torch.rand(1, 32, 128 // stride, 128 // stride))
        assert [m.shape[1] for m in maps] == expected == pyramid.out_channels()
        assert [m.shape[-1] for m in maps] == [16, 8, 4]
    assert probe_features("vit_h_14").channels == (640, 1280, 1280)


# ---- MaxViT -------------------------------------------------------------------------------------------------

def test_maxvit_pads_to_its_window_unit_and_crops_back() -> None:
    from torchvision.models.maxvit import MaxVit
    torch.manual_seed(0)
    net = MaxVit(input_size=(224, 224), stem_channels=8, partition_size=7, block_channels=[8, 8, 16, 16],
                 block_layers=[1, 1, 1, 1], head_dim=4, stochastic_depth_prob=0.0).eval()  # maxvit_t's layout, tiny
    chain = ["stem.0", "stem.1", "blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    padded = SquarePadded(StageFeatures(net, chain, chain[3:]), window_unit(net))
    assert padded.unit == 224
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        h = net.stem(x)
        ref = []
        for block in net.blocks:  # torchvision's forward, with the grids it built for 224 px
            h = block(h)
            ref.append(h)
        wide = padded(torch.rand(1, 3, 96, 288))  # padded to 448x448, then cropped
        ours = padded(x)  # the grids are set back for 224
    assert [tuple(m.shape[-2:]) for m in wide] == [(12, 36), (6, 18), (3, 9)]
    for a, b in zip(ours, ref[1:]):
        torch.testing.assert_close(a, b)


# ---- a backbone without P5 -----------------------------------------------------------------------------------

def test_squeezenet_config_and_missing_level_error() -> None:
    with torch.device("meta"):
        layers, _, channels = parse_model(CONFIGS / "yolov5s-squeezenet.yaml")[:3]
    assert channels[0] == [256, 512] and channels[3] == 512  # P5: the YAML's stride-2 Conv row
    d = load_model_yaml(CONFIGS / "yolov5s-squeezenet.yaml").data  # a composition: neck + backbone file
    d["backbone"][3] = [0, 1, "Index", [2]]  # asks the backbone for a P5 it does not have
    with pytest.raises(ModelConfigError, match=r"layer 3.*index 2 is out of range.*downsampling row"):
        parse_model(d)


def test_squeezenet_config_trains_one_epoch(tmp_path: Path) -> None:
    from yolobone.engine.train import train
    from yolobone.data.synthetic import make_detection_dataset
    data = make_detection_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=64, max_objects=2, min_size=0.3,
                                  max_size=0.6, verbose=False)
    cfg = load_model_yaml(CONFIGS / "yolov5s-squeezenet.yaml").data
    cfg["width_multiple"] = 0.125  # the neck; the backbone keeps its widths
    (tmp_path / "sq.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = train(dict(cfg=str(tmp_path / "sq.yaml"), data=str(data), epochs=1, batch_size=8, imgsz=64,
                        device="cpu", workers=0, project=str(tmp_path / "runs"), name="exp", noplots=True))
    assert result.epochs_completed == 1 and all(math.isfinite(v) for v in result.loss_history[0])
    assert (result.save_dir / "weights" / "last.pt").is_file()
