"""COCOeval-exact metrics checked against pycocotools, plus confusion matrix, fitness and plots."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from yolobone.engine.detect.metrics import (ConfusionMatrix, DetectionEvaluator, MetricsInputError, coco_detections,
                           coco_evaluate, coco_ground_truth, evaluate_detections, fitness)

NC = 6
GT_ONLY_CLASS = 4  # has ground truth, never predicted
PRED_ONLY_CLASS = 5  # predicted, never in the ground truth


def _random_boxes(rng: np.random.Generator, n: int, size: float = 320.0) -> np.ndarray:
    xy = rng.uniform(0, size * 0.8, (n, 2))
    wh = rng.uniform(4, size * 0.3, (n, 2))
    return np.concatenate((xy, xy + wh), 1)


def _jitter(rng: np.random.Generator, box: np.ndarray, scale: float) -> np.ndarray:
    """Shift the centre and rescale the sides of an xyxy box, keeping it non-degenerate."""
    c = (box[:2] + box[2:]) / 2 + rng.normal(0, scale, 2) * (box[2:] - box[:2])
    s = (box[2:] - box[:2]) * rng.uniform(1 - scale * 2, 1 + scale * 2, 2)
    return np.concatenate((c - s / 2, c + s / 2))


def make_dataset(seed: int, n_images: int = 40, tie_scores: bool = False, crowd: int = 130):
    """Ground truth and predictions with perturbed, missed, duplicated, mislabelled and spurious boxes."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(n_images):
        kind = i % 10
        if kind == 0:  # empty image, no predictions
            gts.append(np.zeros((0, 5)))
            preds.append(np.zeros((0, 6)))
            continue
        m = 0 if kind == 1 else (crowd if kind == 2 and i < 30 else int(rng.integers(1, 15)))
        cls = np.full(m, 1) if kind == 2 else rng.integers(0, NC - 1, m)  # crowded images: one class
        g = np.concatenate((cls[:, None], _random_boxes(rng, m)), 1)
        if kind == 3 and m > 1:
            g[1] = g[0]  # duplicated ground truth: equal IoUs, COCOeval keeps the later one
        rows = []
        for c, *box in g:
            if c == GT_ONLY_CLASS or rng.random() < 0.15:
                continue  # missed
            for _ in range(1 + (rng.random() < 0.15)):  # sometimes a duplicate detection
                label = c if rng.random() < 0.9 else rng.integers(0, NC)
                rows.append([*_jitter(rng, np.array(box), rng.choice([0.02, 0.06, 0.15])), rng.random(), label])
        for _ in range(int(rng.integers(0, 6)) + (5 if kind == 1 else 0)):  # spurious, also on empty images
            label = PRED_ONLY_CLASS if rng.random() < 0.3 else rng.integers(0, NC)
            rows.append([*_random_boxes(rng, 1)[0], rng.random() * 0.6, label])
        p = np.array(rows, dtype=np.float64).reshape(-1, 6)
        if tie_scores:
            p[:, 4] = np.round(p[:, 4], 1)  # many equal scores: tests COCOeval's tie order
        gts.append(g)
        preds.append(p[rng.permutation(len(p))])
    return preds, gts


def _cocoeval(preds, gts, max_dets: int = 100):
    stats = coco_evaluate(coco_ground_truth(gts, NC), coco_detections(preds), max_dets=max_dets)
    return stats[1], stats[0]


@pytest.mark.parametrize("seed,tie_scores", [(0, False), (1, False), (2, True), (3, False)])
def test_matches_pycocotools(seed: int, tie_scores: bool):
    preds, gts = make_dataset(seed, tie_scores=tie_scores)
    assert any(len(p) > 100 for p in preds)  # the max_dets cut is exercised
    ours = evaluate_detections(preds, gts, NC)
    map50, map5095 = _cocoeval(preds, gts)
    assert abs(ours.map50 - map50) <= 0.002
    assert abs(ours.map - map5095) <= 0.002
    assert 0.2 < ours.map < ours.map50 < 1.0  # a non-trivial operating point
    assert GT_ONLY_CLASS in ours.classes and PRED_ONLY_CLASS not in ours.classes
    assert ours.ap[list(ours.classes).index(GT_ONLY_CLASS)].max() == 0.0


