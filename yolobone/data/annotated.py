"""What a COCO JSON or VOC split parses into: per-image files, sizes, ids and float32 YOLO rows.

Both readers hand their normalised (x1, y1, x2, y2) boxes to yolobone.data.box_rules, so a box is clipped or dropped
exactly as the same box in a YOLO txt file would be.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from yolobone.data.box_rules import STATUS_TEXT, OK, keep, repair_boxes
from yolobone.data.errors import DatasetError

ImageId = Union[int, str]


class AnnotationError(DatasetError):
    """A COCO JSON or VOC XML file that cannot be read; the message names the file and the entry."""


@dataclass
class AnnotatedSplit:
    """One split read from COCO JSON or VOC XML: per image the file, (w, h), original id and (n, 5) rows."""
    source: str  # the JSON file or the VOC image-set list
    names: List[str]
    category_ids: List[int]  # original category id of class i (COCO); 0..nc-1 for VOC
    files: List[str] = field(default_factory=list)
    sizes: List[Tuple[int, int]] = field(default_factory=list)
    image_ids: List[ImageId] = field(default_factory=list)
    entries: List[str] = field(default_factory=list)  # where each image is described, for messages
    labels: List[np.ndarray] = field(default_factory=list)
    problems: List[Tuple[str, str]] = field(default_factory=list)
    inputs: List[str] = field(default_factory=list)  # annotation files besides `source` (VOC's XMLs)
    ignored: int = 0  # iscrowd (COCO) or difficult (VOC) objects left out, as their evaluations ignore them


def rows_per_image(n_images: int, image_index: np.ndarray, classes: np.ndarray, xyxyn: np.ndarray,
                   where: Callable[[int], str], source: str) -> Tuple[List[np.ndarray], List[Tuple[str, str]]]:
    """Per-image (m, 5) float32 rows (cls cx cy w h) after the shared box rule, and one problem per repaired box.

    image_index, classes: (n,) ints; xyxyn: (n, 4) normalised boxes; where(k) names annotation k in messages."""
    xywh, status = repair_boxes(xyxyn)
    problems = [(source, f"{where(k)}: {STATUS_TEXT[int(status[k])]}") for k in np.flatnonzero(status != OK)]
    kept = keep(status)
    rows = np.concatenate([classes[kept, None].astype(np.float32), xywh[kept]], 1)
    index = image_index[kept]
    order = np.argsort(index, kind="stable")
    counts = np.bincount(index, minlength=n_images)
    return np.split(rows[order], np.cumsum(counts)[:-1]), problems


def check_unique_ids(ids: Sequence[ImageId], source: str, what: str) -> None:
    """Raise AnnotationError naming both entries when an id repeats."""
    seen: dict = {}
    for k, i in enumerate(ids):
        if i in seen:
            raise AnnotationError(f"{source}: {what}[{k}] repeats id {i!r} of {what}[{seen[i]}] (ids must be unique)")
        seen[i] = k


def find_image(images_dir: str, file_name: str) -> Optional[str]:
    """The image path for a file name relative to images_dir, or None when the file is not there."""
    path = os.path.normpath(os.path.join(images_dir, file_name))
    return path if os.path.isfile(path) else None
