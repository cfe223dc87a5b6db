"""One prediction engine: detection and classification both run engine.core.predictor.Predictor's loop, each with
its own step, and write their own outputs (YOLO label rows; top-k 'prob name' rows)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from yolobone.engine.classify.predict_run import predict_classifier
from yolobone.engine.classify.predictor import Classifier, ClassifyPredictStep
from yolobone.engine.core import predictor as core
from yolobone.engine.core.predictor import Predictor
from yolobone.engine.detect.predict_run import DetectConfig, run_detect
from yolobone.engine.detect.predictor import DetectPredictStep, Detector
from yolobone.models import DetectionModel
from yolobone.models.classification import ClassificationModel

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["red", "green", "blue"]
IMGSZ = 64


def _tiny(cfg: str) -> dict:
    d = yaml.safe_load((ROOT / "configs" / cfg).read_text())
    d["width_multiple"] = 0.125
    return d


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(48, 64), (64, 40), (56, 56)]):
        cv2.imwrite(str(folder / f"im{i}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return folder


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    det = DetectionModel(_tiny("yolov5n.yaml"), nc=len(NAMES)).eval()
    det.names = NAMES
    cls = ClassificationModel(_tiny("cls/yolov5n-cls.yaml"), nc=len(NAMES)).eval()
    cls.names = NAMES
    return Detector(det, device="cpu"), Classifier(model=cls, device="cpu")


def test_both_tasks_run_through_one_predictor_loop(models, images, tmp_path, monkeypatch, log_lines):
    detector, classifier = models
    assert isinstance(detector, Predictor) and isinstance(classifier, Predictor)
    for name in ("run", "predict_frames", "batches", "collect"):  # the loop itself is not re-implemented per task
        assert getattr(type(detector), name) is getattr(Predictor, name) is getattr(type(classifier), name)
    steps = []
    real = Predictor.predict_frames

    def spy(self, frames, opts):
        steps.append(type(self.step))
        return real(self, frames, opts)

    monkeypatch.setattr(Predictor, "predict_frames", spy)
    det_report = run_detect(DetectConfig(weights="", source=str(images), imgsz=IMGSZ, conf_thres=0.0, max_det=4,
                                         save_txt=True, save_conf=True, project=tmp_path / "det"), detector=detector)
    cls_report = predict_classifier(model=classifier.model, source=str(images), imgsz=IMGSZ, topk=2, device="cpu",
                                    save_dir=tmp_path / "cls", save_txt=True)
    assert steps == [DetectPredictStep] * 3 + [ClassifyPredictStep] * 3
    assert type(det_report) is type(cls_report) is core.PredictReport
    assert det_report.frames == cls_report.frames == 3 and det_report.exit_code == cls_report.exit_code == 0
    per_image = [m for m in log_lines if m.startswith("image ")]
    assert len(per_image) == 6 and all(m.endswith("ms") for m in per_image)
    speed = [m for m in log_lines if m.startswith("Speed: ")]
    assert len(speed) == 2 and "ms NMS per image at shape (1, 3, 64, 64)" in speed[0]
    assert "ms post-process per image at shape (1, 3, 64, 64)" in speed[1]


def test_outputs_of_each_task_equal_its_api(models, images, tmp_path):
    detector, classifier = models
    report = run_detect(DetectConfig(weights="", source=str(images), imgsz=IMGSZ, conf_thres=0.0, max_det=4,
                                     save_txt=True, save_conf=True, project=tmp_path / "det"), detector=detector)
    api = detector.predict(str(images), conf=0.0, imgsz=IMGSZ, max_det=4)
    assert len(api) == 3 and all(len(r) == 4 for r in api)  # conf 0 keeps max_det boxes of a random model
    for r in api:
        rows = (report.save_dir / "labels" / f"{Path(r.path).stem}.txt").read_text().splitlines()
        assert rows == r.yolo_lines(save_conf=True)
        values = np.array([[float(v) for v in row.split()] for row in rows])
        assert values.shape == (4, 6) and set(values[:, 0]) <= {0, 1, 2} and (values[:, 1:] >= 0).all()
        assert (report.save_dir / Path(r.path).name).is_file()  # annotated image, same name and format

    out = tmp_path / "cls"
    cls_report = predict_classifier(model=classifier.model, source=str(images), imgsz=IMGSZ, topk=2, device="cpu",
                                    save_dir=out, save_txt=True, verbose=False)
    preds = classifier.predict(str(images), imgsz=IMGSZ, topk=2)
    assert [p.top for p in preds] == [p.top for p in cls_report.predictions]
    for p in preds:
        rows = [row.split() for row in (out / "labels" / f"{Path(p.path).stem}.txt").read_text().splitlines()]
        assert [name for _, name in rows] == [n for _, n, _ in p.top] and {n for _, n in rows} <= set(NAMES)
        probs = [float(v) for v, _ in rows]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-3
        assert probs == pytest.approx([pr for _, _, pr in p.top], abs=1e-4)
        assert (out / Path(p.path).name).is_file()


def test_predict_raises_or_skips_unreadable_inputs_alike(models, images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    good = str(images / "im0.png")
    for api, kwargs in ((models[0].predict, {"imgsz": IMGSZ}), (models[1].predict, {"imgsz": IMGSZ})):
        with pytest.raises(core.InputReadError, match="broken.png"):
            api([good, str(bad)], **kwargs)
        assert len(api([good, str(bad)], skip_failed=True, **kwargs)) == 1
