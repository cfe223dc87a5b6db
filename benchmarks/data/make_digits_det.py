"""Write a small real-image detection set: scikit-learn's handwritten digits pasted onto crops of real photos.

    python benchmarks/data/make_digits_det.py                      # -> ~/.cache/yolobone/datasets/digits-det
    python benchmarks/data/make_digits_det.py --out /tmp/dd --n-train 400 --n-val 100 --imgsz 160

Everything ships inside scikit-learn, so nothing is downloaded: the digits are `sklearn.datasets.load_digits`
(1,797 real scanned handwritten digits, 8x8, 10 classes) and the backgrounds are random crops of the two photos of
`sklearn.datasets.load_sample_images` (china.jpg, flower.jpg), resized, flipped and colour-jittered. Each image holds
0-6 digits, each upscaled to 10-45 % of the image side, drawn in a random colour with its grey level as alpha; the
label is the box of the digit's visible ink. The split is held out twice: val images use digits that no train image
uses (a fixed per-class 20 % of the digits) and the right 30 % of each photo only (train crops come from the left
70 %). Item i of a split is a pure function of (seed, split, i); re-running over a complete set is a no-op.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

DEFAULT_OUT = Path.home() / ".cache" / "yolobone" / "datasets" / "digits-det"
NAMES = [str(d) for d in range(10)]
SPLIT_CODE = {"train": 0, "val": 1}
PHOTO_SPLIT = 0.7  # train crops from x < 0.7 * width of each photo, val crops from the rest


def load_sources() -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
    """(digits (N, 8, 8) float 0..1, labels (N,), photos as BGR uint8) from scikit-learn's bundled data."""
    try:
        from sklearn.datasets import load_digits, load_sample_images
    except ImportError:
        sys.exit("make_digits_det.py needs scikit-learn (pip install scikit-learn): the digits and photos ship in it")
    d = load_digits()
    photos = [cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR) for im in load_sample_images().images]
    return d.images / 16.0, d.target.astype(int), photos


def held_out_digits(labels: np.ndarray, val_ratio: float, seed: int) -> np.ndarray:
    """Boolean mask of the digits reserved for val: per class round(n * val_ratio) by a (seed, class) permutation."""
    is_val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        is_val[idx[np.random.default_rng([seed, 7, int(c)]).permutation(len(idx))[:round(len(idx) * val_ratio)]]] = True
    return is_val


def background(rng: np.random.Generator, photos: Sequence[np.ndarray], split: str, h: int, w: int) -> np.ndarray:
    """A random crop (its own aspect, 25-60 % of the photo height) of one photo's split region, jittered."""
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    x_lo, x_hi = (0, int(pw * PHOTO_SPLIT)) if split == "train" else (int(pw * PHOTO_SPLIT), pw)
    ch = int(ph * rng.uniform(0.25, 0.6))
    cw = min(int(ch * w / h), x_hi - x_lo)
    ch = int(cw * h / w)
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(x_lo, x_hi - cw + 1))
    img = cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    gain = rng.uniform(0.7, 1.3, 3)
    return np.clip(img.astype(np.float32) * gain, 0, 255)


