"""Parsing a COCO JSON: yolobone's reader against pycocotools' COCO() indexing, in one run on the same file.

    python benchmarks/coco_parse.py                       # 100k annotations on 20k images, 80 categories
    python benchmarks/coco_parse.py --annotations 500000 --images 100000

Writes a synthetic detection JSON shaped like COCO's (category ids 1..90 with COCO's gaps, polygon segmentations
beside the boxes, about 1 % crowd boxes) to a temporary folder, then times each reader `--repeat` times
(best of) from the file: pycocotools' COCO(path) (json.load + createIndex) and yolobone.data.coco_json.read_coco
(json.load + checks + per-image float32 YOLO rows). Prints both times and their ratio (the target is <= 2).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from yolobone.data.coco_json import read_coco

# COCO 2017's 80 category ids (1..90 with gaps)
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
            34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
            62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def make_json(path: Path, n_images: int, n_annotations: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.choice([(640, 480), (480, 640), (640, 427), (500, 375)], n_images)
    images = [{"id": int(100000 + 3 * i), "file_name": f"{100000 + 3 * i:012d}.jpg", "width": int(w),
               "height": int(h)} for i, (w, h) in enumerate(sizes)]
    img = rng.integers(0, n_images, n_annotations)
    wh = sizes[img].astype(np.float64)
    bw, bh = wh[:, 0] * rng.uniform(0.02, 0.6, n_annotations), wh[:, 1] * rng.uniform(0.02, 0.6, n_annotations)
    x, y = rng.uniform(0, wh[:, 0] - bw), rng.uniform(0, wh[:, 1] - bh)
    cats = rng.choice(COCO_IDS, n_annotations)
    crowd = rng.random(n_annotations) < 0.01
    anns = []
    for k in range(n_annotations):
        x1, y1, w, h = (round(float(v), 2) for v in (x[k], y[k], bw[k], bh[k]))
        anns.append({"id": k + 1, "image_id": images[img[k]]["id"], "category_id": int(cats[k]),
                     "bbox": [x1, y1, w, h], "area": round(w * h, 2), "iscrowd": int(crowd[k]),
                     "segmentation": [[x1, y1, x1 + w, y1, x1 + w, y1 + h, x1, y1 + h]]})
    categories = [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in COCO_IDS]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def pycocotools_index(path: Path) -> object:
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
        return COCO(str(path))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--annotations", type=int, default=100_000)
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=3, help="best of this many runs per reader")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "instances.json"
        make_json(path, a.images, a.annotations)
        split = read_coco(str(path), tmp)  # warm the file cache, and a sanity check of what is parsed
        n_rows, megabytes = sum(len(lb) for lb in split.labels), path.stat().st_size / 1e6
        t_ref = best_of(lambda: pycocotools_index(path), a.repeat)
        t_ours = best_of(lambda: read_coco(str(path), tmp), a.repeat)
    print(f"{a.images} images, {a.annotations} annotations ({megabytes:.0f} MB of JSON): {n_rows} training boxes, "
          f"{split.ignored} crowd boxes left out")
    print(f"pycocotools COCO(): {t_ref:.3f} s")
    print(f"yolobone read_coco: {t_ours:.3f} s")
    print(f"ratio: {t_ours / t_ref:.2f}x (target <= 2.00x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
