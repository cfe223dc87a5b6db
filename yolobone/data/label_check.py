"""Label checking: each image verified, each label row parsed and repaired or dropped, results cached.

The cache is JSON (nothing to unpickle) in ``<labels dir>.cache``, keyed by a hash of every image and label file's
path, size and mtime plus nc, so any edit triggers a rescan. Nothing here raises on bad data: problems are returned
as ``(file, why)`` pairs for one summary.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from yolobone.data.box_rules import CLIPPED, COORD_TOL, OUTSIDE, ZERO, keep, repair_boxes
from yolobone.utils.boxes import segment2box
from yolobone.utils.logging import LOGGER
from yolobone.data.media import IMG_FORMATS

CACHE_VERSION = 3  # bump when the checks change so old .cache files are rescanned
NUM_THREADS = min(8, max(1, os.cpu_count() or 1))
MAX_LISTED_PROBLEMS = 100  # lines in the summary; dataset.problems keeps them all


def _exif_size(img: Image.Image) -> Tuple[int, int]:
    """(w, h) after the EXIF orientation is applied (OpenCV applies it when reading)."""
    w, h = img.size
    try:
        if img.getexif().get(0x0112) in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
            return h, w
    except Exception:  # broken EXIF blocks are common; the pixel size is still right
        pass
    return w, h


def check_image(im_file: str) -> Tuple[Optional[Tuple[int, int]], List[str]]:
    """(w, h) or None when unusable, plus notes. Read only: a truncated JPEG that OpenCV can decode is kept (the
    decoder fills the missing part every time it is loaded); the dataset's files are never written."""
    if not os.path.isfile(im_file):
        return None, ["image not found"]
    try:
        with Image.open(im_file) as img:
            img.verify()
        with Image.open(im_file) as img:
            shape, fmt = _exif_size(img), (img.format or "").lower()
    except Exception as e:  # PIL raises many types for broken files
        return None, [f"corrupt image ({type(e).__name__}: {e})"]
    if fmt not in IMG_FORMATS:
        return None, [f"unsupported image format {fmt!r}"]
    if shape[0] < 10 or shape[1] < 10:
        return None, [f"image size {shape[0]}x{shape[1]} is below 10 pixels"]
    if fmt in ("jpeg", "mpo"):
        with open(im_file, "rb") as f:
            f.seek(-2, os.SEEK_END)
            complete = f.read() == b"\xff\xd9"
        if not complete:
            im = cv2.imread(im_file)
            if im is None:
                return None, ["truncated JPEG that cannot be decoded"]
            return (im.shape[1], im.shape[0]), ["truncated JPEG: used as decoded, missing part filled "
                                                "(the file is left as it is)"]
    return shape, []


def _parse_row(parts: List[str], nc: Optional[int]) -> Tuple[Optional[Tuple[float, np.ndarray]], List[str]]:
    """((class, normalised x1 y1 x2 y2) or None when the row is dropped, notes) for one split label line."""
    try:
        vals = [float(v) for v in parts]
    except ValueError:
        return None, [f"not numbers {' '.join(parts)[:40]!r}, row dropped"]
    if not all(math.isfinite(v) for v in vals):
        return None, ["non-finite value, row dropped"]
    c = vals[0]
    if c < 0 or c != int(c):
        return None, [f"class {parts[0]!r} is not a non-negative integer, row dropped"]
    if nc is not None and c >= nc:
        return None, [f"class {int(c)} >= nc {nc}, row dropped"]
    if len(vals) == 5:
        cx, cy, w, h = vals[1:]
        return (c, np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])), []
    if len(vals) >= 7 and len(vals) % 2 == 1:  # polygon row (YOLOv5 segments): use its bounding box
        notes = []
        if len(vals) == 7:  # also what a box row with two stray values looks like: say how it was read
            notes.append("7 values read as a 3-point polygon (cls x1 y1 x2 y2 x3 y3), not as a box "
                         "(cls cx cy w h has 5)")
        pts = np.array(vals[1:], np.float64).reshape(-1, 2)
        if pts.min() < -COORD_TOL or pts.max() > 1 + COORD_TOL:
            return None, notes + ["polygon outside [0, 1], row dropped"]
        cx, cy, w, h = segment2box(pts.clip(0, 1)).astype(np.float64)
        return (c, np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])), notes
    return None, [f"{len(vals)} values, expected 5 (cls cx cy w h) or a polygon, row dropped"]


def _repair_rows(classes: List[float], boxes: List[np.ndarray], lines: List[int], texts: List[str]
                 ) -> Tuple[np.ndarray, List[str]]:
    """(rows (n, 5) cls cx cy w h float32, notes) after the shared box rule and duplicate removal."""
    if not boxes:
        return np.zeros((0, 5), np.float32), []
    xywh, status = repair_boxes(np.stack(boxes))
    notes = []
    for ln, text, st in zip(lines, texts, status):
        if st == OUTSIDE:
            notes.append(f"line {ln}: coordinates outside [0, 1] ({text}), row dropped")
        elif st == CLIPPED:
            notes.append(f"line {ln}: coordinates slightly outside [0, 1], clipped")
        elif st == ZERO:
            notes.append(f"line {ln}: zero-size box, row dropped")
    arr = np.concatenate([np.array(classes, np.float32)[:, None], xywh], 1)[keep(status)]
    _, first = np.unique(arr, axis=0, return_index=True)
    if len(first) < len(arr):
        notes.append(f"{len(arr) - len(first)} duplicate rows removed")
        arr = arr[np.sort(first)]
    return arr, notes


