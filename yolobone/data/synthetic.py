"""Built-in synthetic datasets, generated locally and deterministically (no download).

Detection: coloured shapes (circle, square, triangle, star, cross, ring) from small to large on textured,
cluttered backgrounds, some overlapping, some images with no object. Colour is random per object, so only the
outline tells the classes apart. Classification: one shape per image, ImageFolder layout.

The same seed gives byte-identical files: each image draws from its own ``np.random.Generator`` seeded with
``(seed, split, index)``, and drawing uses only OpenCV rasterisation and JPEG encoding.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

GENERATOR_VERSION = 1  # bump whenever the drawn images change, so cached built-in sets regenerate
SHAPE_NAMES = ("circle", "square", "triangle", "star", "cross", "ring")
MARKER = ".yolobone_dataset.json"
JPEG_QUALITY = 92

# Built-in sets: sized so yolov5n at --imgsz 256 passes mAP50 0.5 within 100 epochs on 2 CPU cores (~1 h).
BUILTIN_DETECTION: Dict[str, dict] = {"shapes": dict(n_train=512, n_val=128, imgsz=256, seed=0)}
BUILTIN_CLASSIFICATION: Dict[str, dict] = {
    "shapes-cls": dict(n_train_per_class=120, n_val_per_class=30, imgsz=96, seed=0)}

Polygon = np.ndarray  # (k, 2) float pixel coordinates
_SPLIT_CODE = {"train": 0, "val": 1}


# ----------------------------------------------------------------------------------------------- geometry
def _regular(k: int, radius: float = 1.0, phase: float = 0.0) -> Polygon:
    t = phase + np.arange(k) * 2 * np.pi / k
    return np.stack([radius * np.cos(t), radius * np.sin(t)], 1)


def _unit_contours(cls: int) -> List[Polygon]:
    """Contours of class `cls` in unit coordinates (fits a radius-1 circle); holes are extra contours."""
    name = SHAPE_NAMES[cls]
    if name == "circle":
        return [_regular(64)]
    if name == "square":
        return [_regular(4, 1.0, np.pi / 4)]
    if name == "triangle":
        return [_regular(3, 1.0, -np.pi / 2)]
    if name == "star":
        outer, inner = _regular(5, 1.0, -np.pi / 2), _regular(5, 0.42, -np.pi / 2 + np.pi / 5)
        return [np.stack([outer, inner], 1).reshape(10, 2)]
    if name == "cross":
        a, b = 0.3, 1.0 / np.sqrt(1 + 0.3 ** 2)  # arm half-width, arm length so the tips touch the unit circle
        return [np.array([[a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b], [-a, a], [-b, a], [-b, -a],
                          [-a, -a], [-a, -b]])]
    if name == "ring":
        return [_regular(64), _regular(64, 0.58)]
    raise ValueError(f"unknown shape class {cls}")


def _place(contours: Sequence[Polygon], cx: float, cy: float, size: float, angle: float,
           aspect: float) -> List[Polygon]:
    """Scale unit contours to diameter `size` (stretched by `aspect`), rotate by `angle` rad, move to (cx, cy)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    stretch = np.array([np.sqrt(aspect), 1 / np.sqrt(aspect)]) * size / 2
    return [(p * stretch) @ rot.T + (cx, cy) for p in contours]


def _bbox(contours: Sequence[Polygon]) -> np.ndarray:
    pts = np.concatenate(contours, 0)
    return np.array([*pts.min(0), *pts.max(0)])


def _fill(canvas: np.ndarray, contours: Sequence[Polygon], value, antialias: bool = True) -> None:
    shift = 4  # sub-pixel vertex precision for smooth small shapes
    pts = [np.round(p * (1 << shift)).astype(np.int32) for p in contours]
    cv2.fillPoly(canvas, pts, value, lineType=cv2.LINE_AA if antialias else cv2.LINE_8, shift=shift)


