"""COCO JSON and Pascal VOC splits read directly from a data YAML; the converter; one-line errors for bad input."""
import json

import cv2
import numpy as np
import pytest

from yolobone.data import annotation_sets
from yolobone.data.config import DatasetError, check_dataset, list_image_files
from yolobone.data.convert import convert_dataset, load_splits
from yolobone.data.datasets import DetectionDataset
from yolobone.data.synthetic import make_detection_dataset


@pytest.fixture(autouse=True)
def label_cache(tmp_path, monkeypatch):
    """COCO/VOC label caches go to the user's cache folder: keep them under tmp_path in tests."""
    monkeypatch.setenv("YOLOBONE_LABEL_CACHE", str(tmp_path / "label-cache"))
    return tmp_path / "label-cache"


@pytest.fixture(scope="module")
def three_formats(tmp_path_factory):
    """The synthetic shapes set as YOLO txt, and converted to COCO JSON and to VOC XML."""
    root = tmp_path_factory.mktemp("formats")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLOBONE_LABEL_CACHE", str(root / "label-cache"))
        yolo = make_detection_dataset(root / "yolo", n_train=16, n_val=6, imgsz=64, verbose=False)
        coco = convert_dataset(yolo, root / "coco", "coco")
        voc = convert_dataset(yolo, root / "voc", "voc")
    return {"yolo": yolo, "coco": coco, "voc": voc}


def test_three_formats_give_identical_labels(three_formats):
    """What training sees is bit-identical from YOLO txt, COCO JSON and VOC XML (float32 rows, image sizes)."""
    ref = load_splits(three_formats["yolo"])[1]
    assert sum(len(lb) for lb in ref["train"].labels) > 10
    for fmt in ("coco", "voc"):
        cfg, splits = load_splits(three_formats[fmt])
        assert cfg["names"] == ["circle", "square", "triangle", "star", "cross", "ring"]
        for split in ("train", "val"):
            assert splits[split].sizes == ref[split].sizes
            assert [lb.shape for lb in splits[split].labels] == [lb.shape for lb in ref[split].labels]
            for a, b in zip(splits[split].labels, ref[split].labels):
                assert np.array_equal(a, b), fmt


def test_round_trip_yolo_coco_yolo(three_formats, tmp_path):
    back = convert_dataset(three_formats["coco"], tmp_path / "back", "yolo")
    ref, got = load_splits(three_formats["yolo"])[1], load_splits(back)[1]
    for split in ("train", "val"):
        for a, b in zip(ref[split].labels, got[split].labels):
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    with pytest.raises(DatasetError, match="exists and is not an empty folder"):
        convert_dataset(three_formats["coco"], tmp_path / "back", "yolo")


def test_data_yaml_forms_resolve_to_specs(three_formats, tmp_path):
    root = three_formats["coco"].parent
    cfg = check_dataset(three_formats["coco"])
    assert cfg["train"] == {"format": "coco", "source": str(root / "annotations" / "instances_train.json"),
                            "images": str(root / "images" / "train"), "names": cfg["names"]}
    short = tmp_path / "short.yaml"  # short form: images/<json stem without instances_>
    short.write_text(f"path: {root}\ntrain: annotations/instances_train.json\nval: annotations/instances_val.json\n")
    assert check_dataset(short)["val"]["images"] == str(root / "images" / "val")
    voc = check_dataset(three_formats["voc"])["train"]
    assert voc["format"] == "voc" and voc["annotations"].endswith("Annotations")
    assert len(list_image_files(voc)) == 16  # what INT8 calibration reads


def test_dataset_keeps_original_ids_and_writes_no_file_into_the_dataset(three_formats, label_cache, monkeypatch):
    root = three_formats["coco"].parent
    before = sorted(p for p in root.rglob("*"))
    cfg = check_dataset(three_formats["coco"])
    calls = []
    real = annotation_sets._parse
    monkeypatch.setattr(annotation_sets, "_parse", lambda spec: calls.append(spec) or real(spec))
    ds = DetectionDataset(cfg["val"], img_size=64, nc=cfg["nc"])
    assert calls == []  # check_dataset's scan is the dataset's: read back from the cache
    gt = json.loads((root / "annotations" / "instances_val.json").read_text())
    assert sorted(ds.image_ids.values()) == sorted(im["id"] for im in gt["images"])
    assert ds.category_ids == [c["id"] for c in gt["categories"]]
    assert sorted(p for p in root.rglob("*")) == before
    assert list(label_cache.glob("*.cache"))
    DetectionDataset(cfg["val"], img_size=64, nc=cfg["nc"])  # second time from the cache


