"""Detection metrics: COCOeval-exact AP, YOLOv5-style P/R/F1 curves, confusion matrix and fitness.

The AP follows pycocotools' COCOeval for bounding boxes (area range 'all', no crowd annotations):
per image and class the detections are sorted by score and cut to `max_dets`; each one, in score order,
takes the unmatched ground truth of highest IoU at or above the threshold; precision is made monotone
(the envelope) and read at the 101 recall thresholds 0, 0.01, ..., 1; classes without ground truth are
left out of the mean. The matching runs for all images at once, one detection rank at a time.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from yolobone.utils.boxes import box_iou_np
from yolobone.utils.errors import YoloboneError

Array = Union[np.ndarray, torch.Tensor]

# The same values as COCOeval's Params for bounding boxes.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1, endpoint=True)
CONF_GRID_SIZE = 1000
_MAX_PAIRS_PER_CHUNK = 2_000_000  # bounds the memory of the vectorised IoU step


class MetricsInputError(YoloboneError, ValueError):
    """Raised when predictions or ground truth handed to the metrics have the wrong shape or classes."""


YOLOV5_FITNESS = (0.1, 0.9)  # weights of (mAP50, mAP50-95) in the fitness that picks best.pt: YOLOv5 (and YOLOv7)
ULTRALYTICS_FITNESS = (0.0, 1.0)  # Ultralytics 8.x: mAP50-95 alone


def fitness(map50: float, map50_95: float, weights: Tuple[float, float] = YOLOV5_FITNESS) -> float:
    """Model fitness used to pick best.pt: weights . (mAP50, mAP50-95), YOLOv5's 0.1 * mAP50 + 0.9 * mAP50-95 by
    default."""
    return weights[0] * float(map50) + weights[1] * float(map50_95)


def smooth(y: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Box-filter y with a window of about `fraction` of its length (edges padded with the end values)."""
    n = round(len(y) * fraction * 2) // 2 + 1  # odd window
    pad = np.ones(n // 2)
    padded = np.concatenate((pad * y[0], y, pad * y[-1]))
    return np.convolve(padded, np.ones(n) / n, mode="valid")


def _as_array(x: Optional[Array], width: int, what: str, index: int) -> np.ndarray:
    """(n, width) float64 numpy copy of a tensor/array; None or empty -> (0, width)."""
    if x is None:
        return np.zeros((0, width))
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.size == 0:
        return np.zeros((0, width))
    if a.ndim != 2 or a.shape[1] != width:
        raise MetricsInputError(f"{what} for image {index}: expected shape (n, {width}), got {a.shape}")
    return a.astype(np.float64)


def _class_ids(values: np.ndarray, nc: int, what: str, image: Union[int, np.ndarray]) -> np.ndarray:
    """Integer class ids; image is the image index of the rows (one for all, or one per row)."""
    ids = np.rint(values).astype(np.int64)
    bad = np.flatnonzero((ids < 0) | (ids >= nc))
    if len(bad):
        i = bad[0]
        index = image if np.isscalar(image) else image[i]
        raise MetricsInputError(f"{what} for image {index}: class {values[i]:g} outside [0, {nc - 1}] (nc={nc})")
    return ids


def _pair_iou(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """IoU of aligned xyxy boxes (n, 4) x (n, 4) -> (n,), without an epsilon, as COCO computes it."""
    iw = np.clip(np.minimum(d[:, 2], g[:, 2]) - np.maximum(d[:, 0], g[:, 0]), 0, None)
    ih = np.clip(np.minimum(d[:, 3], g[:, 3]) - np.maximum(d[:, 1], g[:, 1]), 0, None)
    inter = iw * ih
    union = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]) + (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted key array."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


@dataclass
class DetectionMetrics:
    """Validation result. Per-class arrays are indexed like `classes` (the classes that have ground truth)."""

    nc: int
    names: Dict[int, str]
    n_images: int
    n_instances: np.ndarray  # (nc,) ground-truth boxes per class
    classes: np.ndarray  # (K,) class indices with at least one ground-truth box, ascending
    ap: np.ndarray  # (K, T) COCO AP per class and IoU threshold
    precision: np.ndarray  # (K,) precision at conf_best (IoU 0.5)
    recall: np.ndarray  # (K,) recall at conf_best (IoU 0.5)
    f1: np.ndarray  # (K,) F1 at conf_best
    conf_best: float  # confidence maximising the smoothed mean F1
    px: np.ndarray  # (1000,) confidence grid of the curves
    p_curve: np.ndarray  # (K, 1000) precision vs confidence
    r_curve: np.ndarray  # (K, 1000) recall vs confidence
    f1_curve: np.ndarray  # (K, 1000) F1 vs confidence
    pr_curve: np.ndarray  # (K, 101) COCO precision envelope at IoU 0.5 vs recall_thresholds
    iou_thresholds: np.ndarray = field(default_factory=lambda: IOU_THRESHOLDS.copy())  # (T,)
    recall_thresholds: np.ndarray = field(default_factory=lambda: RECALL_THRESHOLDS.copy())  # (101,)

    @property
    def ap50(self) -> np.ndarray:
        """(K,) AP at IoU 0.5 per class."""
        return self.ap[:, 0] if self.ap.size else np.zeros(0)

    @property
    def ap50_95(self) -> np.ndarray:
        """(K,) AP averaged over IoU 0.50:0.95 per class."""
        return self.ap.mean(1) if self.ap.size else np.zeros(0)

    @property
    def map50(self) -> float:
        return float(self.ap50.mean()) if len(self.classes) else 0.0

    @property
    def map(self) -> float:
        """mAP50-95 (COCO 'AP')."""
        return float(self.ap50_95.mean()) if len(self.classes) else 0.0

    @property
    def mp(self) -> float:
        """Mean precision over classes with ground truth."""
        return float(self.precision.mean()) if len(self.classes) else 0.0

    @property
    def mr(self) -> float:
        """Mean recall over classes with ground truth."""
        return float(self.recall.mean()) if len(self.classes) else 0.0

    def mean_results(self) -> Tuple[float, float, float, float]:
        """(mp, mr, map50, map) as YOLOv5 writes them to results.csv."""
        return self.mp, self.mr, self.map50, self.map

    def fitness(self) -> float:
        return fitness(self.map50, self.map)

    def class_maps(self) -> np.ndarray:
        """(nc,) mAP50-95 per class; classes without ground truth get the overall mAP50-95."""
        maps = np.full(self.nc, self.map)
        maps[self.classes] = self.ap50_95
        return maps

    def class_result(self, i: int) -> Tuple[float, float, float, float]:
        """(P, R, AP50, AP50-95) of the i-th entry of `classes`."""
        return float(self.precision[i]), float(self.recall[i]), float(self.ap[i, 0]), float(self.ap[i].mean())


class DetectionEvaluator:
    """Accumulates per-image predictions and ground truth, then computes DetectionMetrics.

    Example:
        ev = DetectionEvaluator(nc=3)
        ev.update(preds, gts)  # lists: (n, 6) [x1, y1, x2, y2, conf, cls] and (m, 5) [cls, x1, y1, x2, y2]
        m = ev.compute(); print(m.map50, m.map)
    """

    def __init__(self, nc: int, names: Optional[Union[Sequence[str], Dict[int, str]]] = None, max_dets: int = 100):
        if nc < 1:
            raise MetricsInputError(f"DetectionEvaluator: nc must be >= 1, got {nc}")
        if max_dets < 1:
            raise MetricsInputError(f"DetectionEvaluator: max_dets must be >= 1, got {max_dets}")
        self.nc = nc
        if names is None:
            names = {i: str(i) for i in range(nc)}
        self.names = dict(names) if isinstance(names, dict) else dict(enumerate(names))
        if len(self.names) != nc:
            raise MetricsInputError(f"DetectionEvaluator: {len(self.names)} class names given for nc={nc}")
        self.max_dets = max_dets
        self.iou_thresholds = IOU_THRESHOLDS.copy()  # index 0 (0.5) is the one AP50 and the curves use
        self.reset()

    def reset(self) -> None:
        self._preds: List[np.ndarray] = []
        self._gts: List[np.ndarray] = []

    @property
    def n_images(self) -> int:
        return len(self._gts)

    def update(self, preds: Sequence[Optional[Array]], targets: Sequence[Optional[Array]]) -> None:
        """Add images: preds[i] (n, 6) [x1, y1, x2, y2, conf, cls], targets[i] (m, 5) [cls, x1, y1, x2, y2].

        Both in the same pixel coordinates; None or empty means no boxes for that image.
        """
        if len(preds) != len(targets):
            raise MetricsInputError(f"update: {len(preds)} prediction entries for {len(targets)} target entries")
        for p, t in zip(preds, targets):
            index = len(self._gts)
            self._preds.append(_as_array(p, 6, "predictions", index))
            self._gts.append(_as_array(t, 5, "targets", index))

    def compute(self) -> DetectionMetrics:
        """COCO AP per class and IoU threshold, plus P/R/F1 curves and P, R at the best mean-F1 confidence."""
        dt, gt = self._gather()
        gt_cls = gt["cls"]
        n_instances = np.bincount(gt_cls, minlength=self.nc)
        dt_tp = self._match(dt, gt)
        classes = np.flatnonzero(n_instances)
        # COCO accumulates per class over all images in (score desc, image order, input order) order; the
        # detections are in (image, class, score desc, input order) order already and lexsort is stable.
        order = np.lexsort((-dt["score"], dt["cls"]))
        cls_sorted, score_sorted, tp_sorted = dt["cls"][order], dt["score"][order], dt_tp[order]
        bounds = np.searchsorted(cls_sorted, np.arange(self.nc + 1))
        px = np.linspace(0, 1, CONF_GRID_SIZE)
        k = len(classes)
        ap = np.zeros((k, len(self.iou_thresholds)))
        pr_curve = np.zeros((k, len(RECALL_THRESHOLDS)))
        p_curve, r_curve = np.zeros((k, len(px))), np.zeros((k, len(px)))
        for i, c in enumerate(classes):
            s = slice(bounds[c], bounds[c + 1])
            ap[i], pr_curve[i], p_curve[i], r_curve[i] = _class_curves(tp_sorted[s], score_sorted[s],
                                                                       int(n_instances[c]), px)
        f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + 1e-16)
        best = int(smooth(f1_curve.mean(0), 0.1).argmax()) if k else 0
        return DetectionMetrics(nc=self.nc, names=self.names, n_images=self.n_images, n_instances=n_instances,
                                classes=classes, ap=ap, precision=p_curve[:, best], recall=r_curve[:, best],
                                f1=f1_curve[:, best], conf_best=float(px[best]), px=px, p_curve=p_curve,
                                r_curve=r_curve, f1_curve=f1_curve, pr_curve=pr_curve,
                                iou_thresholds=self.iou_thresholds.copy(),
                                recall_thresholds=RECALL_THRESHOLDS.copy())

    def _gather(self) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        """All boxes as flat arrays; detections cut to max_dets per (image, class) and sorted by group."""
        n_p = np.array([len(p) for p in self._preds], np.int64)
        n_g = np.array([len(t) for t in self._gts], np.int64)
        p = np.concatenate(self._preds) if self._preds else np.zeros((0, 6))
        t = np.concatenate(self._gts) if self._gts else np.zeros((0, 5))
        dt_img, gt_img = np.repeat(np.arange(len(n_p)), n_p), np.repeat(np.arange(len(n_g)), n_g)
        dt = {"img": dt_img, "cls": _class_ids(p[:, 5], self.nc, "predictions", dt_img), "score": p[:, 4],
              "box": p[:, :4]}
        gt = {"img": gt_img, "cls": _class_ids(t[:, 0], self.nc, "targets", gt_img), "box": t[:, 1:]}
        # group order (image, class, score desc, input order): lexsort is stable, as COCOeval's per-image sort
        key = dt["img"] * self.nc + dt["cls"]
        order = np.lexsort((-dt["score"], key))
        dt = {name: v[order] for name, v in dt.items()}
        key = key[order]
        starts = _group_starts(key)
        rank = np.arange(len(key)) - np.repeat(starts, np.diff(np.r_[starts, len(key)]))
        keep = rank < self.max_dets
        dt = {name: v[keep] for name, v in dt.items()}
        dt["rank"] = rank[keep]
        order = np.argsort(gt["img"] * self.nc + gt["cls"], kind="stable")  # input order kept inside a group
        gt = {name: v[order] for name, v in gt.items()}
        return dt, gt

    def _candidate_pairs(self, dt: Dict[str, np.ndarray], gt: Dict[str, np.ndarray],
                         min_iou: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dt index, gt index, IoU) of every same-image same-class pair with IoU >= min_iou."""
        dkey = dt["img"] * self.nc + dt["cls"]
        gkey = gt["img"] * self.nc + gt["cls"]
        start = np.searchsorted(gkey, dkey, "left")
        count = np.searchsorted(gkey, dkey, "right") - start
        out_d, out_g, out_iou = [], [], []
        cum = np.cumsum(count)
        lo = 0
        while lo < len(dkey):  # chunks of detections holding at most ~_MAX_PAIRS_PER_CHUNK pairs
            base = cum[lo - 1] if lo else 0
            hi = max(int(np.searchsorted(cum, base + _MAX_PAIRS_PER_CHUNK, "right")), lo + 1)
            c = count[lo:hi]
            d_idx = np.repeat(np.arange(lo, hi), c)
            offsets = np.arange(len(d_idx)) - np.repeat(np.cumsum(c) - c, c)
            g_idx = start[d_idx] + offsets
            iou = _pair_iou(dt["box"][d_idx], gt["box"][g_idx])
            keep = iou >= min_iou
            out_d.append(d_idx[keep])
            out_g.append(g_idx[keep])
            out_iou.append(iou[keep])
            lo = hi
        if not out_d:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(out_d), np.concatenate(out_g), np.concatenate(out_iou)

    def _match(self, dt: Dict[str, np.ndarray], gt: Dict[str, np.ndarray]) -> np.ndarray:
        """(n_dt, T) bool: detection matched a ground truth at each IoU threshold (COCOeval's greedy rule)."""
        thr = np.minimum(self.iou_thresholds, 1 - 1e-10)  # as COCOeval, so IoU 1.0 still matches at 1.0
        d_idx, g_idx, iou = self._candidate_pairs(dt, gt, float(thr.min()))
        tp = np.zeros((len(dt["score"]), len(thr)), bool)
        gt_used = np.zeros((len(gt["cls"]), len(thr)), bool)
        if len(d_idx) == 0:
            return tp
        # Detections of equal rank belong to different (image, class) groups, so they never compete for a
        # ground truth and can be matched together. Inside a detection the candidates run by IoU, then
        # ground-truth order, so the last usable one is COCOeval's pick (it keeps the later of equal IoUs).
        rank = dt["rank"][d_idx]
        order = np.lexsort((g_idx, iou, d_idx, rank))
        d_idx, g_idx, iou, rank = d_idx[order], g_idx[order], iou[order], rank[order]
        rank_starts = _group_starts(rank)
        for lo, hi in zip(rank_starts, np.r_[rank_starts[1:], len(rank)]):
            d, g = d_idx[lo:hi], g_idx[lo:hi]
            usable = (iou[lo:hi, None] >= thr[None, :]) & ~gt_used[g]  # (P, T)
            pos = np.where(usable, np.arange(hi - lo)[:, None], -1)
            seg = _group_starts(d)
            last = np.maximum.reduceat(pos, seg, axis=0)  # (n_dt in this rank, T)
            rows, ts = np.nonzero(last >= 0)
            chosen = last[rows, ts]
            gt_used[g[chosen], ts] = True
            tp[d[chosen], ts] = True
        return tp


def _class_curves(tp: np.ndarray, score: np.ndarray, n_gt: int,
                  px: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One class, detections in score order: (AP per threshold, PR envelope at IoU 0.5, P(conf), R(conf))."""
    n_thr = tp.shape[1]
    if len(score) == 0:
        return np.zeros(n_thr), np.zeros(len(RECALL_THRESHOLDS)), np.zeros(len(px)), np.zeros(len(px))
    tpc = np.cumsum(tp, axis=0, dtype=np.float64).T  # (T, n)
    fpc = np.cumsum(~tp, axis=0, dtype=np.float64).T
    rc = tpc / n_gt
    pr = tpc / (tpc + fpc + np.spacing(1))  # same arithmetic as COCOeval
    envelope = np.flip(np.maximum.accumulate(np.flip(pr, 1), axis=1), 1)
    q = np.zeros((n_thr, len(RECALL_THRESHOLDS)))
    for t in range(n_thr):
        idx = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
        ok = idx < len(score)
        q[t, ok] = envelope[t, idx[ok]]
    # YOLOv5-style curves vs confidence at IoU 0.5: recall 0 and precision 1 above the highest score
    p_conf = np.interp(-px, -score, pr[0], left=1)
    r_conf = np.interp(-px, -score, rc[0], left=0)
    return q.mean(1), q[0], p_conf, r_conf


def evaluate_detections(preds: Sequence[Optional[Array]], targets: Sequence[Optional[Array]], nc: int,
                        names: Optional[Union[Sequence[str], Dict[int, str]]] = None,
                        max_dets: int = 100) -> DetectionMetrics:
    """One-call form of DetectionEvaluator: update with all images, then compute."""
    ev = DetectionEvaluator(nc, names=names, max_dets=max_dets)
    ev.update(preds, targets)
    return ev.compute()


class ConfusionMatrix:
    """(nc + 1) x (nc + 1) counts, rows = predicted class, columns = true class; index nc is background."""

    def __init__(self, nc: int, conf: float = 0.25, iou_thres: float = 0.45):
        self.nc = nc
        self.conf = conf
        self.iou_thres = iou_thres
        self.matrix = np.zeros((nc + 1, nc + 1), np.int64)
        self.n_images = 0

    def process_batch(self, detections: Optional[Array], labels: Optional[Array]) -> None:
        """One image: detections (n, 6) [x1, y1, x2, y2, conf, cls], labels (m, 5) [cls, x1, y1, x2, y2].

        Detections above `conf` and labels are paired one-to-one, highest IoU first, class-agnostic,
        when IoU > iou_thres; unpaired labels count as missed (background row), unpaired detections as
        background false positives (background column).
        """
        index = self.n_images
        self.n_images += 1
        det = _as_array(detections, 6, "confusion-matrix detections", index)
        lab = _as_array(labels, 5, "confusion-matrix labels", index)
        det = det[det[:, 4] > self.conf]
        d_cls = _class_ids(det[:, 5], self.nc, "confusion-matrix detections", index)
        g_cls = _class_ids(lab[:, 0], self.nc, "confusion-matrix labels", index)
        d_used = np.zeros(len(det), bool)
        g_used = np.zeros(len(lab), bool)
        if len(det) and len(lab):
            iou = box_iou_np(lab[:, 1:], det[:, :4])  # (m, n)
            gi, di = np.nonzero(iou > self.iou_thres)
            for k in np.argsort(-iou[gi, di], kind="stable"):
                g, d = gi[k], di[k]
                if not (g_used[g] or d_used[d]):
                    g_used[g] = d_used[d] = True
                    self.matrix[d_cls[d], g_cls[g]] += 1
        np.add.at(self.matrix, (np.full((~g_used).sum(), self.nc), g_cls[~g_used]), 1)
        np.add.at(self.matrix, (d_cls[~d_used], np.full((~d_used).sum(), self.nc)), 1)

    def tp_fp(self) -> Tuple[np.ndarray, np.ndarray]:
        """(nc,) true positives and false positives per class (background excluded)."""
        tp = np.diag(self.matrix)[:-1]
        fp = self.matrix[:-1].sum(1) - tp
        return tp, fp

    def normalized(self) -> np.ndarray:
        """Columns divided by their sums (the fraction of each true class predicted as each class)."""
        total = self.matrix.sum(0, keepdims=True)
        return np.divide(self.matrix, total, out=np.zeros(self.matrix.shape), where=total > 0)


def coco_ground_truth(targets: Sequence[Optional[Array]], nc: int,
                      names: Optional[Union[Sequence[str], Dict[int, str]]] = None,
                      image_ids: Optional[Sequence[int]] = None,
                      class_map: Optional[Sequence[int]] = None) -> dict:
    """COCO-format ground-truth dict from per-image (m, 5) [cls, x1, y1, x2, y2] targets.

    image_ids default to 1..N; class_map[c] gives the category id of class c (default c).
    """
    names = dict(enumerate(names)) if names is not None and not isinstance(names, dict) else names
    image_ids = list(range(1, len(targets) + 1)) if image_ids is None else list(image_ids)
    cat = list(range(nc)) if class_map is None else list(class_map)
    images, annotations = [], []
    for index, (img_id, t) in enumerate(zip(image_ids, targets)):
        images.append({"id": img_id})
        t = _as_array(t, 5, "targets", index)
        for c, x1, y1, x2, y2 in t:
            w, h = x2 - x1, y2 - y1
            annotations.append({"id": len(annotations) + 1, "image_id": img_id, "category_id": cat[int(c)],
                                "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})
    categories = [{"id": cat[c], "name": (names or {}).get(c, str(c))} for c in range(nc)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_detections(preds: Sequence[Optional[Array]], image_ids: Optional[Sequence[Union[int, str]]] = None,
                    class_map: Optional[Sequence[int]] = None) -> List[dict]:
    """COCO results records {image_id, category_id, bbox [x, y, w, h], score} from (n, 6) predictions."""
    image_ids = list(range(1, len(preds) + 1)) if image_ids is None else list(image_ids)
    records = []
    for index, (img_id, p) in enumerate(zip(image_ids, preds)):
        for x1, y1, x2, y2, conf, c in _as_array(p, 6, "predictions", index):
            records.append({"image_id": img_id, "category_id": int(c) if class_map is None else class_map[int(c)],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": conf})
    return records


def coco_evaluate(ground_truth: dict, detections: List[dict], max_dets: int = 100) -> np.ndarray:
    """pycocotools COCOeval (bbox) on in-memory dicts; returns its 12 `stats` ([0] = mAP50-95, [1] = mAP50).

    max_dets takes the place of COCOeval's 100 detections per image. No detections give zeros
    (pycocotools cannot load an empty result list).
    """
    from pycocotools.coco import COCO  # optional dependency: only --coco-eval, tests and benchmarks need it
    from pycocotools.cocoeval import COCOeval

    if not detections:
        return np.zeros(12)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = sorted([1, min(10, max_dets), max_dets])  # COCOeval sorts them; the last is used
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = np.asarray(ev.stats)
    if max_dets != 100:  # summarize() reads stats[0] at maxDets=100 whatever the setting
        s = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K) at area 'all'
        stats[0] = s[s > -1].mean() if (s > -1).any() else -1.0
    return stats