# ----------------------------------------------------------------------------------------------- drawing
def _random_colour(rng: np.random.Generator, sat: Tuple[float, float] = (0.45, 1.0),
                   val: Tuple[float, float] = (0.35, 1.0)) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Gradient + smooth noise + optional stripes + grain, float32 BGR."""
    c0, c1 = _random_colour(rng, (0.0, 0.8), (0.15, 0.95)), _random_colour(rng, (0.0, 0.8), (0.15, 0.95))
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None]
    t = xs * np.float32(np.cos(theta)) + ys * np.float32(np.sin(theta))
    t = (t - t.min()) / (t.max() - t.min() + 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    cells = int(rng.integers(3, 9))
    blotches = rng.standard_normal((cells, cells, 3), dtype=np.float32)
    img += cv2.resize(blotches, (w, h), interpolation=cv2.INTER_CUBIC) * np.float32(rng.uniform(10, 35))
    if rng.random() < 0.35:
        phi, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
        stripes = np.sin((xs * np.float32(np.cos(phi)) + ys * np.float32(np.sin(phi))) * np.float32(2 * np.pi / period))
        img += stripes[..., None] * np.float32(rng.uniform(6, 22))
    img += rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(rng.uniform(2, 9))
    return img


def _draw_clutter(img: np.ndarray, rng: np.random.Generator, n_lines: int, n_ellipses: int, n_arcs: int) -> None:
    """Lines, thin ellipses and open arcs: edges and colours the detector must learn to ignore."""
    h, w = img.shape[:2]
    for _ in range(n_lines):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p1, p2, _random_colour(rng).tolist(), int(rng.integers(1, 4)), cv2.LINE_AA)
    for _ in range(n_ellipses):
        major = rng.uniform(0.04, 0.25) * max(h, w)
        minor = major / rng.uniform(3.0, 8.0)  # elongated: never mistaken for a circle
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.ellipse(img, centre, (int(major), max(1, int(minor))), float(rng.uniform(0, 180)), 0, 360,
                    _random_colour(rng).tolist(), -1, cv2.LINE_AA)
    for _ in range(n_arcs):
        r = rng.uniform(0.03, 0.2) * max(h, w)
        start = rng.uniform(0, 360)
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.ellipse(img, centre, (int(r), int(r)), 0, start, start + rng.uniform(60, 200),
                    _random_colour(rng).tolist(), int(rng.integers(1, 3)), cv2.LINE_AA)


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """An object colour far enough from the mean colour `under` it."""
    colour = _random_colour(rng)
    for _ in range(12):
        if np.abs(colour - under).sum() > 120:
            break
        colour = _random_colour(rng)
    return colour


def _paint_object(img: np.ndarray, rng: np.random.Generator, contours: Sequence[Polygon]) -> np.ndarray:
    """Alpha-composite a shaded, optionally outlined shape onto float image `img`; returns its binary mask."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = _bbox(contours)
    x1, y1 = max(int(np.floor(x1)) - 2, 0), max(int(np.floor(y1)) - 2, 0)
    x2, y2 = min(int(np.ceil(x2)) + 3, w), min(int(np.ceil(y2)) + 3, h)
    local = [p - (x1, y1) for p in contours]
    alpha = np.zeros((y2 - y1, x2 - x1), np.uint8)
    _fill(alpha, local, 255)
    a = alpha.astype(np.float32)[..., None] / 255
    roi = img[y1:y2, x1:x2]
    colour = _contrasting_colour(rng, roi[alpha > 127].mean(0) if (alpha > 127).any() else roi.mean((0, 1)))
    yy, xx = np.mgrid[0:y2 - y1, 0:x2 - x1].astype(np.float32)
    phi = rng.uniform(0, 2 * np.pi)
    ramp = (xx * np.cos(phi) + yy * np.sin(phi)) / max(x2 - x1, y2 - y1, 1)
    shade = 1 + rng.uniform(0.0, 0.35) * (ramp - ramp.mean())  # soft lighting gradient across the object
    layer = colour * shade[..., None]
    if rng.random() < 0.4:  # outline in a darker or lighter tone
        edge = np.zeros_like(alpha)
        pts = [np.round(p * 16).astype(np.int32) for p in local]
        cv2.polylines(edge, pts, True, 255, int(rng.integers(1, 3)), cv2.LINE_AA, shift=4)
        tone = colour * rng.choice([0.45, 1.6])
        e = (edge.astype(np.float32)[..., None] / 255) * a
        layer = layer * (1 - e) + tone * e
    roi[:] = roi * (1 - a) + layer * a
    mask = np.zeros((h, w), bool)
    mask[y1:y2, x1:x2] = alpha > 127
    return mask


