"""AutoAnchor: check a model's anchors against a dataset's boxes and re-estimate them when they fit poorly.

Fit is YOLOv5's: a label matches an anchor when neither its width nor its height ratio to the anchor exceeds
`thr` (anchor_t); best possible recall (BPR) is the fraction of labels matched by at least one anchor.
Below 0.98 new anchors come from k-means on the label sizes, refined by a seeded genetic evolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from yolobone.models.heads import Detect
from yolobone.utils.logging import LOGGER

BPR_THRESHOLD = 0.98
PREFIX = "AutoAnchor: "


@dataclass
class AnchorCheck:
    """Result of check_anchors: BPR and anchors-above-threshold before (and after, when re-estimated)."""

    bpr: float
    aat: float
    replaced: bool = False
    new_bpr: Optional[float] = None


def label_wh(labels: Sequence[np.ndarray], shapes: np.ndarray, imgsz: int,
             rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Label (w, h) in pixels of images resized to long side imgsz; rng adds YOLOv5's 0.9-1.1 scale jitter.

    Args:
        labels: per image (n, 5) [cls, cx, cy, w, h] normalised.
        shapes: (N, 2) image (w, h).
    """
    shapes = np.asarray(shapes, dtype=np.float64).reshape(-1, 2)
    if len(shapes) != len(labels):
        raise ValueError(f"label_wh: {len(labels)} label arrays for {len(shapes)} image shapes")
    if not len(shapes):
        return np.zeros((0, 2), np.float32)
    sizes = imgsz * shapes / shapes.max(1, keepdims=True)
    if rng is not None:
        sizes = sizes * rng.uniform(0.9, 1.1, size=(len(sizes), 1))
    parts = [np.asarray(lb, np.float64).reshape(-1, 5)[:, 3:5] * s for s, lb in zip(sizes, labels)]
    return np.concatenate(parts, 0).astype(np.float32)


def _ratio_fit(anchors: np.ndarray, wh: np.ndarray) -> np.ndarray:
    """(n_labels, n_anchors) worst-side ratio min(r, 1/r) over w and h; 1 = exact size match."""
    r = wh[:, None] / anchors[None]
    return np.minimum(r, 1 / r).min(2)


def anchor_metrics(anchors: np.ndarray, wh: np.ndarray, thr: float = 4.0) -> Tuple[float, float]:
    """(best possible recall, mean anchors above threshold per label) for pixel anchors (k, 2) and label wh (n, 2)."""
    if not len(wh):
        return 1.0, 0.0
    x = _ratio_fit(np.asarray(anchors, np.float64), np.asarray(wh, np.float64))
    return float((x.max(1) > 1 / thr).mean()), float((x > 1 / thr).sum(1).mean())


def anchor_fitness(anchors: np.ndarray, wh: np.ndarray, thr: float = 4.0) -> float:
    """Mean best-anchor fit over labels, counting only labels that are matched (YOLOv5's evolution objective)."""
    best = _ratio_fit(anchors, wh).max(1)
    return float((best * (best > 1 / thr)).mean())


def kmean_anchors(wh0: np.ndarray, n: int = 9, imgsz: int = 640, thr: float = 4.0, gen: int = 1000,
                  seed: int = 0, verbose: bool = True) -> np.ndarray:
    """Anchors (n, 2) in pixels, sorted by area: k-means on label sizes, then `gen` generations of mutation.

    Args:
        wh0: (N, 2) label widths and heights in pixels (see label_wh).
        n: number of anchors (levels x anchors per level).
        imgsz: image size, used for the random fallback when there are too few labels for k-means.
    """
    from scipy.cluster.vq import kmeans

    rng = np.random.default_rng(seed)
    wh0 = np.asarray(wh0, np.float64).reshape(-1, 2)
    tiny = int((wh0 < 3.0).any(1).sum())
    if tiny:
        LOGGER.warning(f"{PREFIX}{tiny} of {len(wh0)} labels are smaller than 3 pixels")
    wh = wh0[(wh0 >= 2.0).any(1)]  # labels of 2+ pixels on a side drive the estimate
    k = None
    if len(wh) >= n:
        s = wh.std(0)
        s[s == 0] = 1.0
        centroids = kmeans(wh / s, n, iter=30, seed=rng)[0] * s
        if len(centroids) == n:
            k = centroids
    if k is None:
        LOGGER.warning(f"{PREFIX}k-means needs {n} distinct label sizes, found {len(wh)}; starting from random anchors")
        k = np.sort(rng.random(n * 2)).reshape(n, 2) * imgsz
    k = k[np.argsort(k.prod(1))]
    f = anchor_fitness(k, wh, thr) if len(wh) else 0.0
    mutation_p, sigma = 0.9, 0.1
    if len(wh):
        from tqdm import tqdm
        for _ in tqdm(range(gen), desc=f"{PREFIX}evolving anchors", disable=not verbose, leave=False):
            v = np.ones(k.shape)
            while (v == 1).all():  # mutate until something changes
                v = ((rng.random(k.shape) < mutation_p) * rng.random() * rng.standard_normal(k.shape) * sigma
                     + 1).clip(0.3, 3.0)
            kg = (k * v).clip(min=2.0)
            fg = anchor_fitness(kg, wh, thr)
            if fg > f:
                f, k = fg, kg
    return k[np.argsort(k.prod(1))].astype(np.float32)