def test_matches_pycocotools_small_max_dets():
    preds, gts = make_dataset(4, n_images=30)
    ours = evaluate_detections(preds, gts, NC, max_dets=5)
    map50, map5095 = _cocoeval(preds, gts, max_dets=5)
    assert abs(ours.map50 - map50) <= 0.002 and abs(ours.map - map5095) <= 0.002


def test_iou_exactly_at_threshold_matches_pycocotools():
    gts = [np.array([[0, 0, 0, 10, 10], [0, 20, 0, 30, 10]], float), np.array([[1, 0, 0, 8, 8]], float)]
    preds = [np.array([[0, 0, 10, 5, 0.9, 0],  # IoU exactly 0.5: a match at 0.5 only
                       [20, 0, 30, 10, 0.8, 0]], float),  # IoU 1: a match at every threshold
             np.array([[0, 0, 8, 6, 0.7, 1]], float)]  # IoU exactly 0.75
    ours = evaluate_detections(preds, gts, NC)
    map50, map5095 = _cocoeval(preds, gts)
    assert ours.map50 == pytest.approx(map50, abs=1e-12) and ours.map == pytest.approx(map5095, abs=1e-12)
    assert ours.map50 == pytest.approx(1.0)


def test_perfect_and_empty_predictions():
    _, gts = make_dataset(5, n_images=30, crowd=100)
    perfect = [np.concatenate((g[:, 1:], np.full((len(g), 1), 0.9), g[:, :1]), 1) for g in gts]
    m = evaluate_detections(perfect, gts, NC)
    assert m.map50 == pytest.approx(1.0) and m.map == pytest.approx(1.0)
    assert np.allclose(m.precision, 1.0) and np.allclose(m.recall, 1.0)
    none = evaluate_detections([None] * len(gts), gts, NC)
    assert none.map50 == 0.0 and none.map == 0.0 and none.mp == 0.0 and none.mr == 0.0


def test_update_in_batches_and_tensors_equals_one_call():
    preds, gts = make_dataset(6, n_images=40)
    whole = evaluate_detections(preds, gts, NC)
    ev = DetectionEvaluator(NC, names=[f"c{i}" for i in range(NC)])
    for k in range(0, len(gts), 16):
        ev.update([torch.from_numpy(p).float() for p in preds[k:k + 16]], [torch.from_numpy(g) for g in gts[k:k + 16]])
    batched = ev.compute()
    assert batched.n_images == 40 and batched.names[2] == "c2"
    assert batched.map == pytest.approx(whole.map, abs=1e-5)
    assert batched.map50 == pytest.approx(whole.map50, abs=1e-5)


def test_result_fields_are_consistent():
    preds, gts = make_dataset(7, n_images=30)
    m = evaluate_detections(preds, gts, NC)
    k = len(m.classes)
    assert m.ap.shape == (k, 10) and m.pr_curve.shape == (k, 101)
    assert m.p_curve.shape == m.r_curve.shape == m.f1_curve.shape == (k, 1000)
    assert np.allclose(m.pr_curve.mean(1), m.ap50)  # the PR curve is what AP50 integrates
    assert m.n_instances.sum() == sum(len(g) for g in gts)
    assert m.mean_results() == (m.mp, m.mr, m.map50, m.map)
    assert m.fitness() == pytest.approx(0.1 * m.map50 + 0.9 * m.map)
    maps = m.class_maps()
    assert maps.shape == (NC,) and maps[PRED_ONLY_CLASS] == pytest.approx(m.map)
    assert np.all(np.diff(m.r_curve, axis=1) <= 1e-12)  # recall falls as the confidence threshold rises


def test_fitness():
    assert fitness(0.5, 0.3) == pytest.approx(0.05 + 0.27)


