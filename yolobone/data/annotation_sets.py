"""COCO JSON and VOC splits named in a data YAML: their specs, class names, and a cached scan into training labels.

A split spec is a dict, ``{"format": "coco", "source": <json>, "images": <dir>}`` or ``{"format": "voc", "source":
<ImageSets list>, "annotations": <dir>, "images": <dir>}``, plus the class ``names``. The scan (parse, then every
image checked as YOLO images are) is cached as JSON under $YOLOBONE_LABEL_CACHE (default ~/.cache/yolobone/labels)
and never inside the user's dataset; the cache is valid while the annotation file and every image keep their size
and modification time.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from yolobone.data.annotated import AnnotatedSplit, AnnotationError
from yolobone.data.coco_json import read_coco
from yolobone.data.errors import DatasetError
from yolobone.data.label_check import (CACHE_VERSION, NUM_THREADS, check_image, files_digest, read_cache,
                                       write_cache)
from yolobone.data.voc_xml import read_voc, voc_object_names

SCAN_VERSION = 1  # bump when the readers change so old caches are rescanned
SPEC_KEYS = {"coco": {"coco", "images"}, "voc": {"voc", "annotations", "images"}}


def label_cache_dir() -> Path:
    """Folder of the COCO/VOC label caches: $YOLOBONE_LABEL_CACHE or ~/.cache/yolobone/labels."""
    env = os.environ.get("YOLOBONE_LABEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "yolobone" / "labels"


def _under(root: Path, value: Any, what: str, where: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise DatasetError(f"{where}: {what} must be a path, got {value!r}")
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


def _existing(p: Path, what: str, where: str, folder: bool) -> str:
    if not (p.is_dir() if folder else p.is_file()):
        raise DatasetError(f"{where}: {what} {'folder' if folder else 'file'} not found: {p}")
    return str(p.resolve())


def _short_form_images(json_path: Path, root: Path) -> Path:
    """Images of `annotations/instances_train2017.json`: images/train2017 (or train2017/) when there, else path."""
    stem = json_path.stem.replace("instances_", "")
    for candidate in (root / "images" / stem, root / stem):
        if candidate.is_dir():
            return candidate
    return root


def split_spec(value: Any, key: str, root: Path, where: str) -> Optional[Dict[str, Any]]:
    """The spec of a COCO/VOC split value of the data YAML, or None for a YOLO-form value (folders, lists)."""
    if isinstance(value, (str, os.PathLike)) and str(value).lower().endswith(".json"):
        p = _under(root, value, f"{key!r}", where)
        src = _existing(p, f"{key!r} COCO JSON", where, folder=False)
        return {"format": "coco", "source": src, "images": str(_short_form_images(p, root).resolve())}
    if not isinstance(value, dict):
        return None
    fmt = next((f for f in SPEC_KEYS if f in value), None)
    if fmt is None or set(value) - SPEC_KEYS[fmt]:
        raise DatasetError(f"{where}: {key!r} must be a path, {{coco: <json>, images: <dir>}} or "
                           f"{{voc: <ImageSets list>}}, got {value!r}")
    src = _existing(_under(root, value[fmt], f"{key}.{fmt}", where), f"{key!r} {fmt.upper()}", where, folder=False)
    if fmt == "coco":
        images = _existing(_under(root, value.get("images", "."), f"{key}.images", where), f"{key!r} images",
                           where, folder=True)
        return {"format": "coco", "source": src, "images": images}
    ann = _under(root, value.get("annotations", "Annotations"), f"{key}.annotations", where)
    images = _under(root, value.get("images", "JPEGImages"), f"{key}.images", where)
    return {"format": "voc", "source": src, "annotations": _existing(ann, f"{key!r} VOC annotations", where, True),
            "images": _existing(images, f"{key!r} VOC images", where, folder=True)}


def names_from_specs(specs: Sequence[Dict[str, Any]], yaml_names: Optional[List[str]], where: str) -> List[str]:
    """Class names: a COCO split's categories (every COCO split must agree, and so must the YAML's names), else the
    YAML's names, else the sorted object names of the VOC splits."""
    coco = [s for s in specs if s["format"] == "coco"]
    names = None
    for spec in coco:
        scan, _ = scan_split({**spec, "names": None})
        if names is not None and scan["names"] != names:
            raise DatasetError(f"{where}: the categories of {spec['source']} ({scan['names']}) differ from "
                               f"{coco[0]['source']} ({names}); splits must share one category list")
        names = scan["names"]
    if names is not None:
        if yaml_names is not None and yaml_names != names:
            raise DatasetError(f"{where}: names {yaml_names} differ from the categories of {coco[0]['source']} "
                               f"({names}); drop 'names' to use the file's")
        return names
    if yaml_names is not None:
        return yaml_names
    voc = [s for s in specs if s["format"] == "voc"]
    names = voc_object_names([s["source"] for s in voc], {s["source"]: s["annotations"] for s in voc})
    if not names:
        raise DatasetError(f"{where}: the VOC splits hold no objects, so there are no class names (add 'names')")
    return names


