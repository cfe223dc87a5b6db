"""timm backbones: three families train an epoch on built-in data, channels/strides come from feature_info,
pretrained weights load offline from a file the test writes, and bad names / missing weights fail in one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from yolobone.engine.train import train
from yolobone.models import DetectionModel, load_model
from yolobone.models.backbones.pretrained import PretrainedWeightsError
from yolobone.models.backbones.timm_wrap import Timm, timm_features
from yolobone.models.compose import compose, load_backbone
from yolobone.models.parse import load_model_yaml
from yolobone.models.registry import ModelConfigError
from yolobone.data.synthetic import make_detection_dataset

timm = pytest.importorskip("timm")
ROOT = Path(__file__).resolve().parents[1]
NO_AUG = dict(mosaic=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, fliplr=0.0, translate=0.0, scale=0.0, warmup_epochs=0.0)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("timm")
    data = make_detection_dataset(root / "data", n_train=8, n_val=4, imgsz=64, max_objects=3, min_size=0.2,
                                  max_size=0.6, verbose=False)
    neck = yaml.safe_load((ROOT / "configs/yolov5n.yaml").read_text())
    neck["width_multiple"] = 0.125
    (root / "neck.yaml").write_text(yaml.safe_dump(neck, sort_keys=False))
    return {"root": root, "data": str(data), "neck": str(root / "neck.yaml")}


@pytest.mark.parametrize("name", ["resnet18d", "mobilenetv3_small_100", "convnext_atto"])
def test_timm_backbone_trains_an_epoch(work, name: str) -> None:
    """ResNet-D, MobileNetV3 and ConvNeXt backbones (configs/backbones/<name>.yaml) under a tiny YOLOv5n neck."""
    r = train(dict(cfg=work["neck"], backbone=name, data=work["data"], epochs=1, batch_size=8, imgsz=64,
                   device="cpu", workers=0, hyp=NO_AUG, project=str(work["root"] / "runs"), name=name, noplots=True))
    assert r.last.is_file()
    saved = load_model_yaml(r.save_dir / "model.yaml")  # the composed YAML is in the run folder ...
    ckpt = torch.load(r.last, map_location="cpu", weights_only=True)
    assert ckpt["model_yaml"]["backbone_name"] == name == saved.data["backbone_name"]  # ... and in the checkpoint
    assert ckpt["model_yaml"]["backbone"] == saved.data["backbone"] == load_backbone(name).rows
    model = load_model(r.last)  # val/detect need nothing but the checkpoint
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    with torch.no_grad():
        decoded, _ = model(torch.rand(1, 3, 64, 64))
    assert torch.isfinite(decoded).all()


def test_feature_info_picks_strides_8_16_32_or_out_indices() -> None:
    assert timm_features("convnext_atto").channels == (80, 160, 320)
    spec = timm_features("resnet18d", out_indices=(1, 2, 3, 4))
    assert spec.channels == (64, 128, 256, 512) and spec.strides == (4, 8, 16, 32)
    rows = [[-1, 1, "Timm", ["resnet18d", False, [1, 2, 3, 4]]]] + [[0, 1, "Index", [i]] for i in range(4)]
    d = {**yaml.safe_load((ROOT / "configs/yolov5-p2.yaml").read_text()), "width_multiple": 0.125}
    spec = compose(d, _backbone_file(rows))
    model = DetectionModel(spec, nc=2, probe_size=64)
    assert model.stride.tolist() == [4.0, 8.0, 16.0, 32.0]  # the P2 neck reads the P2 level out_indices added


def _backbone_file(rows):
    """A backbone file's content with other rows (what editing configs/backbones/*.yaml gives)."""
    b = load_backbone("convnext_atto")
    b.rows = rows
    return b


def _write_full_state(tmp_path: Path, name: str, **tweak) -> Path:
    torch.manual_seed(1)
    state = timm.create_model(name).state_dict()  # the full classifier's keys, as timm's checkpoints hold them
    for key, value in tweak.items():
        state[key] = value
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    return path


def test_pretrained_from_a_local_file_and_the_report(tmp_path: Path, log_lines, pretrained_on) -> None:
    path = _write_full_state(tmp_path, "convnext_atto")
    state = torch.load(path, weights_only=True)
    block = Timm(3, "convnext_atto", str(path))
    own = block.body.state_dict()
    assert own and all(torch.equal(t, state[k.replace("stages_", "stages.").replace("stem_", "stem.")])
                       for k, t in own.items())
    rows = [[-1, 1, "Timm", ["convnext_atto", str(path)]]] + [[0, 1, "Index", [i]] for i in range(3)]
    spec = compose(ROOT / "configs/yolov5n.yaml", _backbone_file(rows))
    DetectionModel(spec, nc=2, probe_size=64)
    report = [line for line in log_lines if line.startswith("pretrained: ")][-1]
    assert report == (f"pretrained: backbone convnext_atto: {len(own)}/{len(own)} tensors from file {path}; "
                      f"neck + head: 0/163, random init")


def test_pretrained_weights_that_do_not_fit(tmp_path: Path, pretrained_on) -> None:
    path = _write_full_state(tmp_path, "convnext_atto", **{"stem.0.weight": torch.zeros(40, 3, 2, 2)})
    with pytest.raises(PretrainedWeightsError, match=r"weights do not fit the backbone \(0 missing, 1 of another "
                                                     r"shape: shape mismatch \['stem.0.weight"):
        Timm(3, "convnext_atto", str(path))
    with pytest.raises(PretrainedWeightsError, match="weights file .*missing.pth not found"):
        Timm(3, "convnext_atto", str(tmp_path / "missing.pth"))


def test_pretrained_true_reads_the_caches_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   pretrained_on) -> None:
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)  # an empty HF cache
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # torch.hub.get_dir() -> tmp_path/hub
    with pytest.raises(PretrainedWeightsError) as e:
        Timm(3, "convnext_atto", True)
    msg = str(e.value)
    assert "\n" not in msg and "not cached and could not be downloaded (YOLOBONE_OFFLINE is set)" in msg
    assert msg.endswith("or train from scratch with --pretrained false (weights: false in the YAML)")
    assert "huggingface.co/timm/convnext_atto.d2_in1k" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    url = timm.models.get_pretrained_cfg("convnext_atto").url
    cached = tmp_path / "hub" / "checkpoints" / Path(url).name
    cached.parent.mkdir(parents=True)
    _write_full_state(tmp_path, "convnext_atto").rename(cached)
    block = Timm(3, "convnext_atto", True)
    assert block.loaded_weights.origin == f"file {cached}" and block.loaded_weights.unused == 4  # head.*


def test_unknown_and_unsupported_timm_models(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelConfigError, match=r"unknown timm model 'convnext_atoo' \(closest: convnext_atto"):
        timm_features("convnext_atoo")
    with pytest.raises(ModelConfigError, match=r"timm mixer_s16_224: its features are at strides \[16, 16, 16\], "
                                               r"none at 8; it cannot feed P3/P4/P5"):
        timm_features("mixer_s16_224")

    def no_features(*args, **kwargs):
        raise RuntimeError("features_only not implemented for Vision Transformer models.")
    monkeypatch.setattr(timm, "create_model", no_features)
    with pytest.raises(ModelConfigError, match=r"^timm model 'vit_tiny_patch16_224' does not support features_only"):
        timm_features("vit_tiny_patch16_224", (("img_size", 64),))
