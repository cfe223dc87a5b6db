"""Result: the detections of one image in original-image pixels, and how to draw and save them."""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from yolobone.engine.core.sources import stream_stem
from yolobone.engine.detect.drawing import draw_boxes
from yolobone.utils.boxes import xyxy2xywhn
from yolobone.utils.paths import increment_path, safe_folder_name

PathLike = Union[str, os.PathLike]


def _plural(name: str) -> str:
    """English plural of a class name for log lines (cross -> crosses, bus -> buses, person -> persons)."""
    return name + ("es" if name.endswith(("s", "x", "z", "ch", "sh")) else "s")


@dataclass
class Result:
    """Detections of one image: ``boxes`` (n, 4) xyxy in original pixels, ``scores`` (n,), ``class_ids`` (n,)."""

    path: str
    orig_img: np.ndarray  # HWC uint8 BGR, as read
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: List[str]
    input_shape: Tuple[int, int] = (0, 0)  # (h, w) of the letterboxed network input
    kind: str = "image"  # "image" | "video" | "stream" | "array"
    frame: int = 0  # 1-based frame number for video/stream frames, 0 for still images
    index: int = 0  # position of the input (file or array) in its source
    frames: int = 0  # frame count the video declares (0 for images and streams)
    fps: float = 0.0  # rate of the video frames yielded (source fps / vid_stride)
    speed: Dict[str, float] = field(default_factory=dict)  # ms per image: read, preprocess, inference, postprocess (NMS)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def labels(self) -> List[str]:
        """Class name of each detection."""
        return [self._name(c) for c in self.class_ids]

    def _name(self, c: int) -> str:
        return self.names[c] if 0 <= c < len(self.names) else str(int(c))

    def counts(self) -> Dict[str, int]:
        """Detections per class name, in class-id order."""
        per_id = Counter(int(c) for c in self.class_ids)
        return {self._name(c): per_id[c] for c in sorted(per_id)}

    def summary(self) -> str:
        """'2 circles, 1 star' style text, or '(no detections)'."""
        parts = [f"{n} {_plural(name) if n > 1 else name}" for name, n in self.counts().items()]
        return ", ".join(parts) if parts else "(no detections)"

    @property
    def stem(self) -> str:
        """File stem for outputs; video and stream frames get their frame number appended."""
        stem = Path(self.path).stem if self.kind != "stream" else stream_stem(self.path)
        return f"{stem}_{self.frame}" if self.kind in ("video", "stream") else stem

    def plot(self, line_thickness: Optional[int] = 3, hide_labels: bool = False, hide_conf: bool = False
             ) -> np.ndarray:
        """A BGR copy of the original image with a box per detection, coloured by class, tagged 'name conf'."""
        order = np.argsort(self.scores, kind="stable")  # least confident first, so the best tags end on top
        return draw_boxes(self.orig_img, self.boxes[order], self.class_ids[order], self.scores[order], self.names,
                          line_thickness=line_thickness, hide_labels=hide_labels, hide_conf=hide_conf)

    def xywhn(self) -> np.ndarray:
        """Boxes as normalised (cx, cy, w, h) of the original image, float64 (n, 4)."""
        h, w = self.orig_img.shape[:2]
        return xyxy2xywhn(self.boxes.astype(np.float64), w=w, h=h)

    def yolo_lines(self, save_conf: bool = False) -> List[str]:
        """YOLO label rows 'cls cx cy w h [conf]' (normalised, %g formatting as YOLOv5 writes them)."""
        rows = []
        for c, box, s in zip(self.class_ids, self.xywhn(), self.scores):
            values = (int(c), *box.tolist(), *((float(s),) if save_conf else ()))
            rows.append(("%g " * len(values)).rstrip() % values)
        return rows

    def save_txt(self, path: PathLike, save_conf: bool = False) -> Path:
        """Write the YOLO-format rows to path (an empty file when there are no detections)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(r + "\n" for r in self.yolo_lines(save_conf)))
        return path

    def crop(self, i: int, gain: float = 1.02, pad: int = 10) -> np.ndarray:
        """Detection i cut from the original image, its box enlarged by gain and pad pixels (clipped)."""
        h, w = self.orig_img.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        bw, bh = (x2 - x1) * gain + pad, (y2 - y1) * gain + pad
        xa, ya = int(max(cx - bw / 2, 0)), int(max(cy - bh / 2, 0))
        xb, yb = int(min(cx + bw / 2, w)), int(min(cy + bh / 2, h))
        xb, yb = max(xb, xa + 1), max(yb, ya + 1)  # at least one pixel for degenerate boxes
        return self.orig_img[ya:yb, xa:xb].copy()

    def save_crops(self, folder: PathLike, stem: Optional[str] = None) -> List[Path]:
        """Save each detection as folder/<class name>/<stem>.jpg (stem2.jpg, ... when several share a class)."""
        stem = stem or self.stem
        saved = []
        for i in range(len(self)):
            cls_dir = safe_folder_name(self._name(int(self.class_ids[i])))
            target = increment_path(Path(folder) / cls_dir / f"{stem}.jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), self.crop(i)):
                raise OSError(f"{target}: OpenCV could not write the crop")
            saved.append(target)
        return saved
