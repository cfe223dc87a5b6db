"""Time mAP on a synthetic validation set: our vectorised evaluator vs pycocotools' COCOeval.

    python benchmarks/metrics.py                       # 5,000 images x 20 detections, ~10 boxes each
    python benchmarks/metrics.py --images 500 --nc 3

Prints both timings, their ratio and the two mAP figures (which must agree to 0.002).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import time
from typing import List, Tuple

import numpy as np
import torch

from yolobone.engine.detect.metrics import DetectionEvaluator, coco_detections, coco_ground_truth


def make_set(n_images: int, n_dets: int, mean_gts: int, nc: int,
             seed: int) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Per image: mean_gts +- 50 % boxes; n_dets detections, most of them jittered copies of a box."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_images):
        m = int(rng.integers(max(mean_gts // 2, 0), mean_gts + mean_gts // 2 + 1))
        xy = rng.uniform(0, 500, (m, 2))
        g = np.concatenate((rng.integers(0, nc, (m, 1)), xy, xy + rng.uniform(8, 140, (m, 2))), 1)
        n_hit = min(int(n_dets * 0.7), m)  # the rest are spurious
        picked = g[rng.permutation(m)[:n_hit]]
        src = picked[:, 1:]
        centre = (src[:, :2] + src[:, 2:]) / 2 + rng.normal(0, 0.08, (n_hit, 2)) * (src[:, 2:] - src[:, :2])
        size = (src[:, 2:] - src[:, :2]) * rng.uniform(0.75, 1.3, (n_hit, 2))
        hits = np.concatenate((centre - size / 2, centre + size / 2), 1)
        xy = rng.uniform(0, 500, (n_dets - n_hit, 2))
        spurious = np.concatenate((xy, xy + rng.uniform(8, 140, (n_dets - n_hit, 2))), 1)
        hit_cls = np.where(rng.random(n_hit) < 0.9, picked[:, 0], rng.integers(0, nc, n_hit))  # 10 % mislabelled
        cls = np.concatenate((hit_cls, rng.integers(0, nc, n_dets - n_hit)))
        score = np.concatenate((rng.uniform(0.2, 1.0, n_hit), rng.uniform(0.0, 0.6, n_dets - n_hit)))
        preds.append(np.concatenate((np.concatenate((hits, spurious)), score[:, None], cls[:, None]), 1))
        gts.append(g)
    return preds, gts


def time_ours(preds: List[np.ndarray], gts: List[np.ndarray], nc: int) -> Tuple[float, float, float]:
    """(seconds, mAP50, mAP50-95), fed as float32 tensors the way the validation loop feeds it."""
    preds_t = [torch.from_numpy(p).float() for p in preds]
    gts_t = [torch.from_numpy(g).float() for g in gts]
    t0 = time.perf_counter()
    ev = DetectionEvaluator(nc)
    ev.update(preds_t, gts_t)
    m = ev.compute()
    return time.perf_counter() - t0, m.map50, m.map


def time_cocoeval(preds: List[np.ndarray], gts: List[np.ndarray], nc: int) -> Tuple[float, float, float, float]:
    """(seconds to load, seconds for evaluate+accumulate+summarize, mAP50, mAP50-95) on the same float32 boxes."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict = coco_ground_truth([g.astype(np.float32) for g in gts], nc)
    records = coco_detections([p.astype(np.float32) for p in preds])
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(records)
        t1 = time.perf_counter()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, float(ev.stats[1]), float(ev.stats[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--dets", type=int, default=20, help="detections per image")
    ap.add_argument("--gts", type=int, default=10, help="mean ground-truth boxes per image")
    ap.add_argument("--nc", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="our timing is the best of this many runs")
    opt = ap.parse_args()

    preds, gts = make_set(opt.images, opt.dets, opt.gts, opt.nc, opt.seed)
    n_gt = sum(len(g) for g in gts)
    print(f"{opt.images} images, {opt.images * opt.dets} detections, {n_gt} ground-truth boxes, {opt.nc} classes")
    ours = [time_ours(preds, gts, opt.nc) for _ in range(opt.repeat)]
    t_ours, map50, map5095 = min(ours)
    t_load, t_coco, c_map50, c_map5095 = time_cocoeval(preds, gts, opt.nc)
    print(f"ours      : {t_ours:8.3f} s  mAP50 {map50:.5f}  mAP50-95 {map5095:.5f}  (best of {opt.repeat})")
    print(f"COCOeval  : {t_coco:8.3f} s  mAP50 {c_map50:.5f}  mAP50-95 {c_map5095:.5f}  "
          f"(evaluate+accumulate+summarize; +{t_load:.3f} s to build COCO and loadRes)")
    print(f"speed-up  : {t_coco / t_ours:8.1f} x")
    d50, d = abs(map50 - c_map50), abs(map5095 - c_map5095)
    print(f"|diff|    : mAP50 {d50:.2e}  mAP50-95 {d:.2e}  -> {'agree' if max(d50, d) <= 0.002 else 'DISAGREE'}")
    if max(d50, d) > 0.002:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
