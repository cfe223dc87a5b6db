"""Data YAML checks, label checking and its cache, DetectionDataset items and batches, create_dataloader."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist

import yolobone.data.datasets as datasets
import yolobone.data.label_check as label_check
from yolobone.utils.boxes import scale_boxes, xywhn2xyxy
from yolobone.data.datasets import (DatasetError, DetectionDataset, check_dataset, create_dataloader, img2label_paths,
                            list_image_files)
from yolobone.data.synthetic import make_detection_dataset

NC = 6


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A tiny synthetic set (square and 4:3 / 3:4 images); returns its data.yaml."""
    return make_detection_dataset(tmp_path_factory.mktemp("shapes"), n_train=12, n_val=9, imgsz=96, verbose=False)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _jpg(path: Path, h: int = 64, w: int = 80, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    cv2.imwrite(str(path), im)
    return path


def _small_set(root: Path, n: int = 2) -> Path:
    for i in range(n):
        _jpg(root / "images" / "train" / f"{i}.jpg", seed=i)
        _jpg(root / "images" / "val" / f"{i}.jpg", seed=10 + i)
        _write(root / "labels" / "train" / f"{i}.txt", "0 0.5 0.5 0.2 0.2\n")
    return root


# ---------------------------------------------------------------------------------------------- check_dataset
def test_check_dataset_resolves_relative_to_yaml_folder(tmp_path, monkeypatch):
    root = _small_set(tmp_path / "data" / "ds")
    cfg = _write(tmp_path / "data" / "ds.yaml", "path: ds\ntrain: images/train\nval: [images/val]\n"
                                                "names: {0: cat, 1: dog}\n")
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working folder
    data = check_dataset(cfg)
    assert data["path"] == str(root.resolve())
    assert data["train"] == str(root.resolve() / "images" / "train")
    assert data["val"] == [str(root.resolve() / "images" / "val")]
    assert data["names"] == ["cat", "dog"] and data["nc"] == 2 and data["test"] is None


def test_check_dataset_accepts_dict_and_txt_lists(tmp_path):
    root = _small_set(tmp_path)
    _write(root / "train.txt", "./images/train/0.jpg\nimages/train/1.jpg\n")
    data = check_dataset({"path": str(root), "train": "train.txt", "val": "images/val", "nc": 1, "names": ["x"]})
    assert data["train"] == str(root / "train.txt")
    assert list_image_files(data["train"]) == [str(root / "images" / "train" / f"{i}.jpg") for i in range(2)]


def test_check_dataset_error_missing_yaml(tmp_path):
    with pytest.raises(DatasetError, match="data YAML not found: .*nope.yaml"):
        check_dataset(tmp_path / "nope.yaml")


def test_check_dataset_error_bad_yaml_syntax(tmp_path):
    cfg = _write(tmp_path / "bad.yaml", "train: a\nval: [b\nnames: [x]\n")
    with pytest.raises(DatasetError, match=r"bad.yaml:\d+: invalid YAML"):
        check_dataset(cfg)


@pytest.mark.parametrize("key", ["train", "val"])
def test_check_dataset_error_missing_split_key(tmp_path, key):
    _small_set(tmp_path)
    text = {"train": "val: images/val\nnames: [a]\n", "val": "train: images/train\nnames: [a]\n"}[key]
    with pytest.raises(DatasetError, match=f"missing key '{key}'"):
        check_dataset(_write(tmp_path / "d.yaml", text))


def test_check_dataset_error_missing_names(tmp_path):
    _small_set(tmp_path)
    with pytest.raises(DatasetError, match="missing key 'names'"):
        check_dataset(_write(tmp_path / "d.yaml", "train: images/train\nval: images/val\n"))


def test_check_dataset_error_nc_names_mismatch(tmp_path):
    _small_set(tmp_path)
    with pytest.raises(DatasetError, match="nc is 3 but names has 2 entries"):
        check_dataset(_write(tmp_path / "d.yaml", "train: images/train\nval: images/val\nnc: 3\nnames: [a, b]\n"))


def test_check_dataset_error_bad_names_dict(tmp_path):
    _small_set(tmp_path)
    with pytest.raises(DatasetError, match="'names' dict keys must be 0..1"):
        check_dataset(_write(tmp_path / "d.yaml", "train: images/train\nval: images/val\nnames: {0: a, 2: b}\n"))


def test_check_dataset_error_missing_split_path(tmp_path):
    _small_set(tmp_path)
    with pytest.raises(DatasetError, match="'val' path not found: .*images/missing"):
        check_dataset(_write(tmp_path / "d.yaml", "train: images/train\nval: images/missing\nnames: [a]\n"))


def test_check_dataset_error_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="'path' folder not found"):
        check_dataset(_write(tmp_path / "d.yaml", "path: nowhere\ntrain: a\nval: b\nnames: [a]\n"))


