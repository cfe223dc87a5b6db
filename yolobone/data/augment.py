"""Detection augmentations on HWC uint8 BGR images: letterbox, mosaic (4 and YOLOv7's 9), random perspective, HSV,
flips, mixup.

Random functions take an explicit ``np.random.Generator`` so a dataset item is a pure function of its seed.
Label arrays are ``(n, 5)`` float rows ``cls, ...``: pixel ``x1 y1 x2 y2`` for the geometric functions and
normalised ``cx cy w h`` for ``random_flip``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from yolobone.utils.boxes import xywhn2xyxy

Shape = Union[int, Tuple[int, int]]


def _rng(rng: Optional[np.random.Generator]) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


def letterbox_geometry(h0: int, w0: int, new_shape: Shape = 640, auto: bool = True, scale_fill: bool = False,
                       scaleup: bool = True, stride: int = 32) -> Tuple[int, int, int, int]:
    """(resized w, resized h, total pad w, total pad h) that `letterbox` gives an h0 x w0 image."""
    th, tw = (new_shape, new_shape) if isinstance(new_shape, int) else (int(new_shape[0]), int(new_shape[1]))
    if scale_fill:
        new_w, new_h = tw, th
    else:
        r = min(th / h0, tw / w0)
        if not scaleup:
            r = min(r, 1.0)
        new_w, new_h = max(1, round(w0 * r)), max(1, round(h0 * r))
    pad_w, pad_h = tw - new_w, th - new_h
    if auto and not scale_fill:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    return new_w, new_h, pad_w, pad_h


def letterbox(im: np.ndarray, new_shape: Shape = 640, color: Tuple[int, int, int] = (114, 114, 114),
              auto: bool = True, scale_fill: bool = False, scaleup: bool = True, stride: int = 32
              ) -> Tuple[np.ndarray, Tuple[float, float], Tuple[float, float]]:
    """Resize keeping the aspect ratio and pad to new_shape (h, w).

    Returns the image, the exact per-axis resize ratio ``(rw, rh)`` and the left/top padding ``(dw, dh)`` in
    pixels, so ``x_new = x_old * rw + dw``. ``auto`` pads only up to the next multiple of ``stride``;
    ``scale_fill`` stretches without padding; ``scaleup=False`` never enlarges (better val mAP).
    """
    h0, w0 = im.shape[:2]
    new_w, new_h, pad_w, pad_h = letterbox_geometry(h0, w0, new_shape, auto, scale_fill, scaleup, stride)
    if (new_w, new_h) != (w0, h0):
        im = cv2.resize(im, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    left, top = pad_w // 2, pad_h // 2
    if pad_w or pad_h:
        im = cv2.copyMakeBorder(im, top, pad_h - top, left, pad_w - left, cv2.BORDER_CONSTANT, value=color)
    return im, (new_w / w0, new_h / h0), (float(left), float(top))


def mosaic4(images: Sequence[np.ndarray], labels: Sequence[np.ndarray], size: int,
            rng: Optional[np.random.Generator] = None, fill: int = 114) -> Tuple[np.ndarray, np.ndarray]:
    """Tile 4 images around a random centre of a (2·size, 2·size) canvas.

    ``images`` are HWC uint8 (long side about ``size``), ``labels`` their (n, 5) ``cls cx cy w h`` normalised rows.
    Returns the canvas and (n, 5) ``cls x1 y1 x2 y2`` rows in canvas pixels, clipped to the canvas; crop it with
    ``random_perspective(..., border=(-size // 2, -size // 2))``.
    """
    if len(images) != 4 or len(labels) != 4:
        raise ValueError(f"mosaic4 needs 4 images and 4 label arrays, got {len(images)} and {len(labels)}")
    rng = _rng(rng)
    s = int(size)
    xc, yc = (int(rng.uniform(s / 2, 3 * s / 2)) for _ in range(2))
    canvas = np.full((2 * s, 2 * s, images[0].shape[2]), fill, dtype=np.uint8)
    out = []
    for k, (im, lb) in enumerate(zip(images, labels)):
        h, w = im.shape[:2]
        # Canvas window (a) and the matching image window (b) for each quadrant around (xc, yc).
        if k == 0:  # top left
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b = w - (x2a - x1a), h - (y2a - y1a)
        elif k == 1:  # top right
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * s), yc
            x1b, y1b = 0, h - (y2a - y1a)
        elif k == 2:  # bottom left
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(yc + h, 2 * s)
            x1b, y1b = w - (x2a - x1a), 0
        else:  # bottom right
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * s), min(yc + h, 2 * s)
            x1b, y1b = 0, 0
        canvas[y1a:y2a, x1a:x2a] = im[y1b:y1b + (y2a - y1a), x1b:x1b + (x2a - x1a)]
        if len(lb):
            rows = np.asarray(lb, dtype=np.float32).copy()
            rows[:, 1:5] = xywhn2xyxy(rows[:, 1:5], w, h, x1a - x1b, y1a - y1b)
            out.append(rows)
    rows = np.concatenate(out, 0) if out else np.zeros((0, 5), dtype=np.float32)
    np.clip(rows[:, 1:5], 0, 2 * s, out=rows[:, 1:5])
    return canvas, rows


def _ring_origins(sizes: Sequence[Tuple[int, int]], s: int) -> List[Tuple[int, int]]:
    """Top-left canvas corners of YOLOv7's 9-image layout: the first (h, w) at (s, s), then clockwise from the tile
    above it (top, top right, right, bottom right, bottom, bottom left, left, top left), each placed against its
    neighbours' edges."""
    (h0, w0), out = sizes[0], [(s, s)]
    for k, (h, w) in enumerate(sizes[1:], 1):
        hp, wp = sizes[k - 1]  # the previous tile's size sets the offset of the corner tiles
        out.append({1: (s, s - h), 2: (s + wp, s - h), 3: (s + w0, s), 4: (s + w0, s + hp), 5: (s + w0 - w, s + h0),
                    6: (s + w0 - wp - w, s + h0), 7: (s - w, s + h0 - h), 8: (s - w, s + h0 - hp - h)}[k])
    return out


def mosaic9(images: Sequence[np.ndarray], labels: Sequence[np.ndarray], size: int,
            rng: Optional[np.random.Generator] = None, fill: int = 114) -> Tuple[np.ndarray, np.ndarray]:
    """YOLOv7's 9-image mosaic: the first image at the centre of a (3·size)² canvas, eight around it, then a random
    (2·size)² window of it (its top-left corner uniform in [0, size)²).

    Same inputs and outputs as ``mosaic4``: (n, 5) ``cls x1 y1 x2 y2`` rows in window pixels, clipped to the window;
    crop it with ``random_perspective(..., border=(-size // 2, -size // 2))``.
    """
    if len(images) != 9 or len(labels) != 9:
        raise ValueError(f"mosaic9 needs 9 images and 9 label arrays, got {len(images)} and {len(labels)}")
    rng = _rng(rng)
    s = int(size)
    canvas = np.full((3 * s, 3 * s, images[0].shape[2]), fill, dtype=np.uint8)
    out = []
    for im, lb, (x, y) in zip(images, labels, _ring_origins([im.shape[:2] for im in images], s)):
        h, w = im.shape[:2]
        x1, y1 = max(x, 0), max(y, 0)  # a tile may start left of / above the canvas; it never passes 3·s
        canvas[y1:y + h, x1:x + w] = im[y1 - y:, x1 - x:]
        if len(lb):
            rows = np.asarray(lb, dtype=np.float32).copy()
            rows[:, 1:5] = xywhn2xyxy(rows[:, 1:5], w, h, x, y)
            out.append(rows)
    yc, xc = (int(rng.uniform(0, s)) for _ in range(2))
    rows = np.concatenate(out, 0) if out else np.zeros((0, 5), dtype=np.float32)
    rows[:, [1, 3]] -= xc
    rows[:, [2, 4]] -= yc
    np.clip(rows[:, 1:5], 0, 2 * s, out=rows[:, 1:5])
    return canvas[yc:yc + 2 * s, xc:xc + 2 * s].copy(), rows


def box_candidates(before: np.ndarray, after: np.ndarray, wh_thr: float = 2, ar_thr: float = 100,
                   area_thr: float = 0.1, eps: float = 1e-16) -> np.ndarray:
    """Keep-mask for (n, 4) xyxy boxes after a transform.

    Kept: both sides > wh_thr pixels, area after / area before > area_thr, aspect ratio < ar_thr.
    """
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (aspect < ar_thr)


def random_perspective(im: np.ndarray, targets: Optional[np.ndarray] = None, degrees: float = 10,
                       translate: float = 0.1, scale: float = 0.1, shear: float = 10, perspective: float = 0.0,
                       border: Tuple[int, int] = (0, 0), rng: Optional[np.random.Generator] = None
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Random rotation, scale, shear, translation and perspective; ``targets`` are (n, 5) ``cls x1 y1 x2 y2`` pixels.

    The output is ``(h + 2·border[0], w + 2·border[1])``; boxes are transformed by their corners, clipped, and
    dropped when they became too small or too thin (``box_candidates``).
    """
    rng = _rng(rng)
    height, width = im.shape[0] + 2 * border[0], im.shape[1] + 2 * border[1]

    centre = np.eye(3)
    centre[0, 2], centre[1, 2] = -im.shape[1] / 2, -im.shape[0] / 2
    persp = np.eye(3)
    persp[2, 0], persp[2, 1] = rng.uniform(-perspective, perspective, 2)
    rot = np.eye(3)
    angle, gain = rng.uniform(-degrees, degrees), rng.uniform(1 - scale, 1 + scale)
    rot[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=gain)
    shr = np.eye(3)
    shr[0, 1], shr[1, 0] = np.tan(np.deg2rad(rng.uniform(-shear, shear, 2)))
    trans = np.eye(3)
    trans[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * width
    trans[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * height
    M = trans @ shr @ rot @ persp @ centre  # applied right to left: centre first

    if border[0] or border[1] or not np.allclose(M, np.eye(3)):
        if perspective:
            im = cv2.warpPerspective(im, M, dsize=(width, height), borderValue=(114, 114, 114))
        else:
            im = cv2.warpAffine(im, M[:2], dsize=(width, height), borderValue=(114, 114, 114))

    targets = np.zeros((0, 5), np.float32) if targets is None else np.asarray(targets, dtype=np.float32)
    n = len(targets)
    if n:
        corners = np.ones((n * 4, 3))
        corners[:, :2] = targets[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(n * 4, 2)  # x1y1, x2y2, x1y2, x2y1
        corners = corners @ M.T
        xy = corners[:, :2] / corners[:, 2:3] if perspective else corners[:, :2]
        xy = xy.reshape(n, 8)
        xs, ys = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
        new = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], 1)
        new[:, [0, 2]] = new[:, [0, 2]].clip(0, width)
        new[:, [1, 3]] = new[:, [1, 3]].clip(0, height)
        keep = box_candidates(targets[:, 1:5] * gain, new, area_thr=0.10)
        targets = targets[keep]
        targets[:, 1:5] = new[keep]
    return im, targets


def augment_hsv(im: np.ndarray, hgain: float = 0.5, sgain: float = 0.5, vgain: float = 0.5,
                rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Random hue/saturation/value gains on a BGR uint8 image, in place (also returned)."""
    if not (hgain or sgain or vgain):
        return im
    r = _rng(rng).uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(im, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float64)
    lut_h = ((x * r[0]) % 180).astype(np.uint8)  # OpenCV hue is 0..179 and wraps around
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=im)
    return im


def random_flip(im: np.ndarray, labels: np.ndarray, flipud: float = 0.0, fliplr: float = 0.5,
                rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Flip up-down / left-right with the given probabilities; labels are (n, 5) ``cls cx cy w h`` normalised."""
    rng = _rng(rng)
    do_ud, do_lr = rng.random() < flipud, rng.random() < fliplr
    if do_ud:
        im = cv2.flip(im, 0)  # much faster than a contiguous copy of im[::-1]
        if len(labels):
            labels[:, 2] = 1 - labels[:, 2]
    if do_lr:
        im = cv2.flip(im, 1)
        if len(labels):
            labels[:, 1] = 1 - labels[:, 1]
    return im, labels


def mixup(im: np.ndarray, labels: np.ndarray, im2: np.ndarray, labels2: np.ndarray,
          rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Blend two same-size images with a Beta(32, 32) ratio and keep the labels of both."""
    if im.shape != im2.shape:
        raise ValueError(f"mixup needs images of the same shape, got {im.shape} and {im2.shape}")
    r = _rng(rng).beta(32.0, 32.0)
    out = (im.astype(np.float32) * r + im2.astype(np.float32) * (1 - r)).astype(np.uint8)
    return out, np.concatenate((labels, labels2), 0)

