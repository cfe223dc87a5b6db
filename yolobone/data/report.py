"""The dataset report shown before training: per split images, boxes and background images, the class histogram,
box-size and aspect-ratio distributions, boxes under 8 px, and images that appear in both train and val.

It reads what training reads (image files, original (w, h), float32 rows), so it is the same for every format.
Duplicates are found by content hash; only files whose byte size occurs in both splits are hashed.
"""
from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

SMALL_PX = 8  # boxes whose shorter side is under this many pixels are hard to learn at stride 8
SIZE_BINS = (0, 8, 16, 32, 64, 128, 256, 512, float("inf"))  # box side sqrt(w*h) in original pixels
ASPECT_BINS = (0, 1 / 4, 1 / 2, 1 / 1.25, 1.25, 2, 4, float("inf"))  # w / h


@dataclass
class SplitLabels:
    """What a split holds: image files, original (w, h) per image, (n, 5) normalised rows per image."""
    files: Sequence[str]
    sizes: Sequence[Tuple[int, int]]
    labels: Sequence[np.ndarray]


def split_of(dataset: Any) -> SplitLabels:
    """The SplitLabels of a DetectionDataset (its usable images, their original sizes and rows)."""
    return SplitLabels(list(dataset.im_files), [(int(w), int(h)) for w, h in dataset.shapes], list(dataset.labels))


def pixel_wh(split: SplitLabels) -> np.ndarray:
    """(n, 3) class, box width and height in original pixels for every box of the split."""
    rows = [np.column_stack((lb[:, 0], lb[:, 3] * w, lb[:, 4] * h))
            for (w, h), lb in zip(split.sizes, split.labels) if len(lb)]
    return np.concatenate(rows, 0) if rows else np.zeros((0, 3))


def _histogram(values: np.ndarray, edges: Sequence[float], fmt: str) -> List[str]:
    counts, _ = np.histogram(values, bins=np.array(edges, np.float64))
    total = max(int(counts.sum()), 1)
    lines = []
    for lo, hi, n in zip(edges[:-1], edges[1:], counts):
        label = f"{fmt.format(lo)}-{fmt.format(hi)}" if np.isfinite(hi) else f">={fmt.format(lo)}"
        lines.append(f"    {label:>12}: {int(n):7d} ({100 * n / total:5.1f} %)")
    return lines


def split_summary(name: str, split: SplitLabels, names: Sequence[str]) -> List[str]:
    """The text lines of one split."""
    boxes = pixel_wh(split)
    n_bg = sum(1 for lb in split.labels if not len(lb))
    lines = [f"{name}: {len(split.files)} images, {len(boxes)} boxes, {n_bg} background images (no boxes)"]
    counts = np.bincount(boxes[:, 0].astype(int), minlength=len(names)) if len(boxes) else np.zeros(len(names), int)
    lines.append("  instances per class:")
    lines += [f"    {n:>20}: {int(c)}" for n, c in zip(names, counts)]
    if not len(boxes):
        return lines
    side = np.sqrt(boxes[:, 1] * boxes[:, 2])
    small = int((np.minimum(boxes[:, 1], boxes[:, 2]) < SMALL_PX).sum())
    lines.append(f"  box size sqrt(w*h) in pixels: median {np.median(side):.1f}, min {side.min():.1f}, "
                 f"max {side.max():.1f}")
    lines += _histogram(side, SIZE_BINS, "{:g}")
    lines.append("  aspect ratio w/h:")
    lines += _histogram(boxes[:, 1] / np.maximum(boxes[:, 2], 1e-9), ASPECT_BINS, "{:.2f}")
    lines.append(f"  boxes under {SMALL_PX} px (shorter side): {small} ({100 * small / len(boxes):.1f} %)")
    return lines


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def duplicate_images(a: Sequence[str], b: Sequence[str]) -> List[Tuple[str, str]]:
    """(file in a, file in b) pairs with identical bytes; only files whose size occurs in both are hashed."""
    def by_size(files: Sequence[str]) -> Dict[int, List[str]]:
        out: Dict[int, List[str]] = defaultdict(list)
        for f in files:
            out[os.path.getsize(f)].append(f)
        return out

    sa, sb = by_size(a), by_size(b)
    pairs = []
    for size in sorted(set(sa) & set(sb)):
        hashes: Dict[str, List[str]] = defaultdict(list)
        for f in sa[size]:
            hashes[_digest(f)].append(f)
        pairs += [(fa, fb) for fb in sb[size] for fa in hashes.get(_digest(fb), [])]
    return pairs


def dataset_report(splits: Dict[str, SplitLabels], names: Sequence[str], max_listed: int = 10) -> str:
    """The full text report of the splits (train, val, test as present)."""
    lines: List[str] = []
    for name, split in splits.items():
        lines += split_summary(name, split, names)
    if "train" in splits and "val" in splits:
        pairs = duplicate_images(splits["train"].files, splits["val"].files)
        lines.append(f"duplicate images in train and val (same bytes): {len(pairs)}")
        lines += [f"    {a} == {b}" for a, b in pairs[:max_listed]]
        if len(pairs) > max_listed:
            lines.append(f"    ... and {len(pairs) - max_listed} more")
    return "\n".join(lines)
