"""Convert a detection set between YOLO txt, COCO JSON and Pascal VOC XML, into a new folder with its data.yaml.

The input is any data YAML train.py reads; what is written is what training would see: the checked float32 rows
(repaired boxes clipped, bad ones dropped, COCO crowd and VOC difficult objects left out). Pixel coordinates are
written with 12 significant digits, so reading the output back gives the same float32 rows: YOLO -> COCO -> YOLO
returns every box to within 1e-6 (in practice bit for bit).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from xml.sax.saxutils import escape

import numpy as np

from yolobone.data.config import check_dataset
from yolobone.data.datasets import scan_source
from yolobone.data.errors import DatasetError
from yolobone.data.report import SplitLabels

FORMATS = ("yolo", "coco", "voc")
SPLITS = ("train", "val", "test")


@dataclass
class SplitData(SplitLabels):
    """A split as training reads it: image files, (w, h), float32 rows (cls cx cy w h), ids, image folder."""
    image_ids: List[Any]
    images_root: str
    category_ids: Optional[List[int]] = None


def _images_root(files: Sequence[str]) -> str:
    """The deepest folder holding all the split's images: paths below it are kept in the output."""
    return os.path.commonpath([os.path.dirname(f) for f in files]) if files else ""


def load_splits(data: Union[str, os.PathLike, dict]) -> Tuple[Dict[str, Any], Dict[str, SplitData]]:
    """(checked data config, {split: SplitData}) for every split the data YAML names."""
    cfg = check_dataset(data)
    out = {}
    for split in SPLITS:
        if not cfg.get(split):
            continue
        scan, _, _ = scan_source(cfg[split], cfg["nc"], f"{split}: ")
        files = [e[0] for e in scan["entries"]]
        out[split] = SplitData(files=files, sizes=[(int(e[1]), int(e[2])) for e in scan["entries"]],
                               labels=[np.array(e[3], np.float32).reshape(-1, 5) for e in scan["entries"]],
                               image_ids=scan.get("image_ids") or list(range(1, len(files) + 1)),
                               images_root=_images_root(files), category_ids=scan.get("category_ids"))
    return cfg, out


def _num(v: float) -> Union[int, float]:
    """v with 12 significant digits, as an int when whole (readable files; float32 survives the trip)."""
    r = float(f"{v:.12g}")
    return int(r) if r.is_integer() else r


def pixel_boxes(rows: np.ndarray, w: int, h: int) -> np.ndarray:
    """(n, 4) float64 pixel x1 y1 x2 y2 of (n, 5) normalised rows."""
    r = rows.astype(np.float64)
    return np.stack(((r[:, 1] - r[:, 3] / 2) * w, (r[:, 2] - r[:, 4] / 2) * h,
                     (r[:, 1] + r[:, 3] / 2) * w, (r[:, 2] + r[:, 4] / 2) * h), 1)


def _copy_image(src: str, split: SplitData, dst_dir: Path) -> str:
    """Copy src under dst_dir keeping its path below the split's image folder; returns that relative path."""
    rel = os.path.relpath(src, split.images_root)
    if rel.startswith(".."):
        rel = os.path.basename(src)
    dst = dst_dir / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    return Path(rel).as_posix()


def _yaml(out: Path, splits: Dict[str, str], names: Sequence[str], header: str) -> Path:
    lines = [f"# {header}", "path: .  # relative to this file's folder"]
    lines += [f"{k}: {v}" for k, v in splits.items()]
    lines += [f"nc: {len(names)}", f"names: {json.dumps(list(names))}"]
    path = out / "data.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_yolo(out: Path, splits: Dict[str, SplitData], names: Sequence[str]) -> Path:
    """images/<split>/..., labels/<split>/....txt (cls cx cy w h, float32 written exactly) and data.yaml."""
    for name, split in splits.items():
        for f, rows in zip(split.files, split.labels):
            rel = _copy_image(f, split, out / "images" / name)
            txt = (out / "labels" / name / rel).with_suffix(".txt")
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("".join(f"{int(r[0])} {r[1]:.9g} {r[2]:.9g} {r[3]:.9g} {r[4]:.9g}\n" for r in rows))
    return _yaml(out, {k: f"images/{k}" for k in splits}, names, "YOLO txt labels written by yolobone dataset convert")