def test_check_dataset_error_empty_split(tmp_path):
    _small_set(tmp_path)
    (tmp_path / "images" / "empty").mkdir()
    _write(tmp_path / "images" / "empty" / "notes.txt", "no images here")
    with pytest.raises(DatasetError, match="'val' has no images"):
        check_dataset(_write(tmp_path / "d.yaml", "train: images/train\nval: images/empty\nnames: [a]\n"))


def test_dataset_error_is_one_line_value_error(tmp_path):
    with pytest.raises(ValueError) as e:
        DetectionDataset(tmp_path / "missing")
    assert "\n" not in str(e.value) and "does not exist" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        DetectionDataset(tmp_path / "empty")


def test_img2label_paths_replaces_last_images_folder():
    sep = os.sep
    paths = [f"{sep}a{sep}images{sep}b{sep}images{sep}x.jpg", f"{sep}a{sep}pics{sep}y.png"]
    assert img2label_paths(paths) == [f"{sep}a{sep}images{sep}b{sep}labels{sep}x.txt", f"{sep}a{sep}pics{sep}y.txt"]


# ---------------------------------------------------------------------------------------------- label checks
@pytest.fixture
def messy(tmp_path) -> Path:
    """Images folder with every kind of problem the label check must survive."""
    img, lbl = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    for name in ("good", "malformed", "bigcls", "dups", "outside", "polygon", "empty", "nolabel", "truncated"):
        _jpg(img / f"{name}.jpg", seed=len(name))
    (img / "corrupt.jpg").write_bytes(b"this is not an image" * 20)
    data = (img / "truncated.jpg").read_bytes()
    (img / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (img / "truncated.jpg").chmod(0o444)  # read only: the scan must not even try to write it
    _write(lbl / "good.txt", "1 0.5 0.5 0.2 0.2\n")
    _write(lbl / "truncated.txt", "1 0.5 0.5 0.2 0.2\n")
    _write(lbl / "corrupt.txt", "1 0.5 0.5 0.2 0.2\n")
    _write(lbl / "malformed.txt", "0 0.5 0.5 0.2\n2 0.4 0.4 0.1 0.1\nfoo 0.1 0.1 0.1 0.1\n")
    _write(lbl / "bigcls.txt", "9 0.5 0.5 0.2 0.2\n3 0.3 0.3 0.1 0.1\n")
    _write(lbl / "dups.txt", "4 0.5 0.5 0.2 0.2\n4 0.5 0.5 0.2 0.2\n5 0.2 0.2 0.1 0.1\n")
    _write(lbl / "outside.txt", "1 1.5 0.5 0.1 0.1\n1 1.005 0.5 0.1 0.1\n2 0.95 0.5 0.3 0.2\n")
    _write(lbl / "polygon.txt", "2 0.1 0.1 0.3 0.1 0.3 0.4\n")
    _write(lbl / "empty.txt", "")
    return img


def test_messy_dataset_loads_and_names_every_problem(messy, log_lines):
    ds = DetectionDataset(messy, img_size=64, nc=NC, prefix="train: ")
    names = [Path(f).stem for f in ds.im_files]
    assert "corrupt" not in names and len(ds) == 9
    by_file = {}
    for f, why in ds.problems:
        by_file.setdefault(Path(f).name, []).append(why)
    assert any("corrupt image" in w for w in by_file["corrupt.jpg"])
    assert any("truncated JPEG: used as decoded" in w for w in by_file["truncated.jpg"])
    assert any("line 1: 4 values" in w for w in by_file["malformed.txt"])
    assert any("line 3: not numbers" in w for w in by_file["malformed.txt"])
    assert any("class 9 >= nc 6" in w for w in by_file["bigcls.txt"])
    assert any("1 duplicate rows removed" in w for w in by_file["dups.txt"])
    assert any("line 1: coordinates outside [0, 1]" in w for w in by_file["outside.txt"])
    assert any("line 2: coordinates slightly outside [0, 1], clipped" in w for w in by_file["outside.txt"])
    assert by_file["polygon.txt"] == ["line 1: 7 values read as a 3-point polygon (cls x1 y1 x2 y2 x3 y3), not as a "
                                      "box (cls cx cy w h has 5)"]
    assert not {"good.txt", "empty.txt", "good.jpg"} & set(by_file)

    labels = {Path(f).stem: lb for f, lb in zip(ds.im_files, ds.labels)}
    np.testing.assert_allclose(labels["malformed"], [[2, 0.4, 0.4, 0.1, 0.1]])
    np.testing.assert_allclose(labels["bigcls"], [[3, 0.3, 0.3, 0.1, 0.1]])
    np.testing.assert_allclose(labels["dups"], [[4, 0.5, 0.5, 0.2, 0.2], [5, 0.2, 0.2, 0.1, 0.1]])
    np.testing.assert_allclose(labels["polygon"], [[2, 0.2, 0.25, 0.2, 0.3]], atol=1e-6)
    np.testing.assert_allclose(labels["outside"], [[1, 0.9775, 0.5, 0.045, 0.1], [2, 0.9, 0.5, 0.2, 0.2]], atol=1e-6)
    assert len(labels["empty"]) == 0 and len(labels["nolabel"]) == 0
    assert all(lb.dtype == np.float32 and lb.shape[1] == 5 for lb in ds.labels)

    summaries = [m for m in log_lines if "Scanned" in m]
    assert len(summaries) == 1
    for name in ("corrupt.jpg", "truncated.jpg", "malformed.txt", "bigcls.txt", "dups.txt", "outside.txt"):
        assert name in summaries[0]
    assert "1 without label file and 1 empty (background), 1 skipped" in summaries[0]

    for i in range(len(ds)):  # every kept item loads, truncated JPEG included (decoded in memory)
        im, lb, path, shapes = ds[i]
        assert im.shape == (3, 64, 64) and lb.shape[1] == 6
    with open(messy / "truncated.jpg", "rb") as f:
        assert f.read()[-2:] != b"\xff\xd9", "the dataset is input: its files are never rewritten"


def test_label_rows_bom_and_polygon_rule(tmp_path):
    """A UTF-8 BOM (Windows editors) keeps the first row; odd rows of 7+ values are polygons (YOLOv5 segments),
    boxed by their extent, and a 7-value row says how it was read."""
    lb = tmp_path / "a.txt"
    lb.write_text("\ufeff1 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.3 0.1 0.3 0.4\n3 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n",
                  encoding="utf-8")
    rows, notes, state = label_check._parse_labels(str(lb), nc=NC)
    assert state == "found"
    np.testing.assert_allclose(rows, [[1, 0.5, 0.5, 0.2, 0.2], [2, 0.2, 0.25, 0.2, 0.3], [3, 0.3, 0.3, 0.4, 0.4]],
                               atol=1e-6)
    assert notes == ["line 2: 7 values read as a 3-point polygon (cls x1 y1 x2 y2 x3 y3), not as a box "
                     "(cls cx cy w h has 5)"]


def test_all_images_corrupt_is_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"junk" * 50)
    with pytest.raises(DatasetError, match="no usable images .*corrupt image"):
        DetectionDataset(tmp_path / "images", nc=NC)