def _finish(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _image_size(rng: np.random.Generator, imgsz: int) -> Tuple[int, int]:
    """(h, w): mostly square, some 4:3 landscape and 3:4 portrait, long side = imgsz, multiples of 8."""
    r = rng.random()
    short = int(round(imgsz * 0.75 / 8) * 8)
    if r < 0.6:
        return imgsz, imgsz
    return (short, imgsz) if r < 0.8 else (imgsz, short)


def _detection_image(rng: np.random.Generator, imgsz: int, max_objects: int, p_background: float,
                     min_size: float, max_size: float, p_overlap: float, min_visible: float, clutter: float
                     ) -> Tuple[np.ndarray, List[Tuple[int, np.ndarray]]]:
    """One image and its (cls, xyxy pixel box) objects."""
    h, w = _image_size(rng, imgsz)
    img = _background(rng, h, w)
    n_lines, n_ellipses, n_arcs = rng.integers(2, 9), rng.integers(0, 4), rng.integers(0, 4)
    _draw_clutter(img, rng, round(n_lines * clutter), round(n_ellipses * clutter), round(n_arcs * clutter))
    n_target = 0 if rng.random() < p_background else int(rng.integers(1, max_objects + 1))
    objects: List[Tuple[int, np.ndarray]] = []
    full_area: List[int] = []
    visible: List[np.ndarray] = []
    for _ in range(n_target):
        for _attempt in range(25):
            cls = int(rng.integers(len(SHAPE_NAMES)))
            size = float(np.exp(rng.uniform(np.log(min_size), np.log(max_size)))) * imgsz
            angle, aspect = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 1.25)
            if objects and rng.random() < p_overlap:  # lean on an existing object so they overlap
                j = int(rng.integers(len(objects)))
                bx = objects[j][1]
                r_j = max(bx[2] - bx[0], bx[3] - bx[1]) / 2
                d, t = (r_j + size / 2) * rng.uniform(0.45, 0.95), rng.uniform(0, 2 * np.pi)
                cx, cy = (bx[0] + bx[2]) / 2 + d * np.cos(t), (bx[1] + bx[3]) / 2 + d * np.sin(t)
            else:
                cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            contours = _place(_unit_contours(cls), cx, cy, size, angle, aspect)
            box = _bbox(contours)
            if box[0] < 1 or box[1] < 1 or box[2] > w - 1 or box[3] > h - 1:
                continue
            mask = np.zeros((h, w), np.uint8)
            _fill(mask, contours, 1, antialias=False)
            m = mask.astype(bool)
            if all((v & ~m).sum() >= min_visible * a for v, a in zip(visible, full_area)):
                break
        else:
            continue  # no room for this object
        mask = _paint_object(img, rng, contours)
        visible = [v & ~mask for v in visible] + [mask]
        full_area.append(int(mask.sum()))
        objects.append((cls, box))
    _draw_clutter(img, rng, round(rng.integers(0, 3) * clutter), 0, 0)  # a few lines crossing over objects too
    return _finish(img), objects


def _write_jpg(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"JPEG encoding failed for {path}")
    path.write_bytes(buf.tobytes())


# ----------------------------------------------------------------------------------------------- public API
def make_detection_dataset(root: Union[str, os.PathLike], n_train: int = 512, n_val: int = 128, imgsz: int = 256,
                           seed: int = 0, max_objects: int = 8, p_background: float = 0.08, min_size: float = 0.06,
                           max_size: float = 0.45, p_overlap: float = 0.3, min_visible: float = 0.55,
                           clutter: float = 1.0, verbose: bool = True) -> Path:
    """Write images/{train,val}/*.jpg, labels/{train,val}/*.txt and data.yaml under root; returns data.yaml.

    Args:
        imgsz: long side of every image (some are 4:3 or 3:4).
        max_objects: objects per image are uniform in 1..max_objects (0 with probability p_background).
        min_size, max_size: object diameter range as fractions of imgsz (log-uniform).
        p_overlap: chance an object is placed against an earlier one; earlier objects keep at least
            `min_visible` of their area visible.
        clutter: scales the number of distractor lines, thin ellipses and arcs (0 = clean backgrounds).
    """
    if n_train < 1 or n_val < 1 or imgsz < 32:
        raise ValueError(f"make_detection_dataset: need n_train >= 1, n_val >= 1, imgsz >= 32; "
                         f"got {n_train}, {n_val}, {imgsz}")
    if not 0 < min_size <= max_size < 1:
        raise ValueError(f"make_detection_dataset: need 0 < min_size <= max_size < 1, got {min_size}, {max_size}")
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        img_dir, lbl_dir = root / "images" / split, root / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        for i in tqdm(range(n), desc=f"Generating shapes {split}", disable=not verbose, leave=False):
            rng = np.random.default_rng([seed, _SPLIT_CODE[split], i])
            img, objects = _detection_image(rng, imgsz, max_objects, p_background, min_size, max_size,
                                            p_overlap, min_visible, clutter)
            h, w = img.shape[:2]
            _write_jpg(img_dir / f"{i:06d}.jpg", img)
            rows = [f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} "
                    f"{(b[3] - b[1]) / h:.6f}" for c, b in objects]
            (lbl_dir / f"{i:06d}.txt").write_text("".join(r + "\n" for r in rows))
    yaml_path = root / "data.yaml"
    yaml_path.write_text(
        f"# Synthetic shapes written by yolobone/data/synthetic.py (generator version {GENERATOR_VERSION}, seed {seed})\n"
        "path: .  # relative to this file's folder\n"
        "train: images/train\n"
        "val: images/val\n"
        f"nc: {len(SHAPE_NAMES)}\n"
        f"names: [{', '.join(SHAPE_NAMES)}]\n")
    return yaml_path


