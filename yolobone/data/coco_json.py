"""Read a COCO detection JSON (images, annotations, categories) into per-image YOLO rows, fast.

Category ids, which COCO numbers 1..90 with gaps, become classes 0..nc-1 in id order (``category_ids`` maps back).
``iscrowd`` annotations are left out: COCOeval ignores them, so they are not trained as positives either. An
annotation without ``bbox`` gets the box of its polygon or RLE segmentation. Structural faults (bad JSON, unknown
ids, duplicate ids, a category missing from ``categories``) raise AnnotationError with one line; boxes that stick
out of the image or have no area are clipped or dropped and listed as problems.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from yolobone.data.annotated import AnnotatedSplit, AnnotationError, check_unique_ids, rows_per_image


def load_json(path: str) -> Any:
    """json.load with a one-line error naming the file, line and column."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: cannot read the COCO JSON ({type(e).__name__}: {e})") from None


def _list_of_dicts(data: dict, key: str, path: str, required: bool = True) -> List[dict]:
    items = data.get(key)
    if items is None and not required:
        return []
    if not isinstance(items, list):
        raise AnnotationError(f"{path}: '{key}' must be a list, got {type(items).__name__}")
    bad = next((k for k, item in enumerate(items) if not isinstance(item, dict)), None)
    if bad is not None:
        raise AnnotationError(f"{path}: {key}[{bad}] must be an object, got {type(items[bad]).__name__}")
    return items


def read_categories(data: Any, path: str) -> Tuple[List[str], List[int]]:
    """(names, category ids) in ascending id order: class i is category_ids[i]."""
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a COCO object with images, annotations and categories, "
                              f"got {type(data).__name__}")
    cats = _list_of_dicts(data, "categories", path)
    for k, c in enumerate(cats):
        if not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool) or "name" not in c:
            raise AnnotationError(f"{path}: categories[{k}] needs an integer 'id' and a 'name', got {c!r:.80}")
    check_unique_ids([c["id"] for c in cats], path, "categories")
    if not cats:
        raise AnnotationError(f"{path}: 'categories' is empty (class names come from it)")
    cats = sorted(cats, key=lambda c: c["id"])
    return [str(c["name"]) for c in cats], [int(c["id"]) for c in cats]


def _images(images: List[dict], path: str, images_dir: str) -> Tuple[list, List[str], np.ndarray]:
    """(ids, image paths, (n, 2) float64 w h) of the 'images' entries."""
    try:
        ids = [im["id"] for im in images]
        files = [os.path.normpath(os.path.join(images_dir, im["file_name"])) for im in images]
        sizes = np.array([(im["width"], im["height"]) for im in images], np.float64).reshape(-1, 2)
    except (KeyError, TypeError, ValueError):
        k, why = next(((k, why) for k, im in enumerate(images) if (why := _image_fault(im))), (0, "unreadable entry"))
        raise AnnotationError(f"{path}: images[{k}] (id {images[k].get('id')!r}): {why}") from None
    bad = np.flatnonzero(~(sizes > 0).all(1))
    if len(bad):
        k = int(bad[0])
        raise AnnotationError(f"{path}: images[{k}] (id {ids[k]!r}): width and height must be positive, "
                              f"got {images[k]['width']!r} x {images[k]['height']!r}")
    check_unique_ids(ids, path, "images")
    return ids, files, sizes


def _image_fault(im: dict) -> Optional[str]:
    for key in ("id", "file_name", "width", "height"):
        if key not in im:
            return f"missing '{key}'"
    if not isinstance(im["file_name"], str):
        return f"'file_name' must be a string, got {im['file_name']!r}"
    if not all(isinstance(im[k], (int, float)) and not isinstance(im[k], bool) for k in ("width", "height")):
        return f"width and height must be numbers, got {im['width']!r} x {im['height']!r}"
    try:
        hash(im["id"])
    except TypeError:
        return f"'id' must be a number or a string, got {im['id']!r}"
    return None