def test_label_cache_is_json_and_invalidated_when_a_label_changes(messy, monkeypatch, log_lines):
    DetectionDataset(messy, img_size=64, nc=NC)
    cache = messy.parent.parent / "labels" / "train.cache"
    content = json.loads(cache.read_text())  # plain JSON: nothing to unpickle
    assert content["version"] == datasets.CACHE_VERSION and len(content["entries"]) == 9

    calls = []
    real = label_check.verify_image_label
    monkeypatch.setattr(label_check, "verify_image_label", lambda *a: calls.append(a[0]) or real(*a))
    ds = DetectionDataset(messy, img_size=64, nc=NC)
    assert calls == [] and any("Cached" in m for m in log_lines)
    assert any("class 9 >= nc 6" in why for _, why in ds.problems)  # problems survive the cache

    lbl = messy.parent.parent / "labels" / "train" / "good.txt"
    lbl.write_text("0 0.25 0.25 0.1 0.1\n0 0.75 0.75 0.1 0.1\n")
    ds = DetectionDataset(messy, img_size=64, nc=NC)
    assert len(calls) == 10  # rescanned
    assert len(ds.labels[[Path(f).stem for f in ds.im_files].index("good")]) == 2

    calls.clear()
    DetectionDataset(messy, img_size=64, nc=3)  # another nc changes which rows are valid
    assert len(calls) == 10


# ---------------------------------------------------------------------------------------------- items and batches
HEAVY = dict(degrees=15.0, translate=0.2, scale=0.5, shear=3.0, perspective=0.0005, flipud=0.5, fliplr=0.5,
             mosaic=1.0, mixup=0.5)


