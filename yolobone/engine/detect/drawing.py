"""Drawing boxes on images: a class palette, labelled boxes, batch mosaics and label statistics (labels.jpg)."""
from __future__ import annotations

import colorsys
import math
import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from yolobone.utils.boxes import xywh2xyxy

PathLike = Union[str, os.PathLike]
Names = Union[Sequence[str], Dict[int, str], None]
ArrayLike = Union[np.ndarray, torch.Tensor]
MIN_FONT_SCALE = 0.1  # Hershey text about 3 px high: the smallest tag still drawn


def class_colors(i: int) -> Tuple[int, int, int]:
    """A saturated (b, g, r) colour per class id; neighbouring ids get far-apart hues (golden-ratio steps)."""
    i = int(i)
    hue = (i * 0.618033988749895) % 1.0
    sat = (0.90, 0.65)[(i // 10) % 2]
    val = (0.95, 0.75)[(i // 20) % 2]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(b * 255), int(g * 255), int(r * 255)


def _name(names: Names, c: int) -> str:
    if names is None:
        return str(c)
    if isinstance(names, dict):
        return str(names.get(c, c))
    return str(names[c]) if 0 <= c < len(names) else str(c)


def _numpy(x: Optional[ArrayLike]) -> Optional[np.ndarray]:
    if x is None:
        return None
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _fit_tag(text: str, fs: float, ft: int, W: int, H: int) -> Tuple[float, int, Tuple[int, int], int]:
    """Font scale, thickness, text size and baseline for a tag at most half the image wide and an eighth high.

    Text size is not linear in the scale (glyph rounding, thickness), so the scale is reduced until the measured
    tag fits, down to a floor where the text is a few pixels high.
    """
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, ft)
    for _ in range(20):
        shrink = min(0.5 * W / (tw + 2), H / 8 / (th + base + 2))
        if shrink >= 1.0 or fs <= MIN_FONT_SCALE:
            break
        fs, ft = max(fs * min(shrink, 0.95), MIN_FONT_SCALE), max(int(ft * shrink), 1)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, ft)
    return fs, ft, (tw, th), base


def draw_boxes(img_bgr: np.ndarray, boxes_xyxy: ArrayLike, cls: ArrayLike, conf: Optional[ArrayLike] = None,
               names: Names = None, line_thickness: Optional[int] = None, hide_labels: bool = False,
               hide_conf: bool = False) -> np.ndarray:
    """A copy of img_bgr with pixel xyxy boxes and "name conf" tags on a filled background, kept inside the image."""
    img = np.ascontiguousarray(img_bgr).copy()
    boxes, classes, confs = _numpy(boxes_xyxy), _numpy(cls), _numpy(conf)
    if boxes is None or len(boxes) == 0:
        return img
    boxes = boxes.reshape(-1, 4)
    classes = classes.reshape(-1).astype(int)
    H, W = img.shape[:2]
    lw = line_thickness or max(round((H + W) / 2 * 0.003), 2)
    font_scale = max(lw / 3, 0.35)
    tf = max(lw - 1, 1)
    for k, (box, c) in enumerate(zip(boxes, classes)):
        colour = class_colors(c)
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        x1, x2 = min(max(x1, 0), W - 1), min(max(x2, 0), W - 1)
        y1, y2 = min(max(y1, 0), H - 1), min(max(y2, 0), H - 1)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, lw, cv2.LINE_AA)
        if hide_labels:
            continue
        text = _name(names, c)
        if confs is not None and not hide_conf:
            text = f"{text} {float(confs.reshape(-1)[k]):.2f}"
        fs, ft, (tw, th), base = _fit_tag(text, font_scale, tf, W, H)
        th_full = th + base + 2
        # Tag above the box when it fits, else just inside its top edge; always inside the image.
        ty = y1 - th_full if y1 - th_full >= 0 else y1
        ty = min(ty, max(H - th_full, 0))
        tx = min(max(x1, 0), max(W - tw - 2, 0))
        cv2.rectangle(img, (tx, ty), (tx + tw + 2, ty + th_full), colour, -1, cv2.LINE_AA)
        luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
        ink = (0, 0, 0) if luminance > 150 else (255, 255, 255)
        cv2.putText(img, text, (tx + 1, ty + th + 1), cv2.FONT_HERSHEY_SIMPLEX, fs, ink, ft, cv2.LINE_AA)
    return img


def plot_images(images: ArrayLike, targets: ArrayLike, paths: Optional[Sequence[str]] = None,
                fname: PathLike = "images.jpg", names: Names = None, max_subplots: int = 16,
                max_size: int = 1920, conf_thres: float = 0.25) -> np.ndarray:
    """Save a grid of batch images with their boxes (train_batch*.jpg, val_batch*_labels/_pred.jpg); returns it (BGR).

    Args:
        images: (B, 3, H, W) RGB, uint8 or float in [0, 1].
        targets: (N, 6) ``[image_index, cls, cx, cy, w, h]`` or (N, 7) with a trailing confidence (predictions,
            shown when conf > conf_thres); boxes normalised (all <= 1.01) or in input pixels.
    """
    ims = _numpy(images)
    if ims.ndim != 4 or ims.shape[1] != 3:
        raise ValueError(f"plot_images: images must be (B, 3, H, W), got shape {ims.shape}")
    if ims.dtype != np.uint8:
        ims = ims.astype(np.float32)
        ims = np.clip(ims * 255 if ims.max() <= 1.0 else ims, 0, 255).astype(np.uint8)
    tg = _numpy(targets)
    tg = np.zeros((0, 6), np.float32) if tg is None or tg.size == 0 else tg.reshape(len(tg), -1).astype(np.float32)
    if tg.shape[1] not in (6, 7):
        raise ValueError(f"plot_images: targets must be (N, 6) or (N, 7), got shape {tg.shape}")

    bs = min(len(ims), max_subplots)
    h, w = ims.shape[2:]
    ns = math.ceil(bs ** 0.5)
    scale = min(1.0, max_size / (ns * max(h, w)))
    th, tw = max(1, int(h * scale)), max(1, int(w * scale))
    mosaic = np.full((ns * th, ns * tw, 3), 255, np.uint8)
    normalised = len(tg) == 0 or tg[:, 2:6].max() <= 1.01
    lw = max(1, round(0.006 * max(th, tw)))
    for i in range(bs):
        tile = cv2.cvtColor(ims[i].transpose(1, 2, 0), cv2.COLOR_RGB2BGR)
        if scale != 1:
            tile = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA)
        t = tg[tg[:, 0] == i]
        if tg.shape[1] == 7:
            t = t[t[:, 6] > conf_thres]
        if len(t):
            boxes = xywh2xyxy(t[:, 2:6].copy())
            boxes[:, [0, 2]] *= tw if normalised else scale
            boxes[:, [1, 3]] *= th if normalised else scale
            conf = t[:, 6] if tg.shape[1] == 7 else None
            tile = draw_boxes(tile, boxes, t[:, 1], conf, names, line_thickness=lw)
        if paths is not None and i < len(paths):
            label = Path(paths[i]).name[:40]
            fs = max(0.3, 0.3 * lw)
            (lw_t, lh_t), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
            cv2.rectangle(tile, (0, 0), (min(lw_t + 4, tw), lh_t + base + 4), (255, 255, 255), -1)
            cv2.putText(tile, label, (2, lh_t + 2), cv2.FONT_HERSHEY_SIMPLEX, fs, (60, 60, 60), 1, cv2.LINE_AA)
        y0, x0 = (i // ns) * th, (i % ns) * tw
        mosaic[y0:y0 + th, x0:x0 + tw] = tile
        cv2.rectangle(mosaic, (x0, y0), (x0 + tw - 1, y0 + th - 1), (255, 255, 255), max(1, lw // 2))
    # Trim unused rows of the grid.
    rows = math.ceil(bs / ns)
    mosaic = mosaic[:rows * th]
    fname = Path(fname)
    fname.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(fname), mosaic)
    return mosaic


def plot_labels(labels: ArrayLike, names: Names, save_dir: PathLike, max_boxes: int = 1000) -> Path:
    """labels.jpg: instances per class, a sample of box outlines, box centres and box sizes; labels are (n, 5) xywhn."""
    lb = _numpy(labels)
    lb = np.zeros((0, 5), np.float32) if lb is None or lb.size == 0 else lb.reshape(-1, 5).astype(np.float32)
    if isinstance(names, dict):
        nc = max(names) + 1 if names else 0
        names = [_name(names, i) for i in range(nc)]
    nc = max(len(names) if names is not None else 0, int(lb[:, 0].max()) + 1 if len(lb) else 0)
    cls = lb[:, 0].astype(int)

    fig = Figure(figsize=(8, 8), tight_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    counts = np.bincount(cls, minlength=nc)
    ax = axes[0, 0]
    ax.bar(range(nc), counts, color=[np.array(class_colors(i)[::-1]) / 255 for i in range(nc)])
    ax.set_ylabel("instances")
    ax.set_title(f"{len(lb)} instances, {nc} classes")
    if 0 < nc <= 30:
        ax.set_xticks(range(nc))
        ax.set_xticklabels([_name(names, i) for i in range(nc)], rotation=90, fontsize=8)

    ax = axes[0, 1]
    canvas = np.full((1000, 1000, 3), 255, np.uint8)
    if len(lb):
        pick = np.random.default_rng(0).permutation(len(lb))[:max_boxes]
        boxes = np.concatenate([np.full((len(pick), 2), 0.5), lb[pick, 3:5]], 1)
        boxes = xywh2xyxy(boxes) * 1000
        for (x1, y1, x2, y2), c in zip(boxes.astype(int), cls[pick]):
            cv2.rectangle(canvas, (x1, y1), (x2, y2), class_colors(c)[::-1], 1)  # canvas is RGB here
    ax.imshow(canvas)
    ax.set_title("box sizes (sample, centred)")
    ax.axis("off")

    for ax, (a, b), (xl, yl) in ((axes[1, 0], (1, 2), ("x", "y")), (axes[1, 1], (3, 4), ("width", "height"))):
        ax.hist2d(lb[:, a], lb[:, b], bins=50, range=[[0, 1], [0, 1]], cmap="Blues", cmin=1)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        if a == 1:
            ax.invert_yaxis()  # image coordinates: y grows downwards
    axes[1, 0].set_title("box centres")
    axes[1, 1].set_title("box width vs height")

    path = Path(save_dir) / "labels.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path
