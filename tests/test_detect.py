"""detect.py and the Detector API: sources, outputs in runs/detect/exp*, labels equal to API predictions, videos."""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolobone.cli import detect
from yolobone.engine.detect.predict_run import DetectConfig, run_detect
from yolobone.engine.detect.predictor import Detector, DetectorError, InputReadError, check_imgsz
from yolobone.engine.core.sources import Failure, Frame, SourceError, batched, iter_frames, resolve_source
from yolobone.utils.logging import LOGGER
from yolobone.data.synthetic import SHAPE_NAMES, make_detection_dataset

ROOT = Path(__file__).resolve().parents[1]
IMGSZ = 96
CONF = 0.001  # a briefly trained model is unsure; a low threshold still gives boxes to compare
MAX_DET = 30


def _train(data_yaml: Path, out: Path) -> Path:
    """best.pt of a short real training (1 epoch of yolov5n on the tiny generated set)."""
    from yolobone.engine.train import train

    result = train({"cfg": str(ROOT / "configs" / "yolov5n.yaml"), "data": str(data_yaml), "epochs": 1,
                    "imgsz": IMGSZ, "batch_size": 4, "device": "cpu", "workers": 0, "project": str(out),
                    "name": "train", "noplots": True, "seed": 0})
    assert result.best is not None and result.best.is_file()
    return result.best



@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("shapes")
    data_yaml = make_detection_dataset(root / "data", n_train=4, n_val=4, imgsz=IMGSZ, seed=1, verbose=False)
    weights = _train(data_yaml, root)
    return {"weights": weights, "val": root / "data" / "images" / "val", "root": root,
            "detector": Detector(weights, device="cpu")}


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def logs():
    """Messages sent to the project logger during the test (whatever handlers and capture are in place)."""
    handler = _Collect()
    LOGGER.addHandler(handler)
    yield handler.messages
    LOGGER.removeHandler(handler)