def coco_dict(split: SplitData, names: Sequence[str], file_names: Sequence[str]) -> dict:
    """The COCO detection dict of a split (category ids kept from a COCO source, else 1..nc)."""
    cat_ids = split.category_ids or list(range(1, len(names) + 1))
    images, anns = [], []
    for image_id, fname, (w, h), rows in zip(split.image_ids, file_names, split.sizes, split.labels):
        images.append({"id": image_id, "file_name": fname, "width": w, "height": h})
        for r, (x1, y1, x2, y2) in zip(rows, pixel_boxes(rows, w, h)):
            bw, bh = _num(x2 - x1), _num(y2 - y1)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat_ids[int(r[0])],
                         "bbox": [_num(x1), _num(y1), bw, bh], "area": _num(bw * bh), "iscrowd": 0})
    return {"images": images, "annotations": anns,
            "categories": [{"id": c, "name": n, "supercategory": "none"} for c, n in zip(cat_ids, names)]}


def write_coco(out: Path, splits: Dict[str, SplitData], names: Sequence[str]) -> Path:
    """images/<split>/..., annotations/instances_<split>.json and data.yaml."""
    entries = {}
    for name, split in splits.items():
        file_names = [_copy_image(f, split, out / "images" / name) for f in split.files]
        path = out / "annotations" / f"instances_{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(coco_dict(split, names, file_names)))
        entries[name] = f"{{coco: annotations/instances_{name}.json, images: images/{name}}}"
    return _yaml(out, entries, names, "COCO JSON written by yolobone dataset convert")


def voc_xml(file_name: str, size: Tuple[int, int], rows: np.ndarray, names: Sequence[str]) -> str:
    """One VOC annotation (1-based pixel corners: xmin = x1 + 1)."""
    w, h = size
    objs = []
    for r, (x1, y1, x2, y2) in zip(rows, pixel_boxes(rows, w, h)):
        objs.append(f"  <object>\n    <name>{escape(names[int(r[0])])}</name>\n    <difficult>0</difficult>\n"
                    f"    <bndbox><xmin>{_num(x1 + 1)}</xmin><ymin>{_num(y1 + 1)}</ymin><xmax>{_num(x2 + 1)}</xmax>"
                    f"<ymax>{_num(y2 + 1)}</ymax></bndbox>\n  </object>\n")
    return (f"<annotation>\n  <filename>{escape(file_name)}</filename>\n  <size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size>\n{''.join(objs)}</annotation>\n")


def write_voc(out: Path, splits: Dict[str, SplitData], names: Sequence[str]) -> Path:
    """JPEGImages/, Annotations/<id>.xml, ImageSets/Main/<split>.txt and data.yaml (ids: <split>_<path>)."""
    entries = {}
    for name, split in splits.items():
        ids = []
        for f, size, rows in zip(split.files, split.sizes, split.labels):
            rel = _copy_image(f, split, out / "JPEGImages" / name)
            image_id = f"{name}_{Path(rel).with_suffix('').as_posix().replace('/', '_')}"
            xml = out / "Annotations" / f"{image_id}.xml"
            xml.parent.mkdir(parents=True, exist_ok=True)
            xml.write_text(voc_xml(f"{name}/{rel}", size, rows, names))
            ids.append(image_id)
        lst = out / "ImageSets" / "Main" / f"{name}.txt"
        lst.parent.mkdir(parents=True, exist_ok=True)
        lst.write_text("".join(i + "\n" for i in ids))
        entries[name] = f"{{voc: ImageSets/Main/{name}.txt}}"
    return _yaml(out, entries, names, "Pascal VOC XML written by yolobone dataset convert")


WRITERS = {"yolo": write_yolo, "coco": write_coco, "voc": write_voc}


def convert_dataset(data: Union[str, os.PathLike, dict], out: Union[str, os.PathLike], to: str) -> Path:
    """Write the data YAML's splits in format `to` into the new (or empty) folder out; returns its data.yaml."""
    if to not in WRITERS:
        raise DatasetError(f"convert: unknown format {to!r}, expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"convert: {out} exists and is not an empty folder (the converter writes a new one)")
    cfg, splits = load_splits(data)
    out.mkdir(parents=True, exist_ok=True)
    return WRITERS[to](out, splits, cfg["names"])