def _check_batch(ims, targets, bs, size):
    assert ims.dtype == torch.uint8 and ims.shape == (bs, 3, size, size)
    assert targets.shape[1] == 6 and targets.dtype == torch.float32
    if len(targets):
        idx, cls, box = targets[:, 0], targets[:, 1], targets[:, 2:]
        assert (idx == idx.round()).all() and idx.min() >= 0 and idx.max() < bs
        assert (cls == cls.round()).all() and cls.min() >= 0 and cls.max() < NC
        assert (box[:, 2:] > 0).all()
        assert (box[:, :2] - box[:, 2:] / 2).min() >= -1e-4 and (box[:, :2] + box[:, 2:] / 2).max() <= 1 + 1e-4


def test_training_batches_mosaic_affine_mixup_are_valid(shapes):
    data = check_dataset(shapes)
    loader, ds = create_dataloader(data["train"], 64, 4, 32, hyp=HEAVY, augment=True, shuffle=True, nc=NC)
    assert ds.mosaic and len(loader) == 3
    n_targets = 0
    for ims, targets, paths, shp in loader:
        _check_batch(ims, targets, len(paths), 64)
        assert all(s is None for s in shp)  # mosaics have no letterbox shapes
        n_targets += len(targets)
    assert n_targets > 0


def test_yolov7_nine_image_mosaics_are_valid_and_leave_yolov5s_items_unchanged(shapes, caplog):
    """hyp mosaic9 (YOLOv7's 9-image mosaics): valid items and batches; at 0 (YOLOv5) the items are those of a hyp
    without the key, draw for draw. paste_in on boxes-only labels pastes nothing, and says so."""
    data = check_dataset(shapes)
    base = DetectionDataset(data["train"], img_size=64, augment=True, hyp=HEAVY, nc=NC, seed=3)
    zero = DetectionDataset(data["train"], img_size=64, augment=True, hyp={**HEAVY, "mosaic9": 0.0}, nc=NC, seed=3)
    nine = DetectionDataset(data["train"], img_size=64, augment=True, hyp={**HEAVY, "mosaic9": 1.0, "paste_in": 0.15},
                            nc=NC, seed=3)
    assert "paste_in=0.15 pastes nothing" in caplog.text
    more = 0
    for i in range(len(base)):
        (a, la, *_), (b, lb, *_), (c, lc, *_) = base[i], zero[i], nine[i]
        assert torch.equal(a, b) and torch.equal(la, lb)
        _check_batch(c[None], lc, 1, 64)
        more += not torch.equal(a, c)
    assert more == len(base)


def test_training_items_without_mosaic_are_letterboxed(shapes):
    data = check_dataset(shapes)
    ds = DetectionDataset(data["train"], img_size=64, augment=True, hyp={**HEAVY, "mosaic": 0.0}, nc=NC)
    for i in range(len(ds)):
        im, lb, path, shp = ds[i]
        (h0, w0), ((gh, gw), (pw, ph)) = shp
        assert im.shape == (3, 64, 64) and (h0, w0) == tuple(ds.shapes[i][::-1])
        _check_batch(im[None], lb, 1, 64)


def test_augmentation_is_seeded_by_seed_epoch_index_not_by_workers(shapes):
    data = check_dataset(shapes)
    kw = dict(hyp=HEAVY, augment=True, shuffle=True, nc=NC, seed=1)
    l0, _ = create_dataloader(data["train"], 64, 4, 32, workers=0, **kw)
    l2, _ = create_dataloader(data["train"], 64, 4, 32, workers=2, **kw)
    e0a, e1a = list(l0), list(l0)  # epochs 0 and 1
    l2.set_epoch(1)
    e1b = list(l2)
    for (ia, ta, pa, _), (ib, tb, pb, _) in zip(e1a, e1b):
        assert pa == pb and torch.equal(ia, ib) and torch.equal(ta, tb)
    assert [b[2] for b in e0a] != [b[2] for b in e1a]  # new order each epoch
    assert not torch.equal(e0a[0][0], e1a[0][0])


