"""Non-maximum suppression of decoded YOLO outputs (torchvision.ops.batched_nms)."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torchvision

from yolobone.utils.boxes import xywh2xyxy
from yolobone.utils.errors import YoloboneError


class NMSInputError(YoloboneError, ValueError):
    """Raised when non_max_suppression receives arguments it cannot use."""


def _check_args(prediction: torch.Tensor, conf_thres: float, iou_thres: float, max_det: int) -> None:
    if prediction.dim() != 3 or prediction.shape[2] < 6:
        raise NMSInputError(f"non_max_suppression: expected prediction of shape (B, N, 5 + nc) with nc >= 1, "
                            f"got {tuple(prediction.shape)}")
    if not 0.0 <= conf_thres <= 1.0:
        raise NMSInputError(f"non_max_suppression: conf_thres must be in [0, 1], got {conf_thres}")
    if not 0.0 <= iou_thres <= 1.0:
        raise NMSInputError(f"non_max_suppression: iou_thres must be in [0, 1], got {iou_thres}")
    if max_det < 1:
        raise NMSInputError(f"non_max_suppression: max_det must be >= 1, got {max_det}")


def non_max_suppression(prediction: Union[torch.Tensor, Tuple[torch.Tensor, ...], List[torch.Tensor]],
                        conf_thres: float = 0.25, iou_thres: float = 0.45,
                        classes: Optional[Sequence[int]] = None, agnostic: bool = False,
                        multi_label: bool = False, max_det: int = 300,
                        max_nms: int = 30000) -> List[torch.Tensor]:
    """Filter decoded predictions by confidence and suppress overlaps, per image.

    Args:
        prediction: (B, N, 5 + nc) rows [cx, cy, w, h, obj, class scores...] in input pixels; the
            eval-mode model output (decoded, raw maps) is accepted too and its first element used.
        conf_thres: keep candidates with obj * class score above this.
        iou_thres: suppress boxes overlapping a higher-scoring box of the same class by more than this.
        classes: keep only these class indices (None keeps all).
        agnostic: suppress across classes instead of per class.
        multi_label: one candidate per (box, class) above conf_thres instead of the best class only.
        max_det: keep at most this many detections per image, highest confidence first.
        max_nms: at most this many candidates per image go into NMS (the most confident).

    Returns:
        One float tensor (n, 6) per image: [x1, y1, x2, y2, conf, cls], sorted by conf descending.
    """
    if isinstance(prediction, (list, tuple)):
        prediction = prediction[0]
    _check_args(prediction, conf_thres, iou_thres, max_det)
    device = prediction.device
    class_filter = None if classes is None else torch.as_tensor(list(classes), device=device)
    output = []
    for x in prediction:  # (N, 5 + nc) for one image
        x = x[x[:, 4] > conf_thres]  # objectness bounds obj * cls from above, so this is a safe pre-filter
        scores = x[:, 5:] * x[:, 4:5]  # (n, nc)
        boxes = xywh2xyxy(x[:, :4])
        if multi_label:
            i, j = (scores > conf_thres).nonzero(as_tuple=True)
            det = torch.cat((boxes[i], scores[i, j, None], j[:, None].to(x.dtype)), 1)
        else:
            conf, j = scores.max(1, keepdim=True)
            det = torch.cat((boxes, conf, j.to(x.dtype)), 1)[conf.view(-1) > conf_thres]
        if class_filter is not None:
            det = det[(det[:, 5:6] == class_filter.to(det.dtype)).any(1)]
        if det.shape[0] > max_nms:
            det = det[det[:, 4].topk(max_nms).indices]
        if det.shape[0] == 0:
            output.append(det.new_zeros((0, 6)))
            continue
        groups = torch.zeros_like(det[:, 5]) if agnostic else det[:, 5]
        keep = torchvision.ops.batched_nms(det[:, :4].float(), det[:, 4].float(), groups.long(), iou_thres)
        output.append(det[keep[:max_det]])
    return output
