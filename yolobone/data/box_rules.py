"""The one rule for label boxes of every format (YOLO txt, COCO JSON, VOC XML): clip a box that sticks out of the
image by at most COORD_TOL, drop one further out or of zero size.

Boxes are normalised (x1, y1, x2, y2); the tolerance applies to the (cx, cy, w, h) they describe, as YOLOv5 checks
its txt rows. The result is float32 (cx, cy, w, h): every format that describes the same float32 box gives the same
bits, whatever float64 rounding its own arithmetic picked up on the way.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

COORD_TOL = 0.01  # cx, cy, w, h this far outside [0, 1] are clipped; further out the row is dropped
OK, CLIPPED, OUTSIDE, ZERO = 0, 1, 2, 3  # repair_boxes() status codes
STATUS_TEXT = {CLIPPED: "box slightly outside the image, clipped", OUTSIDE: "box outside the image, dropped",
               ZERO: "zero-size box, dropped"}


def repair_boxes(xyxyn: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """((n, 4) float32 cx cy w h, (n,) status OK/CLIPPED/OUTSIDE/ZERO) for (n, 4) normalised x1 y1 x2 y2 boxes.

    Rows with status OUTSIDE or ZERO are to be dropped; their returned values are meaningless."""
    b = np.asarray(xyxyn, np.float64).reshape(-1, 4)
    cxcywh = np.stack(((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1)
    with np.errstate(invalid="ignore"):
        outside = ~np.isfinite(cxcywh).all(1) | (cxcywh < -COORD_TOL).any(1) | (cxcywh > 1 + COORD_TOL).any(1)
        clipped = ~outside & ((cxcywh < 0).any(1) | (cxcywh > 1).any(1))
    c = np.clip(np.nan_to_num(b), 0, 1)
    w, h = c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]
    zero = ~outside & ((w <= 0) | (h <= 0))
    status = np.full(len(b), OK, np.int8)
    status[clipped] = CLIPPED
    status[outside] = OUTSIDE
    status[zero] = ZERO
    out = np.stack(((c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2, w, h), 1).astype(np.float32)
    return out, status


def keep(status: np.ndarray) -> np.ndarray:
    """Mask of the rows repair_boxes() keeps."""
    return status <= CLIPPED