def test_rect_batches_are_stride_multiples_and_shapes_map_back(shapes):
    data = check_dataset(shapes)
    loader, ds = create_dataloader(data["val"], 96, 3, 32, rect=True, pad=0.5, nc=NC)
    aspect = ds.shapes[:, 1] / ds.shapes[:, 0]
    assert (np.diff(aspect) >= 0).all()  # sorted by aspect ratio
    assert len({tuple(s) for s in ds.batch_shapes}) > 1  # the set mixes 1:1, 4:3 and 3:4 images
    seen = 0
    for ims, targets, paths, shp in loader:
        H, W = ims.shape[2:]
        assert H % 32 == 0 and W % 32 == 0 and max(H, W) <= 96 + 32
        for k, path in enumerate(paths):
            (h0, w0), ratio_pad = shp[k]
            t = targets[targets[:, 0] == k]
            original = ds.labels[ds.im_files.index(path)]
            assert len(t) == len(original)
            if len(t):
                boxes = xywhn2xyxy(t[:, 2:].numpy().astype(np.float64), W, H)
                back = scale_boxes((H, W), boxes, (h0, w0), ratio_pad=ratio_pad)
                ref = xywhn2xyxy(original[:, 1:].astype(np.float64), w0, h0)
                np.testing.assert_allclose(back, ref, atol=0.2)
            seen += 1
    assert seen == len(ds)


def test_ram_cache_matches_disk_reads_and_stays_clean(shapes):
    data = check_dataset(shapes)
    plain = DetectionDataset(data["val"], img_size=64, nc=NC)
    cached = DetectionDataset(data["val"], img_size=64, nc=NC, cache="ram")
    snapshot = [im.copy() for im in cached.ims]
    for i in range(len(plain)):
        a, b = plain[i], cached[i]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[3] == b[3]
    cached.augment, cached.mosaic, cached.hyp.hsv_v = True, True, 0.9  # in-place augmentations
    for i in range(len(cached)):
        cached[i]
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, cached.ims))
    with pytest.raises(DatasetError, match="cache must be"):
        DetectionDataset(data["val"], cache="gpu")


def test_single_cls_and_image_weights(shapes):
    data = check_dataset(shapes)
    ds = DetectionDataset(data["train"], img_size=64, single_cls=True, nc=NC, image_weights=True)
    assert all((lb[:, 0] == 0).all() for lb in ds.labels)
    weights = np.zeros(NC)
    weights[0] = 1.0
    ds.update_image_weights(weights)
    assert all(len(ds.labels[i]) > 0 for i in ds.indices)  # background images have zero weight


def test_collate_pads_mixed_sizes_and_rescales_targets():
    a = (torch.zeros(3, 64, 96, dtype=torch.uint8), torch.tensor([[0, 1, 0.5, 0.5, 0.5, 0.5]]), "a", None)
    b = (torch.zeros(3, 96, 64, dtype=torch.uint8), torch.tensor([[0, 2, 0.5, 0.5, 1.0, 1.0]]), "b", None)
    ims, targets, paths, _ = DetectionDataset.collate_fn([a, b])
    assert ims.shape == (2, 3, 96, 96) and ims[0, 0, 80, 0] == 114
    np.testing.assert_allclose(targets.numpy(), [[0, 1, 0.5, 1 / 3, 0.5, 1 / 3], [1, 2, 1 / 3, 0.5, 2 / 3, 1.0]],
                               atol=1e-6)


def test_distributed_sampler_when_rank_is_set(shapes, tmp_path):
    data = check_dataset(shapes)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loader, ds = create_dataloader(data["train"], 64, 4, 32, rank=0, shuffle=True, nc=NC)
        assert isinstance(loader.sampler, torch.utils.data.DistributedSampler)
        assert sum(len(p) for _, _, p, _ in loader) == len(ds)
    finally:
        dist.destroy_process_group()


def test_close_mosaic_stops_mosaics_from_its_epoch_in_persistent_workers(shapes):
    """--close-mosaic: epochs >= mosaic_until build single letterboxed images, also in persistent loader workers
    started before that epoch (they see the epoch through shared memory)."""
    train = check_dataset(shapes)["train"]
    loader, ds = create_dataloader(train, 96, 4, 32, augment=True, nc=NC, workers=1, persistent_workers=True,
                                   hyp={"mosaic": 1.0, "mixup": 0.0})
    ds.mosaic_until = 1
    assert ds.mosaic_on(0) and not ds.mosaic_on(1) and DetectionDataset(train, 96, nc=NC).mosaic_on(0) is False
    real, built = ds._load_mosaic, []

    def guarded(i, rng):
        if ds.epoch >= ds.mosaic_until:
            raise AssertionError(f"a mosaic in epoch {ds.epoch}")
        built.append(i)
        return real(i, rng)

    ds._load_mosaic = guarded  # set before the workers start, so they run it too
    ds.set_epoch(0)
    ds[0]
    assert built  # epoch 0 still builds mosaics
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        assert sum(len(imgs) for imgs, *_ in loader) == 12  # epoch 1 in the worker: no mosaic, no error
    ds.set_epoch(1)
    assert ds[0][0].shape == (3, 96, 96)
