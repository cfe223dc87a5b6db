"""Box format conversions, IoU and letterbox coordinate mapping (numpy and torch alike)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]


def _clone(x: Array) -> Array:
    return x.clone() if isinstance(x, torch.Tensor) else np.copy(x)


def xyxy2xywh(x: Array) -> Array:
    """(x1, y1, x2, y2) -> (cx, cy, w, h)."""
    y = _clone(x)
    y[..., 0] = (x[..., 0] + x[..., 2]) / 2
    y[..., 1] = (x[..., 1] + x[..., 3]) / 2
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def xywh2xyxy(x: Array) -> Array:
    """(cx, cy, w, h) -> (x1, y1, x2, y2)."""
    y = _clone(x)
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    y[..., 2] = x[..., 0] + x[..., 2] / 2
    y[..., 3] = x[..., 1] + x[..., 3] / 2
    return y


def xywhn2xyxy(x: Array, w: float = 640, h: float = 640, padw: float = 0, padh: float = 0) -> Array:
    """Normalised (cx, cy, w, h) -> pixel (x1, y1, x2, y2), shifted by a padding offset."""
    y = _clone(x)
    y[..., 0] = w * (x[..., 0] - x[..., 2] / 2) + padw
    y[..., 1] = h * (x[..., 1] - x[..., 3] / 2) + padh
    y[..., 2] = w * (x[..., 0] + x[..., 2] / 2) + padw
    y[..., 3] = h * (x[..., 1] + x[..., 3] / 2) + padh
    return y


def xyxy2xywhn(x: Array, w: float = 640, h: float = 640, clip: bool = False, eps: float = 0.0) -> Array:
    """Pixel (x1, y1, x2, y2) -> normalised (cx, cy, w, h)."""
    if clip:
        x = _clone(x)
        clip_boxes(x, (h - eps, w - eps))
    y = _clone(x)
    y[..., 0] = ((x[..., 0] + x[..., 2]) / 2) / w
    y[..., 1] = ((x[..., 1] + x[..., 3]) / 2) / h
    y[..., 2] = (x[..., 2] - x[..., 0]) / w
    y[..., 3] = (x[..., 3] - x[..., 1]) / h
    return y


def xyxy2ltwh(x: Array) -> Array:
    """(x1, y1, x2, y2) -> COCO (left, top, w, h)."""
    y = _clone(x)
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def segment2box(segment: np.ndarray) -> np.ndarray:
    """Polygon (n, 2) in normalised coordinates -> normalised (cx, cy, w, h) of its bounding box."""
    x1, y1 = segment.min(0)
    x2, y2 = segment.max(0)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=np.float32)


def clip_boxes(boxes: Array, shape: Sequence[float]) -> Array:
    """Clip xyxy boxes in place to an image of shape (h, w)."""
    h, w = shape[0], shape[1]
    if isinstance(boxes, torch.Tensor):
        boxes[..., 0].clamp_(0, w)
        boxes[..., 1].clamp_(0, h)
        boxes[..., 2].clamp_(0, w)
        boxes[..., 3].clamp_(0, h)
    else:
        boxes[..., [0, 2]] = boxes[..., [0, 2]].clip(0, w)
        boxes[..., [1, 3]] = boxes[..., [1, 3]].clip(0, h)
    return boxes


RatioPad = Optional[Tuple[Tuple[float, float], Tuple[float, float]]]


def scale_boxes(img1_shape: Sequence[int], boxes: Array, img0_shape: Sequence[int], ratio_pad: RatioPad = None) -> Array:
    """Map xyxy boxes from a letterboxed image of shape img1_shape back to the original img0_shape (in place)."""
    if ratio_pad is None:
        gain = min(img1_shape[0] / img0_shape[0], img1_shape[1] / img0_shape[1])
        pad = ((img1_shape[1] - img0_shape[1] * gain) / 2, (img1_shape[0] - img0_shape[0] * gain) / 2)
        gain_x = gain_y = gain
    else:
        gain_y, gain_x = ratio_pad[0]
        pad = ratio_pad[1]
    boxes[..., [0, 2]] -= pad[0]
    boxes[..., [1, 3]] -= pad[1]
    boxes[..., [0, 2]] /= gain_x
    boxes[..., [1, 3]] /= gain_y
    return clip_boxes(boxes, img0_shape)


def box_area(box: torch.Tensor) -> torch.Tensor:
    return (box[..., 2] - box[..., 0]).clamp(0) * (box[..., 3] - box[..., 1]).clamp(0)


def box_iou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    lt = torch.max(box1[:, None, :2], box2[None, :, :2])
    rb = torch.min(box1[:, None, 2:], box2[None, :, 2:])
    inter = (rb - lt).clamp(0).prod(2)
    return inter / (box_area(box1)[:, None] + box_area(box2)[None, :] - inter + eps)


def box_iou_np(box1: np.ndarray, box2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Pairwise IoU of xyxy boxes in numpy: (N, 4) x (M, 4) -> (N, M)."""
    lt = np.maximum(box1[:, None, :2], box2[None, :, :2])
    rb = np.minimum(box1[:, None, 2:], box2[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    a1 = np.clip(box1[:, 2] - box1[:, 0], 0, None) * np.clip(box1[:, 3] - box1[:, 1], 0, None)
    a2 = np.clip(box2[:, 2] - box2[:, 0], 0, None) * np.clip(box2[:, 3] - box2[:, 1], 0, None)
    return inter / (a1[:, None] + a2[None, :] - inter + eps)


def bbox_iou(box1: torch.Tensor, box2: torch.Tensor, xywh: bool = True, GIoU: bool = False,
             DIoU: bool = False, CIoU: bool = False, eps: float = 1e-7, corner_wh: bool = False) -> torch.Tensor:
    """Element-wise IoU (or GIoU/DIoU/CIoU) of two aligned box sets (..., 4) -> (..., 1).

    corner_wh: widths and heights of xywh boxes re-derived from their corners, eps added to heights (YOLOv7's
    arithmetic, kept so that its loss is reproduced bit for bit).
    """
    if xywh:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
        b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
        b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    else:
        b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
        b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
        w1, h1 = b1_x2 - b1_x1, (b1_y2 - b1_y1).clamp(eps)
        w2, h2 = b2_x2 - b2_x1, (b2_y2 - b2_y1).clamp(eps)
    inter = (torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(0) * \
            (torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)).clamp(0)
    if xywh and corner_wh:  # after `inter`, as YOLOv7 orders it (gradients then accumulate in its order)
        w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
        w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not (CIoU or DIoU or GIoU):
        return iou
    cw = torch.max(b1_x2, b2_x2) - torch.min(b1_x1, b2_x1)  # enclosing box
    ch = torch.max(b1_y2, b2_y2) - torch.min(b1_y1, b2_y1)
    if CIoU or DIoU:
        c2 = cw ** 2 + ch ** 2 + eps  # squared diagonal of the enclosing box
        rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
        if CIoU:
            v = (4 / math.pi ** 2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))).pow(2)
            with torch.no_grad():
                alpha = v / (v - iou + (1 + eps))
            return iou - (rho2 / c2 + v * alpha)
        return iou - rho2 / c2
    c_area = cw * ch + eps
    return iou - (c_area - union) / c_area