def test_bad_input_raises():
    with pytest.raises(MetricsInputError, match=r"predictions for image 0: expected shape \(n, 6\)"):
        evaluate_detections([np.zeros((2, 5))], [np.zeros((0, 5))], NC)
    with pytest.raises(MetricsInputError, match="class 7"):
        evaluate_detections([None], [np.array([[7, 0, 0, 5, 5]])], NC)
    with pytest.raises(MetricsInputError, match="2 prediction entries for 1 target"):
        evaluate_detections([None, None], [None], NC)


def test_confusion_matrix():
    cm = ConfusionMatrix(nc=3, conf=0.25, iou_thres=0.45)
    labels = np.array([[0, 0, 0, 10, 10], [1, 20, 20, 30, 30], [2, 50, 50, 60, 60]], float)
    dets = np.array([[0, 0, 10, 10, 0.9, 0],  # correct
                     [0.5, 0, 10, 10, 0.8, 1],  # duplicate of the first: background false positive
                     [20, 20, 30, 30, 0.9, 2],  # right box, wrong class
                     [50, 50, 60, 60, 0.1, 2],  # below conf: label 2 is missed
                     [80, 80, 90, 90, 0.9, 1]], float)  # spurious
    cm.process_batch(dets, labels)
    cm.process_batch(None, labels[:1])  # image without detections: a miss
    expected = np.zeros((4, 4), np.int64)
    expected[0, 0] = 1
    expected[2, 1] = 1
    expected[3, 2] = 1
    expected[3, 0] = 1
    expected[1, 3] = 2
    assert np.array_equal(cm.matrix, expected)
    tp, fp = cm.tp_fp()
    assert tp.tolist() == [1, 0, 0] and fp.tolist() == [0, 2, 1]
    assert np.allclose(cm.normalized()[:, :3].sum(0), 1.0)


def _write_results_csv(path, n_epochs: int = 12) -> None:
    cols = ["epoch", "train/box_loss", "train/obj_loss", "train/cls_loss", "metrics/precision", "metrics/recall",
            "metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "val/box_loss", "val/obj_loss", "val/cls_loss",
            "x/lr0", "x/lr1", "x/lr2"]
    lines = [",".join(f"{c:>22}" for c in cols)]  # YOLOv5 pads the header
    for e in range(n_epochs):
        decay = np.exp(-e / 5)
        lines.append(",".join(f"{v:>22.5g}" for v in [e, *(0.1 * decay,) * 3, *(1 - decay,) * 4, *(0.08 * decay,) * 3,
                                                      0.01, 0.01, 0.01]))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_plots_write_png_files(tmp_path):
    from PIL import Image

    from yolobone.engine.core.results_csv import PlotInputError
    from yolobone.engine.detect.plots import plot_confusion_matrix, plot_metric_curves, plot_results

    preds, gts = make_dataset(8, n_images=20)
    names = ["person", "car", "dog", "cat", "bus", "truck"]
    files = plot_metric_curves(evaluate_detections(preds, gts, NC, names=names), tmp_path)
    assert [f.name for f in files] == ["PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png"]
    cm = ConfusionMatrix(NC)
    for p, g in zip(preds, gts):
        cm.process_batch(p, g)
    files.append(plot_confusion_matrix(cm.matrix, names, tmp_path / "confusion_matrix.png"))
    _write_results_csv(tmp_path / "results.csv")
    files.append(plot_results(tmp_path / "results.csv"))
    assert files[-1] == tmp_path / "results.png"
    for f in files:
        with Image.open(f) as im:
            assert im.format == "PNG" and min(im.size) >= 600
    with pytest.raises(PlotInputError, match="missing column"):
        (tmp_path / "bad.csv").write_text("epoch, train/box_loss\n0, 0.1\n")
        plot_results(tmp_path / "bad.csv")
    with pytest.raises(PlotInputError, match="5 names for a matrix of 6 classes"):
        plot_confusion_matrix(cm.matrix, names[:5], tmp_path / "cm.png")
