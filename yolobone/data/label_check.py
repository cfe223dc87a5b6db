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

from yolobone.utils.boxes import segment2box
from yolobone.utils.logging import LOGGER
from yolobone.data.media import IMG_FORMATS

CACHE_VERSION = 2  # bump when the checks change so old .cache files are rescanned
NUM_THREADS = min(8, max(1, os.cpu_count() or 1))
COORD_TOL = 0.01  # cx, cy, w, h this far outside [0, 1] are clipped; further out the row is dropped
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


def _check_image(im_file: str) -> Tuple[Optional[Tuple[int, int]], List[str]]:
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


def _parse_labels(lb_file: str, nc: Optional[int]) -> Tuple[np.ndarray, List[str], str]:
    """(rows (n, 5) cls cx cy w h, notes, state) with state 'found', 'empty' or 'missing'; bad rows dropped."""
    if not os.path.isfile(lb_file):
        return np.zeros((0, 5), np.float32), [], "missing"
    try:
        text = Path(lb_file).read_text(encoding="utf-8-sig")  # editors on Windows may start it with a BOM
    except (OSError, UnicodeDecodeError) as e:
        return np.zeros((0, 5), np.float32), [f"unreadable label file ({type(e).__name__})"], "found"
    notes, rows = [], []
    for ln, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            notes.append(f"line {ln}: not numbers {line.strip()[:40]!r}, row dropped")
            continue
        if not all(math.isfinite(v) for v in vals):
            notes.append(f"line {ln}: non-finite value, row dropped")
            continue
        c = vals[0]
        if c < 0 or c != int(c):
            notes.append(f"line {ln}: class {parts[0]!r} is not a non-negative integer, row dropped")
            continue
        if nc is not None and c >= nc:
            notes.append(f"line {ln}: class {int(c)} >= nc {nc}, row dropped")
            continue
        if len(vals) == 5:
            box = np.array(vals[1:], np.float64)
        elif len(vals) >= 7 and len(vals) % 2 == 1:  # polygon row (YOLOv5 segments): use its bounding box
            if len(vals) == 7:  # also what a box row with two stray values looks like: say how it was read
                notes.append(f"line {ln}: 7 values read as a 3-point polygon (cls x1 y1 x2 y2 x3 y3), not as a box "
                             f"(cls cx cy w h has 5)")
            pts = np.array(vals[1:], np.float64).reshape(-1, 2)
            if pts.min() < -COORD_TOL or pts.max() > 1 + COORD_TOL:
                notes.append(f"line {ln}: polygon outside [0, 1], row dropped")
                continue
            box = segment2box(pts.clip(0, 1)).astype(np.float64)
        else:
            notes.append(f"line {ln}: {len(vals)} values, expected 5 (cls cx cy w h) or a polygon, row dropped")
            continue
        if box.min() < -COORD_TOL or box.max() > 1 + COORD_TOL:
            notes.append(f"line {ln}: coordinates outside [0, 1] ({' '.join(parts[1:5])}), row dropped")
            continue
        if box.min() < 0 or box.max() > 1:
            notes.append(f"line {ln}: coordinates slightly outside [0, 1], clipped")
        x1, y1 = np.clip(box[:2] - box[2:] / 2, 0, 1)
        x2, y2 = np.clip(box[:2] + box[2:] / 2, 0, 1)
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            notes.append(f"line {ln}: zero-size box, row dropped")
            continue
        rows.append([c, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    if not rows:
        return np.zeros((0, 5), np.float32), notes, "found" if notes else "empty"
    arr = np.array(rows, np.float32)
    _, first = np.unique(arr, axis=0, return_index=True)
    if len(first) < len(arr):
        notes.append(f"{len(arr) - len(first)} duplicate rows removed")
        arr = arr[np.sort(first)]
    return arr, notes, "found"


def verify_image_label(im_file: str, lb_file: str, nc: Optional[int] = None) -> Dict[str, Any]:
    """Check one image and its label file: {'shape': (w, h) or None, 'labels', 'state', 'problems': [(file, why)]}."""
    try:
        shape, im_notes = _check_image(im_file)
    except OSError as e:  # permissions, vanished files: skip the image rather than stop the scan
        shape, im_notes = None, [f"unreadable image ({type(e).__name__}: {e})"]
    problems = [(im_file, n) for n in im_notes]
    if shape is None:
        return {"shape": None, "labels": np.zeros((0, 5), np.float32), "state": "corrupt", "problems": problems}
    labels, lb_notes, state = _parse_labels(lb_file, nc)
    problems += [(lb_file, n) for n in lb_notes]
    return {"shape": shape, "labels": labels, "state": state, "problems": problems}


def _files_hash(files: Sequence[str], nc: Optional[int]) -> str:
    """Hash of paths, sizes and modification times (and nc, and the check version)."""
    h = hashlib.sha256(f"v{CACHE_VERSION} nc={nc}".encode())
    for f in files:
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0-\n".encode())
    return h.hexdigest()


def _read_cache(path: Path, digest: str) -> Optional[dict]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return cache if cache.get("version") == CACHE_VERSION and cache.get("hash") == digest else None


def _write_cache(path: Path, cache: dict, prefix: str) -> None:
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
    digest = _files_hash(list(im_files) + list(label_files), nc)
    cache = _read_cache(cache_path, digest)
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
    _write_cache(cache_path, cache, prefix)
    return cache, False


def summarize(cache: dict, where: Path, from_cache: bool, prefix: str) -> str:
    """The one summary of a scan: counts, then one line per problem ("file: why")."""
    c = cache["counts"]
    text = (f"{prefix}{'Cached' if from_cache else 'Scanned'} {where}: {c['images']} images, {c['found']} with labels, "
            f"{c['missing']} without label file and {c['empty']} empty (background), {c['corrupt']} skipped, "
            f"{len(cache['problems'])} problems")
    shown = cache["problems"][:MAX_LISTED_PROBLEMS]
    lines = [f"  {f}: {why}" for f, why in shown]
    if len(cache["problems"]) > len(shown):
        lines.append(f"  ... and {len(cache['problems']) - len(shown)} more (dataset.problems lists all)")
    return "\n".join([text + (":" if lines else "")] + lines)
