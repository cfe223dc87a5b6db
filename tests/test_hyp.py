"""Hyperparameter files and the Hyp dataclass."""
from pathlib import Path

import pytest

from yolobone.utils.hyp import Hyp, HypError, load_hyp

HYP_DIR = Path(__file__).resolve().parents[1] / "configs" / "hyp"


def test_scratch_low_file_equals_dataclass_defaults():
    assert load_hyp(HYP_DIR / "hyp.scratch-low.yaml") == Hyp()
    assert load_hyp(None) == Hyp()


@pytest.mark.parametrize("name,expected", [
    ("hyp.scratch-med.yaml", dict(lrf=0.1, cls=0.3, obj=0.7, scale=0.9, mixup=0.1, copy_paste=0.0)),
    ("hyp.scratch-high.yaml", dict(lrf=0.1, cls=0.3, obj=0.7, scale=0.9, mixup=0.1, copy_paste=0.1)),
])
def test_med_and_high_differ_from_low_only_where_published(name, expected):
    hyp = load_hyp(HYP_DIR / name).to_dict()
    low = Hyp().to_dict()
    assert {k: v for k, v in hyp.items() if v != low[k]} == {k: v for k, v in expected.items() if v != low[k]}


@pytest.mark.parametrize("name,expected", [
    ("hyp.adam-short.yaml", dict(lr0=0.001, warmup_epochs=1.0)),
    ("hyp.quickstart.yaml", dict(lr0=0.001, warmup_epochs=1.0, cls=2.0)),
])
def test_short_schedule_files_differ_from_low_only_where_documented(name, expected):
    hyp = load_hyp(HYP_DIR / name).to_dict()
    assert {k: v for k, v in hyp.items() if v != Hyp().to_dict()[k]} == expected


def test_every_file_sets_every_key_once():
    for path in HYP_DIR.glob("hyp.*.yaml"):
        keys = [line.split(":")[0] for line in path.read_text().splitlines() if line and not line.startswith("#")]
        assert sorted(keys) == sorted(k for k in Hyp().to_dict() if k != "anchors"), path.name


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "h.yaml"
    path.write_text("lr0: 0.02\nlr_0: 0.1\n")
    with pytest.raises(HypError, match=r"h\.yaml: unknown hyperparameter 'lr_0'"):
        load_hyp(path)


def test_bad_values_are_rejected(tmp_path):
    with pytest.raises(HypError, match="'lr0' must be a finite number, got 'fast'"):
        load_hyp({"lr0": "fast"})
    with pytest.raises(HypError, match="'mosaic' is a probability"):
        load_hyp({"mosaic": 1.5})
    with pytest.raises(HypError, match="hyp file not found"):
        load_hyp(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr0: [0.1\n")
    with pytest.raises(HypError, match="bad.yaml:2: invalid YAML"):
        load_hyp(bad)


def test_dict_round_trip_and_overrides():
    hyp = load_hyp({"lr0": 0.02, "anchors": 3, "fliplr": 0})
    assert hyp.lr0 == 0.02 and hyp.anchors == 3.0 and hyp.fliplr == 0.0 and hyp.mosaic == 1.0
    assert load_hyp(hyp.to_dict()) == hyp and load_hyp(hyp) is not hyp


def test_ultralytics_file_holds_its_published_detection_defaults():
    hyp = load_hyp(HYP_DIR / "hyp.ultralytics.yaml").to_dict()
    published = dict(lr0=0.01, lrf=0.01, momentum=0.937, weight_decay=0.0005, warmup_epochs=3.0, warmup_momentum=0.8,
                     warmup_bias_lr=0.1, box=7.5, cls=0.5, dfl=1.5, hsv_h=0.015, hsv_s=0.7, hsv_v=0.4, degrees=0.0,
                     translate=0.1, scale=0.5, shear=0.0, perspective=0.0, flipud=0.0, fliplr=0.5, mosaic=1.0,
                     mixup=0.0, copy_paste=0.0)
    assert {k: hyp[k] for k in published} == published
    # the rest as scratch-low; Ultralytics' warmup has no minimum length (_get_warmup_iterations)
    assert {k: v for k, v in hyp.items() if v != Hyp().to_dict()[k]} == {"box": 7.5, "warmup_min_iters": 0.0}