# ----------------------------------------------------------------------------------------------- COCO details
def _coco_set(tmp_path, annotations, images=None, categories=None):
    """A two-image COCO set (100x50 and 40x40 px) with the given annotations; returns its data YAML."""
    (tmp_path / "img").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp_path / "img" / "a.jpg"), np.full((50, 100, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "img" / "b.jpg"), np.full((40, 40, 3), 90, np.uint8))
    images = images or [{"id": 10, "file_name": "a.jpg", "width": 100, "height": 50},
                        {"id": 11, "file_name": "b.jpg", "width": 40, "height": 40}]
    categories = categories or [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                   "categories": categories}))
    yaml = tmp_path / "data.yaml"
    yaml.write_text("train: {coco: ann.json, images: img}\nval: {coco: ann.json, images: img}\n")
    return yaml


def _labels(yaml):
    cfg = check_dataset(yaml)
    ds = DetectionDataset(cfg["train"], img_size=64, nc=cfg["nc"])
    return cfg, {ds.image_ids[f]: lb for f, lb in zip(ds.im_files, ds.labels)}, ds.problems


def test_coco_categories_crowd_segmentation_and_background(tmp_path, log_lines):
    """Category ids 3 and 7 become classes 0 and 1; crowd boxes are not trained; polygon and RLE segmentations give
    the box when bbox is missing; an image without annotations stays as background."""
    rle = {"size": [50, 100], "counts": [50 * 20 + 10, 20, 30, 20, 3920]}  # column-major: rows 10-29 of cols 20-21
    anns = [{"id": 1, "image_id": 10, "category_id": 7, "bbox": [10, 5, 20, 10]},
            {"id": 2, "image_id": 10, "category_id": 3, "segmentation": [[50, 10, 70, 10, 70, 30, 50, 30]]},
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1},
            {"id": 4, "image_id": 10, "category_id": 7, "segmentation": rle}]
    cfg, labels, problems = _labels(_coco_set(tmp_path, anns))
    assert cfg["names"] == ["cat", "dog"] and not problems
    assert any("(1 crowd/difficult objects left out)" in line for line in log_lines)
    np.testing.assert_allclose(labels[10], [[1, 0.2, 0.2, 0.2, 0.2], [0, 0.6, 0.4, 0.2, 0.4],
                                            [1, 0.21, 0.4, 0.02, 0.4]], atol=1e-6)
    assert labels[11].shape == (0, 5)


def test_coco_bad_boxes_are_clipped_or_dropped_like_yolo_rows(tmp_path):
    anns = [{"id": 1, "image_id": 10, "category_id": 7, "bbox": [10, 5, -4, 10]},  # negative width
            {"id": 2, "image_id": 10, "category_id": 7, "bbox": [10, 5, 0, 10]},  # zero area
            {"id": 3, "image_id": 10, "category_id": 7, "bbox": [150, 5, 20, 10]},  # outside the image
            {"id": 4, "image_id": 10, "category_id": 7, "bbox": [99.6, 10, 1, 10]},  # centre just outside: clipped
            {"id": 5, "image_id": 10, "category_id": 7, "bbox": [10, 10, 10, 10]}]
    _, labels, problems = _labels(_coco_set(tmp_path, anns))
    text = "\n".join(f"{f}: {why}" for f, why in problems)
    assert "annotations[0] (id 1): bbox [10, 5, -4, 10] has zero or negative width/height, dropped" in text
    assert "annotations[1] (id 2)" in text and "annotations[2] (id 3): box outside the image, dropped" in text
    assert "annotations[3] (id 4): box slightly outside the image, clipped" in text
    np.testing.assert_allclose(labels[10], [[1, 0.998, 0.3, 0.004, 0.2], [1, 0.15, 0.3, 0.1, 0.2]], atol=1e-6)


