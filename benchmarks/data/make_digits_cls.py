"""Write scikit-learn's bundled handwritten digits as a 10-class ImageFolder classification set (offline).

    python benchmarks/data/make_digits_cls.py                       # -> ~/.cache/yolobone/datasets/digits-cls
    python benchmarks/data/make_digits_cls.py --out /tmp/digits --imgsz 32 --val-ratio 0.2

The source is `sklearn.datasets.load_digits`: 1,797 real scanned handwritten digits (8x8, 17 grey levels, 10
classes), shipped inside scikit-learn, so nothing is downloaded. Each digit is upscaled bilinearly to imgsz px and
written as an RGB PNG (white digit on black) to root/train/<digit>/ and root/val/<digit>/. The held-out split is
fixed: per class, a permutation seeded by (seed, class) sends round(n * val_ratio) images to val, so the same files
land in the same split on every machine. Re-running over an existing complete set of the same parameters is a no-op.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image

DEFAULT_OUT = Path.home() / ".cache" / "yolobone" / "datasets" / "digits-cls"
LEVELS = 16  # load_digits pixel values run 0..16


def load_digits_arrays():
    """(images (N, 8, 8) float 0..16, labels (N,) int) from scikit-learn's bundled copy."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("make_digits_cls.py needs scikit-learn (pip install scikit-learn): the digits ship inside it")
    d = load_digits()
    return d.images, d.target.astype(int)


def split_indices(labels: np.ndarray, val_ratio: float, seed: int) -> np.ndarray:
    """Boolean mask of the val images: per class round(n * val_ratio), chosen by a (seed, class) permutation."""
    is_val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_val = int(round(len(idx) * val_ratio))
        is_val[idx[np.random.default_rng([seed, int(c)]).permutation(len(idx))[:n_val]]] = True
    return is_val


def digit_image(pixels: np.ndarray, imgsz: int) -> Image.Image:
    grey = Image.fromarray(np.round(pixels * (255 / LEVELS)).astype(np.uint8), mode="L")
    return grey.resize((imgsz, imgsz), Image.BILINEAR).convert("RGB")


def build(out: Path = DEFAULT_OUT, imgsz: int = 32, val_ratio: float = 0.2, seed: int = 0) -> Dict[str, int]:
    """Write the set under `out` (skipped when a complete one of the same parameters is there); split -> count."""
    params = {"source": "sklearn.datasets.load_digits", "imgsz": imgsz, "val_ratio": val_ratio, "seed": seed}
    stamp = out / "dataset.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("params") == params:
        return json.loads(stamp.read_text())["counts"]
    if not 0.0 < val_ratio < 1.0 or imgsz < 8:
        raise SystemExit(f"--val-ratio must be in (0, 1) and --imgsz >= 8, got {val_ratio} and {imgsz}")
    images, labels = load_digits_arrays()
    is_val = split_indices(labels, val_ratio, seed)
    counts = {"train": 0, "val": 0}
    for i, (pixels, c) in enumerate(zip(images, labels)):
        split = "val" if is_val[i] else "train"
        folder = out / split / str(c)
        folder.mkdir(parents=True, exist_ok=True)
        digit_image(pixels, imgsz).save(folder / f"{i:04d}.png")
        counts[split] += 1
    stamp.write_text(json.dumps({"params": params, "counts": counts}, indent=1))
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dataset root to write")
    p.add_argument("--imgsz", type=int, default=32, help="image side in pixels")
    p.add_argument("--val-ratio", type=float, default=0.2, help="held-out fraction per class")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    a = p.parse_args(argv)
    counts = build(a.out.expanduser(), a.imgsz, a.val_ratio, a.seed)
    print(f"{a.out}: 10 classes, {counts['train']} train and {counts['val']} val images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
