"""val.py end to end on a tiny generated set: plots, table, JSON in original pixels, pycocotools agreement, errors."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import yolobone.engine.detect.val_run
from yolobone.cli import val
from yolobone.engine.detect.coco_eval import evaluate_json_files
from yolobone.engine.backends import load_backend
from yolobone.engine.detect.val_run import ValConfig, run_val
from yolobone.data.datasets import create_dataloader
from yolobone.engine.detect.metrics import evaluate_detections
from yolobone.engine.detect.nms import non_max_suppression
from yolobone.data.synthetic import SHAPE_NAMES, make_detection_dataset
from tests.helpers import save_detector, tiny_detector

ROOT = Path(__file__).resolve().parents[1]
IMGSZ, BATCH, N_VAL = 64, 3, 8  # 3 rect batches -> val_batch0..2
PLOTS = ("confusion_matrix.png", "PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png",
         *(f"val_batch{i}_{kind}.jpg" for i in range(3) for kind in ("labels", "pred")))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    data = make_detection_dataset(root / "data", n_train=1, n_val=N_VAL, imgsz=96, max_objects=3, min_size=0.25,
                                  max_size=0.6, verbose=False)
    weights = save_detector(tiny_detector(len(SHAPE_NAMES)), root / "w.pt", SHAPE_NAMES)
    return {"root": root, "data": str(data), "weights": weights}


def _args(work, *extra) -> list:
    return ["--weights", work["weights"], "--data", work["data"], "--imgsz", str(IMGSZ), "--batch-size", str(BATCH),
            "--device", "cpu", "--workers", "0", "--project", str(work["root"] / "runs"), *extra]


@pytest.fixture(scope="module")
def run(work, capture_log):
    """One `val.py` run with every output on; the report run_val returned and the log lines."""
    reports = []

    def keep(cfg, model=None):
        reports.append(run_val(cfg, model))
        return reports[-1]

    with capture_log() as lines, pytest.MonkeyPatch.context() as mp:
        mp.setattr(yolobone.engine.detect.val_run, "run_val", keep)
        rc = val.main(_args(work, "--save-txt", "--save-conf", "--save-json", "--coco-eval"))
    assert rc == 0
    return {"report": reports[0], "lines": lines}


def test_writes_plots_labels_and_json(run):
    r = run["report"]
    assert r.save_dir.name == "exp" and r.save_dir.parent.name == "runs"
    for name in PLOTS:
        im = cv2.imread(str(r.save_dir / name))
        assert im is not None and min(im.shape[:2]) >= 64, name
    assert r.json_path == r.save_dir / "w_predictions.json" and r.json_path.is_file()
    txt = sorted((r.save_dir / "labels").glob("*.txt"))
    assert len(txt) == N_VAL
    rows = [line.split() for f in txt for line in f.read_text().splitlines()]
    assert rows and all(len(row) == 6 for row in rows)  # cls cx cy w h conf
    values = np.array(rows, float)
    assert (values[:, 1:5] >= 0).all() and (values[:, 1:5] <= 1).all()
    assert len(rows) == len(json.loads(r.json_path.read_text()))


def test_table_and_speed_line(run):
    lines, res = run["lines"], run["report"].result
    assert any(line.split()[:3] == ["Class", "Images", "Instances"] for line in lines)
    all_row = next(line.split() for line in lines if line.split()[:1] == ["all"])
    assert all_row[1:3] == [str(N_VAL), str(int(res.nt.sum()))]
    class_rows = [line.split()[0] for line in lines if line.split()[:1] and line.split()[0] in SHAPE_NAMES]
    assert class_rows == [c.name for c in res.classes] and len(class_rows) == int((res.nt > 0).sum())
    speed = [line for line in lines if line.startswith("Speed: ")]
    assert len(speed) == 1
    assert re.fullmatch(r"Speed: [\d.]+ms pre-process, [\d.]+ms inference, [\d.]+ms NMS per image at shape "
                        r"\(\d+, 3, \d+, \d+\)", speed[0])
    assert speed[0].endswith(f"at shape {run['report'].shape}")  # the last rect batch: 8 = 3 + 3 + 2 images
    assert run["report"].shape[0] == 2


def _replay(work) -> dict:
    """The run's predictions recomputed here: same loader, backend and NMS, boxes unletterboxed by hand.

    The backend val.py uses (fused, channels_last, packed), not a plain fused model: another memory layout runs other
    CPU kernels, whose rounding reorders near-equal scores at NMS and at the max_det cut.
    """
    model = load_backend(work["weights"], torch.device("cpu"))
    val_dir = str(Path(work["data"]).parent / "images" / "val")
    loader, _ = create_dataloader(val_dir, IMGSZ, BATCH, 32, pad=0.5, rect=True, workers=0, nc=len(SHAPE_NAMES))
    out, letterboxed = {}, 0
    with torch.no_grad():
        for im, _, paths, shapes in loader:
            preds = non_max_suppression(model(im.float() / 255), 0.001, 0.6, multi_label=True, max_det=300)
            for p, path, ((h0, w0), ((gy, gx), (padw, padh))) in zip(preds, paths, shapes):
                letterboxed += gx != 1 and (padw > 0 or padh > 0)
                p = p.double().numpy().copy()
                p[:, [0, 2]] = ((p[:, [0, 2]] - padw) / gx).clip(0, w0)
                p[:, [1, 3]] = ((p[:, [1, 3]] - padh) / gy).clip(0, h0)
                out[int(Path(path).stem)] = p
    assert letterboxed > 0, "the test set must exercise the letterbox (scale and padding)"
    return out


def _paired_rows(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """`want`'s (n, 6) [x, y, w, h, score, cls] rows reordered to pair up with `got`'s, class by class.

    Sorting is not enough: an untrained model gives many boxes the same score, so a score that lands on a 5-decimal
    rounding boundary in one run and not the other reorders them. The pairing minimises the summed box and score
    differences instead (scipy's linear_sum_assignment).
    """
    from scipy.optimize import linear_sum_assignment
    assert got.shape == want.shape
    out = np.empty_like(want)
    for c in np.unique(got[:, 5]):
        gi, wi = np.where(got[:, 5] == c)[0], np.where(want[:, 5] == c)[0]
        assert len(gi) == len(wi), f"class {c}: {len(gi)} records, {len(wi)} replayed"
        cost = np.abs(got[gi, None, :5] - want[None, wi, :5]).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        out[gi[rows]] = want[wi[cols]]
    return out


def test_json_records_in_original_pixels(run, work):
    records = json.loads(run["report"].json_path.read_text())
    replay = _replay(work)
    by_image = {}
    for rec in records:
        assert isinstance(rec["image_id"], int) and isinstance(rec["category_id"], int)
        by_image.setdefault(rec["image_id"], []).append([*rec["bbox"], rec["score"], rec["category_id"]])
    assert set(by_image) <= set(replay) and sum(len(p) for p in replay.values()) == len(records) > 0
    img_dir = Path(work["data"]).parent / "images" / "val"
    for image_id, p in replay.items():
        h0, w0 = cv2.imread(str(img_dir / f"{image_id:06d}.jpg")).shape[:2]
        got = np.array(by_image.get(image_id, []), float).reshape(-1, 6)
        want = np.concatenate((p[:, :2], p[:, 2:4] - p[:, :2], p[:, 4:]), 1)
        want = _paired_rows(got, np.array([[round(v, 3) for v in row[:4]] + [round(row[4], 5), row[5]]
                                           for row in want.tolist()]).reshape(-1, 6))  # rounded as in the JSON
        np.testing.assert_allclose(got[:, :4], want[:, :4], atol=2e-3)
        np.testing.assert_allclose(got[:, 4], want[:, 4], atol=2e-5)  # one 5-decimal rounding step apart at most
        np.testing.assert_array_equal(got[:, 5], want[:, 5])
        assert (got[:, 0] + got[:, 2] <= w0 + 1e-3).all() and (got[:, 1] + got[:, 3] <= h0 + 1e-3).all()


def test_coco_eval_agrees_with_ours(run, work):
    r = run["report"]
    res, stats = r.result, r.coco_stats
    assert stats is not None and r.gt_json_path.is_file()
    assert res.map50 > 0 and stats[1] > 0  # the comparison is not 0 == 0
    for coco, ours in ((stats[1], res.map50), (stats[0], res.map50_95)):
        # the JSON's rounding (bbox 3, score 5 decimals) is the only difference, so also within 5% at these small values
        assert abs(coco - ours) <= 0.002 and abs(coco - ours) <= 0.05 * ours
    # Our evaluator on exactly what pycocotools read (the rounded JSON) gives its numbers.
    gt = json.loads(r.gt_json_path.read_text())
    records = json.loads(r.json_path.read_text())
    ids = [im["id"] for im in gt["images"]]
    assert len(ids) == N_VAL

    def xyxy(b):
        return [b[0], b[1], b[0] + b[2], b[1] + b[3]]

    targets = [np.array([[a["category_id"], *xyxy(a["bbox"])] for a in gt["annotations"] if a["image_id"] == i],
                        float).reshape(-1, 5) for i in ids]
    preds = [np.array([[*xyxy(d["bbox"]), d["score"], d["category_id"]] for d in records if d["image_id"] == i],
                      float).reshape(-1, 6) for i in ids]
    ours = evaluate_detections(preds, targets, len(SHAPE_NAMES))
    assert abs(ours.map50 - stats[1]) < 1e-9 and abs(ours.map - stats[0]) < 1e-9


def test_ground_truth_json_in_original_pixels(run, work, tmp_path):
    """Perfect detections written from the label files score 1.0 against the ground truth val.py wrote."""
    data_dir = Path(work["data"]).parent
    perfect = []
    for f in sorted((data_dir / "labels" / "val").glob("*.txt")):
        h, w = cv2.imread(str(data_dir / "images" / "val" / f"{f.stem}.jpg")).shape[:2]
        for c, cx, cy, bw, bh in (map(float, line.split()) for line in f.read_text().splitlines()):
            perfect.append({"image_id": int(f.stem), "category_id": int(c), "score": 1.0,
                            "bbox": [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]})
    path = tmp_path / "perfect.json"
    path.write_text(json.dumps(perfect))
    gt = json.loads(run["report"].gt_json_path.read_text())
    assert len(gt["annotations"]) == len(perfect) > 0
    stats = evaluate_json_files(run["report"].gt_json_path, path)
    assert stats[0] == pytest.approx(1.0) and stats[1] == pytest.approx(1.0)


def _boxes_per_class(records) -> float:
    """Mean number of classes each distinct (image, box, score) was reported for."""
    keys = [(d["image_id"], *d["bbox"], d["score"]) for d in records]
    return len(keys) / len(set(keys))


def test_agnostic_nms(run, work):
    """The model scores every class alike, so class-aware NMS reports each box once per class, agnostic once."""
    r = run_val(ValConfig(weights=work["weights"], data=work["data"], imgsz=IMGSZ, batch_size=BATCH, device="cpu",
                          workers=0, agnostic=True, plots=False, save_json=True,
                          project=str(work["root"] / "agnostic")))
    records = json.loads(r.json_path.read_text())
    assert records and _boxes_per_class(records) < 1.05  # clipping to the image can merge a few boxes
    assert _boxes_per_class(json.loads(run["report"].json_path.read_text())) > 2


def test_speed_task_writes_nothing(work, log_lines):
    assert val.main(_args(work, "--task", "speed", "--project", str(work["root"] / "speed"))) == 0
    assert not (work["root"] / "speed").exists()
    assert any(line.startswith("Speed: ") and line.endswith(f"at shape (1, 3, {IMGSZ}, {IMGSZ})")
               for line in log_lines)


def test_bad_inputs_exit_2(work, capsys):
    root = work["root"]
    three = save_detector(tiny_detector(3), root / "three.pt", ["a", "b", "c"])
    cases = [(["--weights", str(root / "missing.pt")], "missing.pt: checkpoint not found"),
             (["--weights", three], "has 6"),
             (["--data", str(root / "nope.yaml")], "nope.yaml"),
             (["--task", "test"], "'test'"),
             (["--conf-thres", "1.5"], "--conf-thres")]
    for extra, expect in cases:
        assert val.main(_args(work, "--project", str(root / "bad"), *extra)) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and expect in err[0], (extra, err)
    assert not (root / "bad").exists()


def test_classify_task_dispatches_to_classifier(work, capsys):
    rc = val.main(["--task", "classify", "--weights", work["weights"], "--device", "cpu",
                   "--project", str(work["root"] / "cls")])
    assert rc == 2
    assert "'detect' checkpoint" in capsys.readouterr().err