def paste_digit(img: np.ndarray, rng: np.random.Generator, pixels: np.ndarray, size: int
                ) -> Optional[Tuple[float, float, float, float]]:
    """Alpha-blend one digit (size x size px) at a random spot; returns its ink box (x1, y1, x2, y2) or None."""
    h, w = img.shape[:2]
    alpha = cv2.resize(pixels.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    ys, xs = np.nonzero(alpha > 0.25)
    if len(xs) == 0:
        return None
    x0, y0 = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
    region = img[y0:y0 + size, x0:x0 + size]
    under = region.mean((0, 1))
    colour = rng.uniform(0, 255, 3)
    if np.abs(colour - under).sum() < 180:  # keep the digit visible against what lies beneath it
        colour = np.where(under > 127, rng.uniform(0, 60, 3), rng.uniform(195, 255, 3))
    a = alpha[..., None] * rng.uniform(0.75, 1.0)
    img[y0:y0 + size, x0:x0 + size] = region * (1 - a) + colour * a
    return x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1


def iou_any(box: Tuple[float, ...], boxes: List[Tuple[float, ...]]) -> float:
    if not boxes:
        return 0.0
    b = np.array(boxes)
    iw = np.clip(np.minimum(b[:, 2], box[2]) - np.maximum(b[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(b[:, 3], box[3]) - np.maximum(b[:, 1], box[1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    return float((inter / (area + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)).max())


def make_image(rng: np.random.Generator, split: str, imgsz: int, digits: np.ndarray, labels: np.ndarray,
               pool: np.ndarray, photos: Sequence[np.ndarray], max_objects: int
               ) -> Tuple[np.ndarray, List[Tuple[int, Tuple[float, ...]]]]:
    """One image (long side imgsz, 1:1, 4:3 or 3:4) and its (class, xyxy pixel box) objects."""
    aspect = [(1, 1), (3, 4), (4, 3)][int(rng.integers(3))]
    h, w = (imgsz * aspect[0] // max(aspect), imgsz * aspect[1] // max(aspect))
    img = background(rng, photos, split, h, w)
    objects: List[Tuple[int, Tuple[float, ...]]] = []
    n = 0 if rng.random() < 0.05 else int(rng.integers(1, max_objects + 1))
    for _ in range(n):
        for _try in range(10):  # keep digits mostly apart: a hidden digit cannot be labelled honestly
            size = int(round(min(h, w) * np.exp(rng.uniform(np.log(0.10), np.log(0.45)))))
            k = int(pool[rng.integers(len(pool))])
            trial = img.copy()
            box = paste_digit(trial, rng, digits[k], max(size, 8))
            if box is not None and iou_any(box, [b for _, b in objects]) < 0.1:
                img = trial
                objects.append((int(labels[k]), box))
                break
    return np.clip(img, 0, 255).astype(np.uint8), objects


def build(out: Path = DEFAULT_OUT, n_train: int = 400, n_val: int = 100, imgsz: int = 160, seed: int = 0,
          max_objects: int = 6, classes: Optional[Sequence[int]] = None, photo: Optional[int] = None
          ) -> Dict[str, int]:
    """Write images/{train,val}, labels/{train,val} and data.yaml under `out`; returns split -> object count.
    classes: only these digits (labelled 0.. in the order given); photo: backgrounds from that photo only (0 china,
    1 flower), so two sets can share neither classes nor backgrounds (benchmarks/transfer.py)."""
    params = {"source": "sklearn load_digits + load_sample_images", "n_train": n_train, "n_val": n_val,
              "imgsz": imgsz, "seed": seed, "max_objects": max_objects, "version": 2}
    if classes is not None:
        params["classes"] = [int(c) for c in classes]
    if photo is not None:
        params["photo"] = int(photo)
    stamp = out / "dataset.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("params") == params:
        return json.loads(stamp.read_text())["objects"]
    if n_train < 1 or n_val < 1 or imgsz < 64 or max_objects < 1:
        raise SystemExit(f"need --n-train/--n-val >= 1, --imgsz >= 64, --max-objects >= 1; got {n_train}, "
                         f"{n_val}, {imgsz}, {max_objects}")
    digits, labels, photos = load_sources()
    is_val = held_out_digits(labels, 0.2, seed)
    names = NAMES
    if classes is not None:
        names = [NAMES[c] for c in classes]
        labels = np.array([list(classes).index(c) if c in classes else -1 for c in labels])
    if photo is not None:
        photos = [photos[photo]]
    counts = {}
    for split, n in (("train", n_train), ("val", n_val)):
        pool = np.flatnonzero((is_val if split == "val" else ~is_val) & (labels >= 0))
        img_dir, lbl_dir = out / "images" / split, out / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        counts[split] = 0
        for i in range(n):
            rng = np.random.default_rng([seed, SPLIT_CODE[split], i])
            img, objects = make_image(rng, split, imgsz, digits, labels, pool, photos, max_objects)
            h, w = img.shape[:2]
            cv2.imwrite(str(img_dir / f"{i:05d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            rows = [f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} "
                    f"{(b[3] - b[1]) / h:.6f}\n" for c, b in objects]
            (lbl_dir / f"{i:05d}.txt").write_text("".join(rows))
            counts[split] += len(objects)
    (out / "data.yaml").write_text(f"# Digits on photos, written by benchmarks/data/make_digits_det.py\n"
                                   f"path: {out.resolve()}\ntrain: images/train\nval: images/val\n"
                                   f"nc: {len(names)}\nnames: [{', '.join(repr(n) for n in names)}]\n")
    stamp.write_text(json.dumps({"params": params, "objects": counts}, indent=1))
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dataset root to write")
    p.add_argument("--n-train", type=int, default=400, help="train images")
    p.add_argument("--n-val", type=int, default=100, help="val images")
    p.add_argument("--imgsz", type=int, default=160, help="long side of every image in pixels")
    p.add_argument("--max-objects", type=int, default=6, help="digits per image are 1..max (5 %% have none)")
    p.add_argument("--seed", type=int, default=0, help="generation seed")
    a = p.parse_args(argv)
    out = a.out.expanduser()
    counts = build(out, a.n_train, a.n_val, a.imgsz, a.seed, a.max_objects)
    print(f"{out / 'data.yaml'}: 10 classes, {a.n_train} train images ({counts['train']} digits), "
          f"{a.n_val} val images ({counts['val']} digits)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