@pytest.mark.parametrize("case, match", [
    ("malformed", r"ann\.json: not valid JSON at line 1 column"),
    ("unknown image", r"ann\.json: annotations\[0\] \(id 1\): image_id 99 is not in 'images'"),
    ("unknown category", r"ann\.json: annotations\[0\] \(id 1\): category_id 42 is not in 'categories'"),
    ("duplicate image ids", r"ann\.json: images\[1\] repeats id 10 of images\[0\]"),
    ("missing image", r"ann\.json: images\[1\] \(id 11\): image file not found: .*gone\.jpg"),
    ("no box", r"ann\.json: annotations\[0\] \(id 1\): no bbox and no polygon or RLE segmentation"),
])
def test_coco_structural_errors_are_one_line(tmp_path, case, match):
    ann = {"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 1, 5, 5]}
    images = None
    if case == "unknown image":
        ann["image_id"] = 99
    elif case == "unknown category":
        ann["category_id"] = 42
    elif case == "no box":
        del ann["bbox"]
    elif case == "duplicate image ids":
        images = [{"id": 10, "file_name": "a.jpg", "width": 100, "height": 50},
                  {"id": 10, "file_name": "b.jpg", "width": 40, "height": 40}]
    elif case == "missing image":
        images = [{"id": 10, "file_name": "a.jpg", "width": 100, "height": 50},
                  {"id": 11, "file_name": "gone.jpg", "width": 40, "height": 40}]
    yaml = _coco_set(tmp_path, [ann], images=images)
    if case == "malformed":
        (tmp_path / "ann.json").write_text('{"images": [}')
    with pytest.raises(DatasetError, match=match) as e:
        check_dataset(yaml)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------- VOC details
VOC_XML = """<annotation><filename>{name}.jpg</filename><size><width>100</width><height>50</height></size>
{objects}</annotation>"""
VOC_OBJ = "<object><name>{cls}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>" \
          "<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"


def _voc_set(tmp_path, xmls, names=None):
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    for name, text in xmls.items():
        (tmp_path / "Annotations" / f"{name}.xml").write_text(text)
        cv2.imwrite(str(tmp_path / "JPEGImages" / f"{name}.jpg"), np.full((50, 100, 3), 90, np.uint8))
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{n}\n" for n in xmls))
    yaml = tmp_path / "data.yaml"
    yaml.write_text("train: {voc: ImageSets/Main/train.txt}\nval: {voc: ImageSets/Main/train.txt}\n" +
                    (f"names: {names}\n" if names else ""))
    return yaml


def test_voc_names_difficult_and_one_based_corners(tmp_path):
    objs = (VOC_OBJ.format(cls="horse", d=0, x1=11, y1=6, x2=31, y2=16) +
            VOC_OBJ.format(cls="cat", d=1, x1=1, y1=1, x2=9, y2=9) +  # difficult: left out as VOC's eval does
            VOC_OBJ.format(cls="bird", d=0, x1=51, y1=11, x2=61, y2=41))
    yaml = _voc_set(tmp_path, {"a": VOC_XML.format(name="a", objects=objs), "b": VOC_XML.format(name="b", objects="")})
    cfg, labels, problems = _labels(yaml)
    assert cfg["names"] == ["bird", "cat", "horse"] and not problems  # sorted object names (difficult ones too)
    np.testing.assert_allclose(labels["a"], [[2, 0.2, 0.2, 0.2, 0.2], [0, 0.55, 0.5, 0.1, 0.6]], atol=1e-6)
    assert labels["b"].shape == (0, 5)
    yaml.write_text(yaml.read_text() + "names: [horse, dog]\n")  # names fix the order; other classes dropped
    cfg, labels, problems = _labels(yaml)
    assert labels["a"][:, 0].tolist() == [0] and "class 'bird' is not in names, dropped" in problems[0][1]


@pytest.mark.parametrize("case, match", [
    ("malformed", r"a\.xml: not valid XML"),
    ("bomb", r"a\.xml: refused, the XML declares entities"),
    ("missing xml", r"train\.txt: id 'zz': annotation file not found"),
    ("no size", r"a\.xml: <size><width> is missing or not a number"),
    ("duplicate ids", r"train\.txt: lines\[1\] repeats id 'a' of lines\[0\]"),
])
def test_voc_errors_are_one_line(tmp_path, case, match):
    text = VOC_XML.format(name="a", objects=VOC_OBJ.format(cls="cat", d=0, x1=2, y1=2, x2=9, y2=9))
    if case == "malformed":
        text = text.replace("</annotation>", "")
    elif case == "bomb":
        text = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
                + text.replace("<filename>a.jpg", "<filename>&lol2;"))
    elif case == "no size":
        text = text.replace("<width>100</width>", "")
    yaml = _voc_set(tmp_path, {"a": text}, names="[cat]")
    if case in ("missing xml", "duplicate ids"):
        (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("a\nzz\n" if case == "missing xml" else "a\na\n")
    with pytest.raises(DatasetError, match=match) as e:
        _labels(yaml)
    assert "\n" not in str(e.value)


def test_voc_cache_follows_the_xml_files(tmp_path, monkeypatch):
    yaml = _voc_set(tmp_path, {"a": VOC_XML.format(name="a", objects=VOC_OBJ.format(cls="cat", d=0, x1=2, y1=2,
                                                                                    x2=9, y2=9))}, names="[cat]")
    _labels(yaml)
    calls = []
    real = annotation_sets._parse
    monkeypatch.setattr(annotation_sets, "_parse", lambda spec: calls.append(spec) or real(spec))
    _labels(yaml)
    assert calls == []
    xml = tmp_path / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<xmax>9</xmax>", "<xmax>21</xmax>"))
    _, labels, _ = _labels(yaml)
    assert len(calls) == 1 and labels["a"][0, 3] == pytest.approx(0.19)


# ----------------------------------------------------------------------------------------------- train and val
def test_two_epochs_give_identical_losses_from_every_format(three_formats, tmp_path):
    """Same seed, same labels: YOLO txt, COCO JSON and VOC XML train to the same losses (mosaic and all)."""
    from tests.helpers import tiny_cfg as _tiny_cfg

    from yolobone.engine.train import train

    cfg = _tiny_cfg(tmp_path / "tiny.yaml")
    losses = {}
    for fmt in ("yolo", "coco", "voc"):
        r = train(dict(cfg=cfg, data=str(three_formats[fmt]), epochs=2, batch_size=8, imgsz=64, device="cpu",
                       workers=0, seed=0, noval=True, noplots=True, project=str(tmp_path / "runs"), name=fmt))
        losses[fmt] = r.loss_history
        assert "train: 16 images" in (r.save_dir / "dataset.txt").read_text()
    assert len(losses["yolo"]) == 2 and all(v > 0 for v in losses["yolo"][0])
    assert losses["coco"] == losses["yolo"] and losses["voc"] == losses["yolo"]


def test_save_json_scores_against_the_original_coco_json(tmp_path):
    """val.py --save-json on a COCO set with non-contiguous category ids and large image ids: the results carry the
    file's ids, pycocotools scores them against the untouched JSON, and agrees with val.py within 0.002."""
    from tests.helpers import VAL_IMGSZ as IMGSZ, save_detector, tiny_detector

    from yolobone.data.synthetic import SHAPE_NAMES
    from yolobone.engine.detect.val_run import ValConfig, run_val

    yolo = make_detection_dataset(tmp_path / "yolo", n_train=1, n_val=8, imgsz=96, max_objects=3, min_size=0.25,
                                  max_size=0.6, verbose=False)
    data = convert_dataset(yolo, tmp_path / "coco", "coco")
    ann = tmp_path / "coco" / "annotations" / "instances_val.json"
    gt = json.loads(ann.read_text())
    cat_ids, image_ids = [3, 5, 9, 11, 20, 40], {im["id"]: 1000 + 7 * im["id"] for im in gt["images"]}
    for c in gt["categories"]:
        c["id"] = cat_ids[c["id"] - 1]
    for im in gt["images"]:
        im["id"] = image_ids[im["id"]]
    for a in gt["annotations"]:
        a["category_id"], a["image_id"] = cat_ids[a["category_id"] - 1], image_ids[a["image_id"]]
    ann.write_text(json.dumps(gt))
    original = ann.read_bytes()
    weights = save_detector(tiny_detector(len(SHAPE_NAMES)), tmp_path / "w.pt", SHAPE_NAMES)
    report = run_val(ValConfig(weights=weights, data=str(data), imgsz=IMGSZ, batch_size=3, device="cpu", workers=0,
                               save_json=True, coco_eval=True, plots=False, project=str(tmp_path / "runs")))
    records = json.loads(report.json_path.read_text())
    assert records and {r["category_id"] for r in records} <= set(cat_ids)
    assert {r["image_id"] for r in records} <= set(image_ids.values())
    assert report.gt_json_path == ann and ann.read_bytes() == original
    res, stats = report.result, report.coco_stats
    assert res.map50 > 0 and stats[1] > 0
    assert abs(stats[1] - res.map50) <= 0.002 and abs(stats[0] - res.map50_95) <= 0.002


# ----------------------------------------------------------------------------------------------- CLI and report
def test_cli_convert_and_report(three_formats, tmp_path, capsys):
    from yolobone.cli import main

    out = tmp_path / "voc2yolo"
    assert main(["dataset", "convert", "--data", str(three_formats["voc"]), "--to", "yolo", "--out", str(out)]) == 0
    assert (out / "data.yaml").is_file() and len(list((out / "labels" / "train").glob("*.txt"))) == 16
    val_image = next((out / "images" / "val").glob("*.jpg"))
    (out / "images" / "train" / "copy_of_val.jpg").write_bytes(val_image.read_bytes())  # a leaked val image
    assert main(["dataset", "report", "--data", str(out / "data.yaml"), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "report.txt").read_text()
    ref = load_splits(three_formats["yolo"])[1]
    n_boxes = sum(len(lb) for lb in ref["train"].labels)
    n_bg = sum(1 for lb in ref["train"].labels if not len(lb)) + 1  # the copy has no label file
    assert f"train: 17 images, {n_boxes} boxes, {n_bg} background images" in text
    assert "val: 6 images" in text and "boxes under 8 px" in text and "aspect ratio w/h" in text
    assert "duplicate images in train and val (same bytes): 1" in text and "copy_of_val.jpg" in text
    assert (tmp_path / "rep" / "labels.jpg").is_file()
    capsys.readouterr()
    assert main(["dataset", "convert", "--data", str(three_formats["voc"]), "--to", "coco", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not an empty folder" in err and err.count("\n") == 1


def test_compare_reads_a_voc_set(three_formats, tmp_path):
    from tests.helpers import tiny_cfg as _tiny_cfg

    from yolobone.engine.compare import compare

    res = compare(dict(cfgs=[_tiny_cfg(tmp_path / "tiny.yaml")], data=str(three_formats["voc"]), epochs=1, imgsz=64,
                       batch_size=8, device="cpu", workers=0, project=str(tmp_path / "cmp"), name="exp",
                       latency_runs=1, noplots=True))
    assert [r.status for r in res.rows] == ["done"]


def test_bad_split_forms_are_one_line(tmp_path):
    yaml = _coco_set(tmp_path, [])
    mismatch = r"names \['a', 'b'\] differ from the categories of .*ann\.json \(\['cat', 'dog'\]"
    for text, match in (("train: {cocoa: ann.json}\nval: img\n", r"'train' must be a path, \{coco: <json>"),
                        ("train: {coco: nope.json, images: img}\nval: img\n", r"'train' COCO file not found: .*nope"),
                        ("train: {coco: ann.json, images: nope}\nval: img\n", r"'train' images folder not found"),
                        ("train: {coco: ann.json, images: img}\nval: img\nnames: [a, b]\n", mismatch)):
        yaml.write_text(text)
        with pytest.raises(DatasetError, match=match):
            check_dataset(yaml)