def check_anchors(detect: Detect, labels: Sequence[np.ndarray], shapes: np.ndarray, imgsz: int = 640,
                  thr: float = 4.0, seed: int = 0, gen: int = 1000, force: bool = False) -> AnchorCheck:
    """Check `detect`'s anchors against the labels; below BPR 0.98 (or when forced) re-estimate and write them.

    New anchors are kept only when their BPR is higher. They are written in grid units, smallest on P3, and the
    head's cached grids are dropped.
    """
    rng = np.random.default_rng(seed)
    wh = label_wh(labels, shapes, imgsz, rng)
    stride = detect.stride.detach().cpu().view(-1, 1, 1)
    anchors_px = (detect.anchors.detach().cpu() * stride).view(-1, 2).numpy()
    bpr, aat = anchor_metrics(anchors_px, wh, thr)
    msg = f"{PREFIX}{aat:.2f} anchors/target, {bpr:.3f} Best Possible Recall (BPR). "
    result = AnchorCheck(bpr=bpr, aat=aat)
    if bpr > BPR_THRESHOLD and not force:
        LOGGER.info(msg + "Current anchors are a good fit to dataset")
        return result
    LOGGER.info(msg + "Anchors are a poor fit to dataset, attempting to improve...")
    na = detect.anchors.numel() // 2
    new = kmean_anchors(wh, n=na, imgsz=imgsz, thr=thr, gen=gen, seed=seed)
    new_bpr = anchor_metrics(new, wh, thr)[0]
    result.new_bpr = new_bpr
    if new_bpr > bpr or force:
        write_anchors(detect, new)
        result.replaced = True
        LOGGER.info(f"{PREFIX}Done (BPR {bpr:.3f} -> {new_bpr:.3f}); new anchors (pixels): "
                    f"{np.round(new).astype(int).reshape(detect.nl, -1).tolist()}")
    else:
        LOGGER.info(f"{PREFIX}Done (no better anchors found: BPR {new_bpr:.3f}); keeping the original anchors")
    return result


def write_anchors(detect: Detect, anchors_px: np.ndarray) -> None:
    """Write pixel anchors (nl * na, 2) into the head in grid units, ordered by area so P3 gets the smallest."""
    a = torch.as_tensor(np.asarray(anchors_px, np.float32)).view(-1, 2)
    if a.shape[0] != detect.nl * detect.na:
        raise ValueError(f"write_anchors: the head has {detect.nl} levels x {detect.na} anchors, "
                         f"got {a.shape[0]} anchors")
    a = a[a.prod(1).argsort()]
    a = a.view(detect.nl, detect.na, 2).to(detect.anchors) / detect.stride.view(-1, 1, 1).to(detect.anchors)
    with torch.no_grad():
        detect.anchors.copy_(a)
    detect.reset_grids()


def anchors_pixels(detect: Detect) -> list:
    """Anchors in pixels as the YAML writes them: one flat [w, h, ...] list per level."""
    a = (detect.anchors.detach().cpu() * detect.stride.cpu().view(-1, 1, 1)).view(detect.nl, -1)
    return [[round(float(v), 2) for v in row] for row in a]