def _classification_image(rng: np.random.Generator, cls: int, imgsz: int) -> np.ndarray:
    img = _background(rng, imgsz, imgsz)
    _draw_clutter(img, rng, int(rng.integers(1, 5)), int(rng.integers(0, 2)), int(rng.integers(0, 2)))
    size = rng.uniform(0.35, 0.8) * imgsz
    jitter = (imgsz - size) / 2 * 0.8
    cx, cy = imgsz / 2 + rng.uniform(-jitter, jitter), imgsz / 2 + rng.uniform(-jitter, jitter)
    contours = _place(_unit_contours(cls), cx, cy, size, rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 1.25))
    _paint_object(img, rng, contours)
    _draw_clutter(img, rng, int(rng.integers(0, 2)), 0, 0)
    return _finish(img)


def make_classification_dataset(root: Union[str, os.PathLike], n_train_per_class: int = 120,
                                n_val_per_class: int = 30, imgsz: int = 96, seed: int = 0,
                                verbose: bool = True) -> Path:
    """Write root/{train,val}/<class>/*.jpg (ImageFolder layout, one shape per image); returns root."""
    if n_train_per_class < 1 or n_val_per_class < 1 or imgsz < 16:
        raise ValueError(f"make_classification_dataset: need counts >= 1 and imgsz >= 16, got "
                         f"{n_train_per_class}, {n_val_per_class}, {imgsz}")
    root = Path(root)
    for split, n in (("train", n_train_per_class), ("val", n_val_per_class)):
        jobs = [(c, i) for c in range(len(SHAPE_NAMES)) for i in range(n)]
        for c, i in tqdm(jobs, desc=f"Generating shapes-cls {split}", disable=not verbose, leave=False):
            folder = root / split / SHAPE_NAMES[c]
            folder.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([seed, 2 + _SPLIT_CODE[split], c, i])
            _write_jpg(folder / f"{i:05d}.jpg", _classification_image(rng, c, imgsz))
    return root


def datasets_dir() -> Path:
    """Cache folder for built-in datasets: $YOLOBONE_DATASETS or ~/.cache/yolobone/datasets."""
    env = os.environ.get("YOLOBONE_DATASETS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "yolobone" / "datasets"


def _stamp_matches(folder: Path, stamp: dict) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()) == stamp
    except (OSError, ValueError):
        return False


def _ensure(name: str, stamp: dict, make: Callable[[Path], Path], cache_dir: Optional[Path]) -> Path:
    """Generate into a temp folder beside the target, then rename; a marker with `stamp` says it is complete."""
    final = (cache_dir if cache_dir is not None else datasets_dir()) / name
    if _stamp_matches(final, stamp):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=final.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the finished dataset should be readable like any folder
    try:
        make(tmp)
        (tmp / MARKER).write_text(json.dumps(stamp, sort_keys=True))
        if _stamp_matches(final, stamp):  # another process finished first
            shutil.rmtree(tmp)
            return final
        if final.exists():  # stale: older generator version or an interrupted copy
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=final.parent))
            try:
                os.replace(final, old / name)
            except FileNotFoundError:  # another process moved it first
                pass
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _stamp_matches(final, stamp):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def ensure_builtin_dataset(name: str = "shapes", cache_dir: Optional[Union[str, os.PathLike]] = None,
                           verbose: bool = True) -> Path:
    """Path of the built-in detection set's data.yaml, generating it into the cache on first use."""
    if name not in BUILTIN_DETECTION:
        raise ValueError(f"unknown built-in detection dataset {name!r}; known: {', '.join(BUILTIN_DETECTION)}")
    params = BUILTIN_DETECTION[name]
    stamp = {"kind": "detect", "generator_version": GENERATOR_VERSION, **params}
    folder = _ensure(name, stamp, lambda p: make_detection_dataset(p, verbose=verbose, **params),
                     Path(cache_dir) if cache_dir is not None else None)
    return folder / "data.yaml"


def ensure_builtin_classification_dataset(name: str = "shapes-cls",
                                          cache_dir: Optional[Union[str, os.PathLike]] = None,
                                          verbose: bool = True) -> Path:
    """Root of the built-in ImageFolder classification set (train/, val/), generating it on first use."""
    if name not in BUILTIN_CLASSIFICATION:
        raise ValueError(f"unknown built-in classification dataset {name!r}; "
                         f"known: {', '.join(BUILTIN_CLASSIFICATION)}")
    params = BUILTIN_CLASSIFICATION[name]
    stamp = {"kind": "classify", "generator_version": GENERATOR_VERSION, **params}
    return _ensure(name, stamp, lambda p: make_classification_dataset(p, verbose=verbose, **params),
                   Path(cache_dir) if cache_dir is not None else None)