def _parse(spec: Dict[str, Any]) -> AnnotatedSplit:
    if spec["format"] == "coco":
        split = read_coco(spec["source"], spec["images"])
        if spec.get("names") is not None and spec["names"] != split.names:
            raise DatasetError(f"{spec['source']}: categories {split.names} differ from names {spec['names']}")
        return split
    return read_voc(spec["source"], spec["annotations"], spec["images"], spec["names"])


def _cache_path(spec: Dict[str, Any]) -> Path:
    key = hashlib.sha256(f"{spec['format']}\0{spec['source']}\0{spec['images']}".encode()).hexdigest()[:16]
    return label_cache_dir() / f"{Path(spec['source']).stem}-{key}.cache"


def _head(spec: Dict[str, Any]) -> str:
    """What the cache depends on besides the images: version, format, the annotation file's stat and, for VOC, the
    class names (a COCO file names its own classes)."""
    src = spec["source"]
    st = os.stat(src)
    names = spec.get("names") if spec["format"] == "voc" else None
    return f"v{SCAN_VERSION} {spec['format']} {names} {src} {st.st_size} {st.st_mtime_ns}"


def _cached(spec: Dict[str, Any]) -> Optional[dict]:
    cache = read_cache(_cache_path(spec), None)
    if cache is None or cache.get("head") != _head(spec):
        return None
    return cache if cache.get("hash") == files_digest(cache["watched"], cache["head"]) else None


def _check_images(split: AnnotatedSplit) -> Tuple[List[Optional[Tuple[int, int]]], List[List[str]]]:
    """Each image's (w, h) (None: unusable) and problems; a listed image that does not exist raises."""
    missing = next((k for k, f in enumerate(split.files) if not os.path.isfile(f)), None)
    if missing is not None:
        raise AnnotationError(f"{split.source}: {split.entries[missing]}: image file not found: "
                              f"{split.files[missing]}")
    with ThreadPoolExecutor(NUM_THREADS) as pool:
        checked = list(pool.map(check_image, split.files))
    shapes, problems = [], []
    for f, size, (shape, notes) in zip(split.files, split.sizes, checked):
        if shape is not None and tuple(shape) != tuple(size):
            notes = notes + [f"size {size[0]}x{size[1]} in {split.source} differs from the image's "
                             f"{shape[0]}x{shape[1]}; boxes are read against the annotation's size"]
        shapes.append(shape)
        problems += [[f, n] for n in notes]
    return shapes, problems


def scan_split(spec: Dict[str, Any], prefix: str = "") -> Tuple[dict, bool]:
    """Parse a COCO/VOC split and check its images, or read both from the cache: ({'entries': [[file, w, h,
    rows], ...], 'image_ids', 'names', 'category_ids', 'problems', 'counts', 'ignored'}, from_cache)."""
    cache = _cached(spec)
    if cache is not None:
        return cache, True
    split = _parse(spec)
    shapes, problems = _check_images(split)
    entries, image_ids = [], []
    counts = {"images": len(split.files), "found": 0, "missing": 0, "empty": 0, "corrupt": 0}
    for f, shape, image_id, rows in zip(split.files, shapes, split.image_ids, split.labels):
        if shape is None:
            counts["corrupt"] += 1
            continue
        counts["found" if len(rows) else "empty"] += 1
        entries.append([f, shape[0], shape[1], rows.tolist()])
        image_ids.append(image_id)
    head = _head(spec)
    watched = split.files + split.inputs
    cache = {"version": CACHE_VERSION, "head": head, "hash": files_digest(watched, head), "watched": watched,
             "entries": entries, "image_ids": image_ids, "names": split.names, "category_ids": split.category_ids,
             "problems": [list(p) for p in split.problems] + problems, "counts": counts, "ignored": split.ignored}
    path = _cache_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_cache(path, cache, prefix)
    return cache, False


def spec_image_files(spec: Dict[str, Any]) -> List[str]:
    """The usable images of a COCO/VOC split (for INT8 calibration and the like)."""
    return [e[0] for e in scan_split(spec)[0]["entries"]]