def _parse_labels(lb_file: str, nc: Optional[int]) -> Tuple[np.ndarray, List[str], str]:
    """(rows (n, 5) cls cx cy w h, notes, state) with state 'found', 'empty' or 'missing'; bad rows dropped."""
    if not os.path.isfile(lb_file):
        return np.zeros((0, 5), np.float32), [], "missing"
    try:
        text = Path(lb_file).read_text(encoding="utf-8-sig")  # editors on Windows may start it with a BOM
    except (OSError, UnicodeDecodeError) as e:
        return np.zeros((0, 5), np.float32), [f"unreadable label file ({type(e).__name__})"], "found"
    notes: List[str] = []
    classes, boxes, lines, texts = [], [], [], []
    for ln, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        row, row_notes = _parse_row(parts, nc)
        notes += [f"line {ln}: {n}" for n in row_notes]
        if row is not None:
            classes.append(row[0])
            boxes.append(row[1])
            lines.append(ln)
            texts.append(" ".join(parts[1:5]))
    arr, box_notes = _repair_rows(classes, boxes, lines, texts)
    notes += box_notes
    if not len(arr):
        return arr, notes, "found" if notes else "empty"
    return arr, notes, "found"


def verify_image_label(im_file: str, lb_file: str, nc: Optional[int] = None) -> Dict[str, Any]:
    """Check one image and its label file: {'shape': (w, h) or None, 'labels', 'state', 'problems': [(file, why)]}."""
    try:
        shape, im_notes = check_image(im_file)
    except OSError as e:  # permissions, vanished files: skip the image rather than stop the scan
        shape, im_notes = None, [f"unreadable image ({type(e).__name__}: {e})"]
    problems = [(im_file, n) for n in im_notes]
    if shape is None:
        return {"shape": None, "labels": np.zeros((0, 5), np.float32), "state": "corrupt", "problems": problems}
    labels, lb_notes, state = _parse_labels(lb_file, nc)
    problems += [(lb_file, n) for n in lb_notes]
    return {"shape": shape, "labels": labels, "state": state, "problems": problems}


def files_digest(files: Sequence[str], head: str) -> str:
    """Hash of `head` and every file's path, size and modification time (a missing file counts as such)."""
    h = hashlib.sha256(head.encode())
    for f in files:
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0-\n".encode())
    return h.hexdigest()


def read_cache(path: Path, digest: Optional[str]) -> Optional[dict]:
    """The cache at path when it is of this version and (unless digest is None) made for these files."""
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(cache, dict) or cache.get("version") != CACHE_VERSION:
        return None
    return cache if digest is None or cache.get("hash") == digest else None


def write_cache(path: Path, cache: dict, prefix: str) -> None:
    """Write the cache atomically; an unwritable folder only warns."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        LOGGER.warning(f"{prefix}label cache not saved, {path.parent} is not writeable ({e})")


def scan_labels(im_files: Sequence[str], label_files: Sequence[str], nc: Optional[int], cache_path: Path,
                prefix: str = "") -> Tuple[dict, bool]:
    """Check every image/label pair, or read the results from cache_path when no file changed.

    Returns ({'entries': [[im_file, w, h, labels], ...] for usable images, 'problems': [[file, why], ...],
    'counts': {...}}, from_cache).
    """
    digest = files_digest(list(im_files) + list(label_files), f"v{CACHE_VERSION} nc={nc}")
    cache = read_cache(cache_path, digest)
    if cache is not None:
        return cache, True
    entries, problems = [], []
    counts = {"images": len(im_files), "found": 0, "missing": 0, "empty": 0, "corrupt": 0}
    with ThreadPoolExecutor(NUM_THREADS) as pool:
        results = pool.map(lambda a: verify_image_label(a[0], a[1], nc), zip(im_files, label_files))
        desc = f"{prefix}Scanning {str(cache_path)[:-len('.cache')]}"
        for im_file, r in tqdm(zip(im_files, results), total=len(im_files), desc=desc, leave=False):
            counts[r["state"]] += 1
            problems += [list(p) for p in r["problems"]]
            if r["shape"] is not None:
                entries.append([im_file, r["shape"][0], r["shape"][1], r["labels"].tolist()])
    cache = {"version": CACHE_VERSION, "hash": digest, "entries": entries, "problems": problems, "counts": counts}
    write_cache(cache_path, cache, prefix)
    return cache, False


def summarize(cache: dict, where: Path, from_cache: bool, prefix: str) -> str:
    """The one summary of a scan: counts, then one line per problem ("file: why")."""
    c = cache["counts"]
    text = (f"{prefix}{'Cached' if from_cache else 'Scanned'} {where}: {c['images']} images, {c['found']} with labels, "
            f"{c['missing']} without label file and {c['empty']} empty (background), {c['corrupt']} skipped, "
            f"{len(cache['problems'])} problems")
    if cache.get("ignored"):  # COCO iscrowd / VOC difficult: not trained, as their evaluations ignore them
        text += f" ({cache['ignored']} crowd/difficult objects left out)"
    shown = cache["problems"][:MAX_LISTED_PROBLEMS]
    lines = [f"  {f}: {why}" for f, why in shown]
    if len(cache["problems"]) > len(shown):
        lines.append(f"  ... and {len(cache['problems']) - len(shown)} more (dataset.problems lists all)")
    return "\n".join([text + (":" if lines else "")] + lines)