def segmentation_box(seg: Any) -> Optional[List[float]]:
    """[x, y, w, h] of a polygon list or an RLE (compressed or not) segmentation; None when there is none."""
    if isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
        pts = np.array([v for p in seg for v in p], np.float64)
        if len(pts) < 2 or len(pts) % 2:
            return None
        xs, ys = pts[0::2], pts[1::2]
        return [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        from pycocotools import mask as mask_utils  # only sets that carry RLE masks need it

        h, w = seg["size"]
        rle = mask_utils.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else seg
        return [float(v) for v in mask_utils.toBbox(rle)]
    return None


def _one_box(a: dict, k: int, path: str) -> List[float]:
    b = a.get("bbox")
    if isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b):
        return b
    if b not in (None, []):
        raise AnnotationError(f"{path}: annotations[{k}] (id {a.get('id')!r}): bbox must be [x, y, w, h], "
                              f"got {b!r:.80}")
    try:
        box = segmentation_box(a.get("segmentation"))
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{path}: annotations[{k}] (id {a.get('id')!r}): unreadable segmentation ({e})") from None
    if box is None:
        raise AnnotationError(f"{path}: annotations[{k}] (id {a.get('id')!r}): no bbox and no polygon or RLE "
                              f"segmentation to take one from")
    return box


def _boxes(anns: List[dict], path: str) -> np.ndarray:
    """(n, 4) float64 [x, y, w, h] pixel boxes: 'bbox', else the segmentation's box."""
    try:
        arr = np.array([a.get("bbox") for a in anns], np.float64)
        if arr.shape == (len(anns), 4):
            return arr
    except (TypeError, ValueError):
        pass
    return np.array([_one_box(a, k, path) for k, a in enumerate(anns)], np.float64).reshape(-1, 4)


def _lookup(anns: List[dict], key: str, index: Dict[Any, int], path: str, what: str) -> np.ndarray:
    """Positions of each annotation's image_id / category_id in `index`; an unknown one raises."""
    try:
        pos = np.array([index.get(a[key], -1) for a in anns], np.int64)
    except KeyError:
        k = next(k for k, a in enumerate(anns) if key not in a)
        raise AnnotationError(f"{path}: annotations[{k}] (id {anns[k].get('id')!r}): missing '{key}'") from None
    except TypeError:  # an unhashable id (a list, a dict)
        k = next(k for k, a in enumerate(anns) if not isinstance(a[key], (int, str)))
        raise AnnotationError(f"{path}: annotations[{k}] (id {anns[k].get('id')!r}): {key} {anns[k][key]!r:.40} "
                              f"is not an id") from None
    bad = np.flatnonzero(pos < 0)
    if len(bad):
        k = int(bad[0])
        raise AnnotationError(f"{path}: annotations[{k}] (id {anns[k].get('id')!r}): {key} {anns[k][key]!r} is "
                              f"not in {what}")
    return pos


def read_coco(path: str, images_dir: str) -> AnnotatedSplit:
    """Parse a COCO detection JSON whose file_names are relative to images_dir (files are not opened here)."""
    path = os.path.abspath(path)
    data = load_json(path)
    names, category_ids = read_categories(data, path)
    ids, files, sizes = _images(_list_of_dicts(data, "images", path), path, images_dir)
    anns = _list_of_dicts(data, "annotations", path, required=False)
    img = _lookup(anns, "image_id", {i: k for k, i in enumerate(ids)}, path, "'images'")
    cls = _lookup(anns, "category_id", {c: k for k, c in enumerate(category_ids)}, path, "'categories'")
    boxes = _boxes(anns, path)
    crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
    problems = []
    with np.errstate(invalid="ignore"):
        flat = ~crowd & ~((boxes[:, 2] > 0) & (boxes[:, 3] > 0))
    problems += [(path, f"annotations[{k}] (id {anns[k].get('id')!r}): bbox {anns[k].get('bbox')} has zero or "
                        f"negative width/height, dropped") for k in np.flatnonzero(flat)]
    use = np.flatnonzero(~crowd & ~flat)
    wh = sizes[img[use]]
    x1y1 = boxes[use, :2] / wh
    xyxyn = np.concatenate([x1y1, (boxes[use, :2] + boxes[use, 2:]) / wh], 1)
    labels, box_problems = rows_per_image(len(ids), img[use], cls[use], xyxyn,
                                          lambda j: f"annotations[{use[j]}] (id {anns[use[j]].get('id')!r})", path)
    split = AnnotatedSplit(source=path, names=names, category_ids=category_ids, files=files,
                           sizes=[(int(w), int(h)) for w, h in sizes], image_ids=ids,
                           entries=[f"images[{k}] (id {i!r})" for k, i in enumerate(ids)], labels=labels,
                           problems=problems + box_problems, ignored=int(crowd.sum()))
    return split