def _read_txt(path: Path) -> np.ndarray:
    rows = [list(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def _write_video(path: Path, n: int = 10, size=(96, 72), fps: float = 12.0) -> Path:
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for i in range(n):
        im = np.full((h, w, 3), 40 + 10 * i, np.uint8)
        cv2.circle(im, (20 + 5 * i, h // 2), 15, (0, 0, 255), -1)
        writer.write(im)
    writer.release()
    return path


def _count_frames(path: Path):
    cap = cv2.VideoCapture(str(path))
    n, fps = 0, cap.get(cv2.CAP_PROP_FPS)
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, fps


def test_detect_folder_writes_outputs_equal_to_api(trained, tmp_path, logs):
    src = tmp_path / "images"
    shutil.copytree(trained["val"], src)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (src / "notes.md").write_text("not an image\n")
    (src / ".hidden").write_text("ignored")
    good = sorted(p for p in src.glob("*.jpg") if p.name != "broken.jpg")
    project = tmp_path / "runs"
    rc = detect.main(["--weights", str(trained["weights"]), "--source", str(src), "--imgsz", str(IMGSZ),
                      "--conf-thres", str(CONF), "--max-det", str(MAX_DET), "--save-txt", "--save-conf",
                      "--save-crop", "--device", "cpu", "--project", str(project)])
    assert rc == 1  # two inputs were skipped
    text = "\n".join(logs)
    assert "broken.jpg: skipped, unreadable image" in text
    assert "notes.md: skipped, not an image or video" in text
    assert ".hidden" not in text
    per_image = [m for m in logs if m.startswith("image ")]
    assert len(per_image) == len(good) and all(m.endswith("ms") for m in per_image)
    assert any(m.startswith("Speed: ") and m.endswith(f"per image at shape (1, 3, {IMGSZ}, {IMGSZ})") for m in logs)

    save_dir = project / "exp"
    assert sorted(p.name for p in save_dir.glob("*.jpg")) == [p.name for p in good]
    assert sorted(p.stem for p in (save_dir / "labels").glob("*.txt")) == [p.stem for p in good]

    results = trained["detector"].predict(good, conf=CONF, imgsz=IMGSZ, max_det=MAX_DET)
    assert sum(len(r) for r in results) > 0, "no detections at all: the comparison below would be empty"
    n_crops = 0
    for p, r in zip(good, results):
        rows = _read_txt(save_dir / "labels" / f"{p.stem}.txt")
        h, w = r.orig_img.shape[:2]
        expected = np.concatenate([r.class_ids[:, None], r.xywhn(), r.scores[:, None]], 1)
        assert rows.shape == expected.shape
        np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-5)
        annotated = cv2.imread(str(save_dir / p.name))
        assert annotated.shape == (h, w, 3)
        n_crops += len(r)
        # boxes are in original pixels
        assert (r.boxes[:, [0, 2]] <= w).all() and (r.boxes[:, [1, 3]] <= h).all() and (r.boxes >= 0).all()
    crops = list((save_dir / "crops").rglob("*.jpg"))
    assert len(crops) == n_crops
    assert {c.parent.name for c in crops} <= set(SHAPE_NAMES)

    # a second run goes to exp2
    again = run_detect(DetectConfig(weights="", source=str(good[0]), imgsz=IMGSZ, project=project, nosave=True),
                       detector=trained["detector"])
    assert again.exit_code == 0 and again.save_dir == project / "exp2" and not list(again.save_dir.glob("*.jpg"))


def test_video_keeps_frame_count_and_fps(trained, tmp_path):
    video = _write_video(tmp_path / "clip.mp4", n=10)
    cfg = DetectConfig(weights=trained["weights"], source=str(video), imgsz=IMGSZ, conf_thres=CONF,
                       max_det=MAX_DET, device="cpu", save_txt=True, project=tmp_path / "runs")
    report = run_detect(cfg, detector=trained["detector"])
    assert report.exit_code == 0 and report.frames == 10
    frames, fps = _count_frames(report.save_dir / "clip.mp4")
    assert frames == 10 and fps == pytest.approx(12.0, abs=0.01)
    assert len(list((report.save_dir / "labels").glob("clip_*.txt"))) == 10

    strided = run_detect(DetectConfig(weights="", source=str(video), imgsz=IMGSZ, device="cpu", vid_stride=3,
                                      project=tmp_path / "runs"), detector=trained["detector"])
    frames, fps = _count_frames(strided.save_dir / "clip.mp4")
    assert frames == 4 and fps == pytest.approx(4.0, abs=0.01)  # frames 1, 4, 7, 10 at a third of the rate


@pytest.mark.parametrize("weights_kind", ["missing", "garbage", "classify"])
def test_bad_weights_exit_2_with_one_line(trained, tmp_path, capsys, weights_kind):
    if weights_kind == "missing":
        weights = tmp_path / "nope.pt"
    elif weights_kind == "garbage":
        weights = tmp_path / "garbage.pt"
        weights.write_bytes(b"this is not a checkpoint")
    else:
        ckpt = torch.load(trained["weights"], weights_only=True)
        ckpt["model_yaml"] = {**ckpt["model_yaml"], "head": ckpt["model_yaml"]["head"][:-1] + [[-1, 1, "Classify", [6]]]}
        weights = tmp_path / "cls.pt"
        torch.save(ckpt, weights)
    rc = detect.main(["--weights", str(weights), "--source", str(trained["val"]), "--device", "cpu",
                      "--project", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: ") and str(weights) in err[0]
    assert not (tmp_path / "runs").exists()  # nothing written before the failure


def test_crop_folders_stay_inside_crops(tmp_path):
    """A class named `..`, `.`, `a/b` or `` gets one folder under crops/, never the run folder or above."""
    from yolobone.engine.detect.results import Result
    names = ["..", ".", "a/b", "", "..\\up", "ok"]
    n = len(names)
    r = Result(path="im.jpg", orig_img=np.zeros((32, 32, 3), np.uint8), boxes=np.tile([[4.0, 4, 20, 20]], (n, 1)),
               scores=np.ones(n), class_ids=np.arange(n), names=names)
    crops = tmp_path / "run" / "crops"
    saved = r.save_crops(crops)
    assert len(saved) == n and all(p.parent.parent == crops for p in saved)
    assert sorted(p.parent.name for p in saved) == sorted(["__", "_", "a_b", "_", ".._up", "ok"])
    assert sorted(f.name for f in (tmp_path / "run").iterdir()) == ["crops"]


def test_bad_source_exits_2_and_bad_options_raise(trained, tmp_path, capsys):
    rc = detect.main(["--weights", str(trained["weights"]), "--source", str(tmp_path / "missing_dir"),
                      "--project", str(tmp_path / "runs")])
    assert rc == 2 and "no such file, folder or glob match" in capsys.readouterr().err
    for kwargs, message in (({"conf_thres": 1.5}, "--conf-thres 1.5: expected a value in [0, 1]"),
                            ({"iou_thres": -1.0}, "--iou-thres -1: expected a value in [0, 1]"),
                            ({"max_det": 0}, "--max-det 0: expected >= 1"),
                            ({"classes": [9]}, "--classes 9: the model has 6 classes"),
                            ({"vid_stride": 0}, "--vid-stride 0: expected >= 1"),
                            ({"batch_size": 0}, "--batch-size 0: expected >= 1")):
        cfg = DetectConfig(weights="", source=str(trained["val"]), imgsz=IMGSZ, project=tmp_path / "runs", **kwargs)
        with pytest.raises(ValueError, match=re.escape(message)):
            run_detect(cfg, detector=trained["detector"])
    assert not (tmp_path / "runs").exists()  # no run folder for a rejected run


def test_api_inputs_filters_and_drawing(trained, tmp_path):
    det: Detector = trained["detector"]
    paths = sorted(trained["val"].glob("*.jpg"))
    arrays = [cv2.imread(str(p)) for p in paths]
    from_paths = det.predict(paths, conf=CONF, imgsz=IMGSZ, max_det=MAX_DET)
    from_arrays = det.predict(arrays, conf=CONF, imgsz=IMGSZ, max_det=MAX_DET)
    from_folder = det.predict(str(trained["val"]), conf=CONF, imgsz=IMGSZ, max_det=MAX_DET)
    from PIL import Image
    from_pil = det.predict(Image.open(paths[0]), conf=CONF, imgsz=IMGSZ, max_det=MAX_DET)
    for a, b in zip(from_paths, from_arrays):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
    assert [r.path for r in from_folder] == [str(p) for p in paths]
    assert len(from_pil) == 1 and from_pil[0].orig_img.shape == arrays[0].shape

    r = max(from_paths, key=len)
    assert len(r) > 0 and r.labels == [SHAPE_NAMES[c] for c in r.class_ids]
    assert (np.diff(r.scores) <= 0).all()
    plotted = r.plot()
    assert plotted.shape == r.orig_img.shape and plotted.dtype == np.uint8
    assert not np.array_equal(plotted, r.orig_img)
    assert np.array_equal(r.plot(hide_labels=True), r.plot(hide_labels=True))

    keep = int(r.class_ids[0])
    only = det.predict(paths, conf=CONF, imgsz=IMGSZ, max_det=MAX_DET, classes=[keep])
    assert all((o.class_ids == keep).all() for o in only)
    for o, x in zip(only, from_paths):  # NMS is per class: the filter changes nothing unless max_det cut boxes
        n_keep = int((x.class_ids == keep).sum())
        assert len(o) == n_keep if len(x) < MAX_DET else len(o) >= n_keep
    capped = det.predict(paths, conf=CONF, imgsz=IMGSZ, max_det=2)
    assert all(len(c) <= 2 for c in capped)

    txt = r.save_txt(tmp_path / "x.txt")
    assert _read_txt_no_conf(txt).shape == (len(r), 5)
    with pytest.raises(InputReadError, match="missing.jpg: unreadable image"):
        det.predict([paths[0], tmp_path / "missing.jpg"], imgsz=IMGSZ)
    (tmp_path / "missing.jpg").write_bytes(b"junk")
    with pytest.raises(InputReadError, match="missing.jpg: unreadable image"):
        det.predict([paths[0], tmp_path / "missing.jpg"], imgsz=IMGSZ)
    assert len(det.predict([paths[0], tmp_path / "missing.jpg"], imgsz=IMGSZ, skip_failed=True)) == 1
    with pytest.raises(DetectorError, match="conf must be in"):
        det.predict(paths, conf=-0.1)


def _read_txt_no_conf(path: Path) -> np.ndarray:
    return np.array([list(map(float, line.split())) for line in path.read_text().splitlines()]).reshape(-1, 5)


def test_batches_pad_mixed_shapes_without_changing_scale(trained):
    det: Detector = trained["detector"]
    wide = np.zeros((60, 120, 3), np.uint8)
    tall = np.zeros((120, 60, 3), np.uint8)
    x, ratio_pads = det.preprocess([wide, tall], (IMGSZ, IMGSZ))
    assert tuple(x.shape) == (2, 3, IMGSZ, IMGSZ)
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0
    (gy, gx), (dw, dh) = ratio_pads[0]
    assert gx == pytest.approx(IMGSZ / 120) and gy == pytest.approx(IMGSZ / 120)
    assert dh == pytest.approx((IMGSZ - 60 * IMGSZ / 120) / 2) and dw == 0
    batched_results = det.predict([wide, tall], imgsz=IMGSZ, batch_size=2)
    assert [r.input_shape for r in batched_results] == [(IMGSZ, IMGSZ)] * 2
    assert check_imgsz(100, det.stride) == (128, 128) and check_imgsz([64, 96], det.stride) == (64, 96)


def test_sources_resolve_every_kind(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "sub" / "b.png"
    b.parent.mkdir()
    cv2.imwrite(str(a), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(b), np.zeros((8, 8, 3), np.uint8))
    assert resolve_source(str(tmp_path)).files == [str(a)]  # folders are not searched recursively
    assert resolve_source(str(tmp_path / "**" / "*.*")).files == sorted([str(a), str(b)])
    listing = tmp_path / "list.txt"
    listing.write_text("a.jpg\n\n# comment\nsub/b.png\nmissing.jpg\nsub\n")
    src = resolve_source(str(listing))
    assert src.files == [str(a), str(b), "missing.jpg", str(b)]
    items = list(iter_frames(src))
    assert [type(i) for i in items] == [Frame, Frame, Failure, Frame] and items[2].path == "missing.jpg"
    assert "No such file" in items[2].reason
    assert resolve_source("0").stream == 0 and resolve_source(3).stream == 3
    assert resolve_source("rtsp://example.com/live").stream == "rtsp://example.com/live"
    failed = list(iter_frames(resolve_source("rtsp://127.0.0.1:1/none")))
    assert len(failed) == 1 and isinstance(failed[0], Failure) and "cannot open" in failed[0].reason
    with pytest.raises(SourceError, match="no such file"):
        resolve_source(str(tmp_path / "nothing_here"))
    with pytest.raises(SourceError, match="glob matches no files"):
        resolve_source(str(tmp_path / "*.webp"))
    with pytest.raises(SourceError, match="expected an \\(H, W, 3\\) BGR image"):
        resolve_source(np.zeros((4, 4, 2), np.uint8))
    groups = list(batched(iter(items), 2))
    assert [len(g) if isinstance(g, list) else "F" for g in groups] == [2, "F", 1]


def test_bad_video_is_reported(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 64)
    items = list(iter_frames(resolve_source(str(bad))))
    assert len(items) == 1 and isinstance(items[0], Failure) and items[0].path == str(bad)
