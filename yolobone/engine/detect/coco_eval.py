"""val.py --coco-eval: a COCO ground-truth JSON from YOLO labels, and pycocotools run on the saved JSON files.

Image ids follow YOLOv5's results convention (``int(stem)`` when the stem is numeric, else the stem); category
ids are the class indices. pycocotools gets the files' contents with image ids renumbered 1..N, so numeric and
text stems can be mixed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from yolobone.utils.boxes import xywhn2xyxy
from yolobone.engine.detect.metrics import coco_evaluate, coco_ground_truth
from yolobone.utils.errors import YoloboneError

PathLike = Union[str, os.PathLike]
ImageId = Union[int, str]

# Labels of pycocotools' 12 summary numbers (COCOeval.stats for bounding boxes).
COCO_STAT_NAMES = (
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
)


class CocoEvalError(YoloboneError, ValueError):
    """The ground truth or results JSON cannot be evaluated together (duplicate or unknown image ids)."""


def coco_image_id(path: PathLike) -> ImageId:
    """YOLOv5's image_id for an image file: int(stem) when the stem is all digits, else the stem."""
    stem = Path(path).stem
    return int(stem) if stem.isnumeric() else stem


def labels_ground_truth(im_files: Sequence[str], shapes: np.ndarray, labels: Sequence[np.ndarray],
                        names: Sequence[str], image_ids: Optional[Dict[str, ImageId]] = None,
                        category_ids: Optional[Sequence[int]] = None) -> dict:
    """COCO ground truth from YOLO labels: shapes (N, 2) original (w, h), labels[i] (m, 5) normalised cls cx cy w h.

    image_ids (file -> id) and category_ids (class -> id) replace the stem and class-index defaults."""
    ids = [image_ids[f] if image_ids else coco_image_id(f) for f in im_files]
    seen: Dict[ImageId, str] = {}
    for image_id, f in zip(ids, im_files):
        if image_id in seen:
            raise CocoEvalError(f"--coco-eval: {f} and {seen[image_id]} share the image id {image_id!r}; "
                                f"COCO results need unique image file stems")
        seen[image_id] = f
    targets = []
    for (w, h), lb in zip(shapes, labels):
        lb = np.asarray(lb, np.float64).reshape(-1, 5)
        targets.append(np.concatenate((lb[:, :1], xywhn2xyxy(lb[:, 1:], float(w), float(h))), 1))
    gt = coco_ground_truth(targets, len(names), names=list(names), image_ids=ids, class_map=category_ids)
    for image, f, (w, h) in zip(gt["images"], im_files, shapes):
        image.update(file_name=Path(f).name, width=int(w), height=int(h))
    return gt


def write_json(obj: Union[dict, list], path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _read_json(path: Path, what: str) -> Union[dict, list]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CocoEvalError(f"{path}: cannot read the {what} JSON ({e})") from None


def evaluate_json_files(gt_path: PathLike, results_path: PathLike, max_dets: int = 100) -> np.ndarray:
    """pycocotools' 12 bounding-box stats for a results JSON against a ground-truth JSON ([0] mAP50-95, [1] mAP50)."""
    gt_path, results_path = Path(gt_path), Path(results_path)
    gt = _read_json(gt_path, "ground-truth")
    results = _read_json(results_path, "results")
    if not isinstance(gt, dict) or not isinstance(results, list):
        raise CocoEvalError(f"{gt_path}, {results_path}: expected a COCO dataset dict and a list of results")
    index = {image["id"]: k + 1 for k, image in enumerate(gt["images"])}
    unknown = next((r["image_id"] for r in results if r["image_id"] not in index), None)
    if unknown is not None:
        raise CocoEvalError(f"{results_path}: image_id {unknown!r} is not an image of {gt_path}")
    gt = {**gt, "images": [{**im, "id": index[im["id"]]} for im in gt["images"]],
          "annotations": [{**a, "image_id": index[a["image_id"]]} for a in gt["annotations"]]}
    results = [{**r, "image_id": index[r["image_id"]]} for r in results]
    return coco_evaluate(gt, results, max_dets=max_dets)


def format_stats(stats: Sequence[float]) -> List[str]:
    """pycocotools-style summary lines, one per stat."""
    return [f" {name} = {value:.3f}" for name, value in zip(COCO_STAT_NAMES, stats)]
