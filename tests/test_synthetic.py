"""Built-in synthetic datasets: determinism, layout, label validity, cache folder handling."""
from pathlib import Path

import numpy as np
import pytest

import yolobone.data.synthetic as synthetic
from yolobone.data.datasets import check_cls_dataset, check_dataset
from yolobone.data.synthetic import (SHAPE_NAMES, ensure_builtin_classification_dataset, ensure_builtin_dataset,
                             make_classification_dataset, make_detection_dataset)

TINY = dict(n_train=4, n_val=2, imgsz=64, verbose=False)


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _labels(root: Path, split: str = "train") -> list:
    files = sorted((root / "labels" / split).glob("*.txt"))
    return [np.array([line.split() for line in f.read_text().splitlines()], float).reshape(-1, 5) for f in files]


def test_detection_generator_is_byte_identical_for_a_seed(tmp_path):
    a = _files(make_detection_dataset(tmp_path / "a", seed=3, **TINY).parent)
    b = _files(make_detection_dataset(tmp_path / "b", seed=3, **TINY).parent)
    c = _files(make_detection_dataset(tmp_path / "c", seed=4, **TINY).parent)
    assert len(a) == 4 + 2 + 4 + 2 + 1  # images, labels, data.yaml
    assert a == b
    assert {k: v for k, v in a.items() if k.endswith(".jpg")} != {k: v for k, v in c.items() if k.endswith(".jpg")}


def test_detection_layout_yaml_and_labels(tmp_path):
    yaml_path = make_detection_dataset(tmp_path / "ds", n_train=12, n_val=3, imgsz=96, p_background=0.0,
                                       verbose=False)
    data = check_dataset(yaml_path)
    assert data["nc"] == len(SHAPE_NAMES) and data["names"] == list(SHAPE_NAMES)
    assert Path(data["train"]) == (tmp_path / "ds" / "images" / "train").resolve()
    labels = _labels(tmp_path / "ds")
    assert len(labels) == 12 and all(len(lb) >= 1 for lb in labels)  # p_background=0: every image has objects
    rows = np.concatenate(labels)
    assert set(np.unique(rows[:, 0])).issubset(set(range(len(SHAPE_NAMES))))
    x1, x2 = rows[:, 1] - rows[:, 3] / 2, rows[:, 1] + rows[:, 3] / 2
    y1, y2 = rows[:, 2] - rows[:, 4] / 2, rows[:, 2] + rows[:, 4] / 2
    assert x1.min() >= 0 and y1.min() >= 0 and x2.max() <= 1 and y2.max() <= 1
    assert (rows[:, 3:] > 0).all()


def test_detection_sizes_classes_and_backgrounds(tmp_path):
    root = make_detection_dataset(tmp_path / "ds", n_train=40, n_val=1, imgsz=128, verbose=False).parent
    labels = _labels(root)
    rows = np.concatenate(labels)
    side = rows[:, 3:].max(1)
    assert side.min() < 0.1 and side.max() > 0.3  # small to large
    assert len(np.unique(rows[:, 0])) == len(SHAPE_NAMES)
    assert max(len(lb) for lb in labels) >= 4
    only_bg = make_detection_dataset(tmp_path / "bg", n_train=3, n_val=1, imgsz=64, p_background=1.0,
                                     verbose=False).parent
    assert all(len(lb) == 0 for lb in _labels(only_bg))


def test_detection_generator_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="min_size"):
        make_detection_dataset(tmp_path, min_size=0.5, max_size=0.2, **TINY)
    with pytest.raises(ValueError, match="n_train"):
        make_detection_dataset(tmp_path, n_train=0, n_val=1, verbose=False)


def test_classification_layout_and_determinism(tmp_path):
    a = make_classification_dataset(tmp_path / "a", 2, 1, 48, seed=1, verbose=False)
    b = make_classification_dataset(tmp_path / "b", 2, 1, 48, seed=1, verbose=False)
    assert _files(a) == _files(b)
    for name in SHAPE_NAMES:
        assert len(list((a / "train" / name).glob("*.jpg"))) == 2
        assert len(list((a / "val" / name).glob("*.jpg"))) == 1
    info = check_cls_dataset(a)
    assert info["nc"] == len(SHAPE_NAMES) and sorted(info["names"]) == sorted(SHAPE_NAMES)


@pytest.fixture
def tiny_builtins(monkeypatch, tmp_path):
    monkeypatch.setenv("YOLOBONE_DATASETS", str(tmp_path / "cache"))
    monkeypatch.setitem(synthetic.BUILTIN_DETECTION, "shapes", dict(n_train=3, n_val=2, imgsz=64, seed=0))
    monkeypatch.setitem(synthetic.BUILTIN_CLASSIFICATION, "shapes-cls",
                        dict(n_train_per_class=1, n_val_per_class=1, imgsz=32, seed=0))
    return tmp_path / "cache"


def test_ensure_builtin_generates_once_then_on_version_change(tiny_builtins, monkeypatch):
    calls = []
    real = synthetic.make_detection_dataset
    monkeypatch.setattr(synthetic, "make_detection_dataset", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = ensure_builtin_dataset("shapes", verbose=False)
    assert path == tiny_builtins / "shapes" / "data.yaml" and path.is_file()
    assert (tiny_builtins / "shapes" / synthetic.MARKER).is_file()
    assert ensure_builtin_dataset("shapes", verbose=False) == path and len(calls) == 1
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    ensure_builtin_dataset("shapes", verbose=False)
    assert len(calls) == 2
    assert [p.name for p in tiny_builtins.iterdir()] == ["shapes"]  # no temp or stale folders left


def test_ensure_builtin_cleans_up_after_a_failure(tiny_builtins, monkeypatch):
    def broken(*a, **k):
        (Path(a[0]) / "partial.txt").write_text("x")
        raise RuntimeError("disk full")
    monkeypatch.setattr(synthetic, "make_detection_dataset", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_builtin_dataset("shapes", verbose=False)
    assert list(tiny_builtins.iterdir()) == []


def test_builtin_reached_from_yaml_key_and_bare_name(tiny_builtins, tmp_path):
    cfg = tmp_path / "shapes.yaml"
    cfg.write_text("builtin: shapes\nnc: 6\nnames: [circle, square, triangle, star, cross, ring]\n")
    data = check_dataset(cfg)
    assert Path(data["train"]).is_dir() and data["nc"] == 6 and data["builtin"] == "shapes"
    assert check_dataset("shapes")["val"] == data["val"]
    repo_cfg = Path(__file__).resolve().parents[1] / "configs" / "data" / "shapes.yaml"
    assert check_dataset(repo_cfg)["names"] == list(SHAPE_NAMES)
    cls_root = ensure_builtin_classification_dataset(verbose=False)
    assert check_cls_dataset("shapes-cls")["path"] == str(cls_root.resolve())


def test_builtin_names_mismatch_is_an_error(tiny_builtins, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("builtin: shapes\nnames: [a, b]\n")
    with pytest.raises(ValueError, match="do not match builtin"):
        check_dataset(cfg)
    with pytest.raises(ValueError, match="unknown built-in"):
        ensure_builtin_dataset("nope")
