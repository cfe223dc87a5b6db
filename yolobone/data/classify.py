"""Classification data: ImageFolder discovery with corrupt-image checks, ratio splits, transforms and loaders.

Accepted `--data` values:
- '' or a built-in name ('shapes-cls'): the built-in synthetic set, generated into the cache on first use;
- a folder with `train/<class>/*` and `val/<class>/*` (or `test/<class>/*`): used as is;
- a folder with only `train/<class>/*`, or with the `<class>/*` folders directly: split by `val_ratio`, per class,
  with a fixed seed (the same files go to val on every run);
- a YAML with `builtin: shapes-cls` or `path: <folder>` (utils.datasets.check_cls_dataset).
Class ids follow the sorted class-folder names of the training split.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from yolobone.data.datasets import EpochLoader, build_loader
from yolobone.utils.errors import YoloboneError
from yolobone.utils.logging import LOGGER
from yolobone.data.media import IMG_FORMATS, is_image

PathLike = Union[str, os.PathLike]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_SIZE = 2  # pixels; smaller images cannot be cropped and resized meaningfully
NUM_THREADS = min(8, max(1, os.cpu_count() or 1))
Sample = Tuple[str, int]  # (image path, class index)


class ClassifyDataError(YoloboneError, ValueError):
    """A classification dataset that cannot be used (missing folders, no images, class mismatch)."""


@dataclass
class ClassifyData:
    """A resolved dataset: class names and (path, class) samples per split, plus what was skipped and why."""

    root: Path
    names: List[str]
    train: List[Sample]
    val: List[Sample]
    corrupt: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason) of every skipped file
    split_ratio: Optional[float] = None  # set when val was split off the training folder

    @property
    def nc(self) -> int:
        return len(self.names)


@dataclass
class ClassifyAugment:
    """Training augmentation (defaults as YOLOv5's classification training)."""

    scale: Tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop area range
    ratio: Tuple[float, float] = (3 / 4, 4 / 3)  # RandomResizedCrop aspect-ratio range
    hflip: float = 0.5  # horizontal flip probability
    vflip: float = 0.0  # vertical flip probability
    jitter: float = 0.4  # colour jitter strength for brightness, contrast and saturation (0 disables)


# ------------------------------------------------------------------------------------------------ discovery
def check_image(path: PathLike) -> Optional[str]:
    """None when the file decodes to an image of at least MIN_SIZE pixels a side, else the reason it cannot."""
    try:
        with Image.open(path) as im:
            im.verify()  # structure check; catches most truncated or garbage files early
        with Image.open(path) as im:
            im.load()  # full decode: a truncated JPEG body passes verify() but fails here
            w, h = im.size
    except Exception as e:  # PIL raises many exception types for broken files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"corrupt image ({type(e).__name__}{': ' + msg[:120] if msg else ''})"
    if w < MIN_SIZE or h < MIN_SIZE:
        return f"image size {w}x{h} is below {MIN_SIZE} pixels"
    return None


def class_folders(folder: Path) -> List[str]:
    """Sorted names of the sub-folders of `folder` (hidden ones ignored)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_image_folder(folder: PathLike, names: Optional[Sequence[str]] = None, prefix: str = "",
                      verbose: bool = True) -> Tuple[List[Sample], List[Tuple[str, str]]]:
    """(path, class) samples of folder/<class>/** that decode, and (path, reason) for those that do not.

    `names` fixes the class order (a class folder missing here simply has no samples); a class folder not in
    `names` raises ClassifyDataError.
    """
    folder = Path(folder)
    found = class_folders(folder)
    names = list(found if names is None else names)
    extra = [c for c in found if c not in names]
    if extra:
        raise ClassifyDataError(f"{folder}: class folder(s) {extra} are not among the training classes {names}")
    files: List[Sample] = []
    for c, name in enumerate(names):
        d = folder / name
        if d.is_dir():
            files += [(str(p), c) for p in sorted(d.rglob("*")) if p.is_file() and is_image(p)]
    with ThreadPoolExecutor(NUM_THREADS) as pool:
        reasons = list(tqdm(pool.map(check_image, [f for f, _ in files]), total=len(files),
                            desc=f"{prefix}Checking {folder}", disable=not verbose or not files, leave=False))
    good = [s for s, r in zip(files, reasons) if r is None]
    bad = [(f, r) for (f, _), r in zip(files, reasons) if r is not None]
    for f, r in bad:
        LOGGER.warning(f"{prefix}WARNING: {f}: {r}, skipped")
    return good, bad


def split_by_ratio(samples: Sequence[Sample], val_ratio: float, seed: int = 0) -> Tuple[List[Sample], List[Sample]]:
    """Per class, round(n * val_ratio) samples (at least 1 when the class has 2+) go to val; the rest train."""
    if not 0.0 < val_ratio < 1.0:
        raise ClassifyDataError(f"--val-ratio must be in (0, 1), got {val_ratio}")
    train, val = [], []
    for c in sorted({c for _, c in samples}):
        items = sorted(s for s in samples if s[1] == c)
        order = np.random.default_rng([seed, c]).permutation(len(items))
        n_val = min(max(round(len(items) * val_ratio), 1 if len(items) > 1 else 0), len(items) - 1)
        val += [items[i] for i in sorted(order[:n_val])]
        train += [items[i] for i in sorted(order[n_val:])]
    return train, val


def _has_images(folder: Path) -> bool:
    return any(p.is_file() and is_image(p) for p in folder.rglob("*"))


def _data_root(spec: str, verbose: bool) -> Path:
    """The ImageFolder root that a --data value names (a built-in set is generated on first use)."""
    from yolobone.data.datasets import DatasetError, check_cls_dataset
    from yolobone.data.synthetic import BUILTIN_CLASSIFICATION, ensure_builtin_classification_dataset

    if not spec:
        root = ensure_builtin_classification_dataset(verbose=verbose)
    elif spec in BUILTIN_CLASSIFICATION and not Path(spec).exists():
        root = ensure_builtin_classification_dataset(spec, verbose=verbose)
    elif Path(spec).suffix in (".yaml", ".yml"):
        try:
            root = Path(check_cls_dataset(spec)["path"])
        except DatasetError as e:
            raise ClassifyDataError(str(e)) from None
    else:
        root = Path(spec).expanduser()
    if not root.is_dir():
        raise ClassifyDataError(f"--data {spec}: folder not found (expected an ImageFolder root with train/ and "
                                f"val/ class folders, a folder of class folders, or a built-in name "
                                f"({', '.join(BUILTIN_CLASSIFICATION)}))")
    return root


def resolve_classify_data(data: Optional[PathLike] = None, val_ratio: float = 0.2, seed: int = 0,
                          verbose: bool = True, check_train: bool = True) -> ClassifyData:
    """Find the classes and the checked train/val samples of `data` (see the module docstring).

    check_train=False (validation only) leaves `train` empty when a val/ folder exists instead of reading it.
    """
    root = _data_root("" if data is None else str(data).strip(), verbose)
    prefix = "train: "
    train_dir = root / "train" if (root / "train").is_dir() else root
    val_dir = next((root / s for s in ("val", "test") if (root / s).is_dir()), None) if train_dir != root else None
    names = class_folders(train_dir)
    names = [n for n in names if _has_images(train_dir / n)] if train_dir == root else names
    if not names:
        raise ClassifyDataError(f"{train_dir}: no class folders found (expected {train_dir}/<class>/*.jpg; "
                                f"formats: {', '.join(IMG_FORMATS)})")
    if train_dir == root and len(names) != len(class_folders(root)):
        skipped = sorted(set(class_folders(root)) - set(names))
        LOGGER.warning(f"{prefix}WARNING: {root}: folder(s) {skipped} hold no images and are not classes")
    if not check_train and val_dir is not None:
        val, corrupt = scan_image_folder(val_dir, names, "val: ", verbose)
        if not val:
            raise ClassifyDataError(f"{val_dir}: no usable validation images")
        return ClassifyData(root=root, names=names, train=[], val=val, corrupt=corrupt)
    train, corrupt = scan_image_folder(train_dir, names, prefix, verbose)
    ratio = None
    if val_dir is None:
        train, val = split_by_ratio(train, val_ratio, seed)
        ratio = val_ratio
        LOGGER.info(f"{prefix}no val/ folder in {root}: split {train_dir} per class, {1 - val_ratio:.0%} train / "
                    f"{val_ratio:.0%} val (seed {seed})")
    else:
        val, bad = scan_image_folder(val_dir, names, "val: ", verbose)
        corrupt += bad
    if not train:
        raise ClassifyDataError(f"{train_dir}: no usable training images ({len(corrupt)} corrupt)")
    if not val:
        raise ClassifyDataError(f"{val_dir or train_dir}: no usable validation images")
    empty = [names[c] for c in range(len(names)) if not any(s[1] == c for s in train)]
    if empty:
        LOGGER.warning(f"{prefix}WARNING: class(es) {empty} have no usable training images")
    if verbose:
        LOGGER.info(f"{prefix}{root}: {len(names)} classes, {len(train)} train and {len(val)} val images"
                    + (f", {len(corrupt)} corrupt skipped" if corrupt else ""))
    return ClassifyData(root=root, names=names, train=train, val=val, corrupt=corrupt, split_ratio=ratio)


# ------------------------------------------------------------------------------------------------ transforms
MIN_CROP_SIDE = 64  # pixels: the random resized crop's smallest side at the default scale (see default_crop_scale)
JITTER_P = 0.5  # colour jitter is applied to half of the images, as YOLOv5's albumentations ColorJitter default


def default_crop_scale(imgsz: int) -> float:
    """Smallest crop area for `imgsz`: (MIN_CROP_SIDE / imgsz)^2 within [0.08, 1].

    YOLOv5's 0.08 at ImageNet sizes (>= 226 px, where it keeps a 64 px crop), larger on small images, where an 8 %
    crop keeps too few pixels to show the object (at 32 px: 9 x 9); 1.0 (no crop) at 64 px and below.
    """
    return float(min(1.0, max(0.08, (MIN_CROP_SIDE / imgsz) ** 2)))


def crop_box(h: int, w: int, scale: Tuple[float, float], ratio: Tuple[float, float],
             rng: np.random.Generator) -> Tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop with area fraction in `scale` and aspect ratio in `ratio`.

    Ten draws as torchvision's RandomResizedCrop; when none fits, the largest centred crop within `ratio`.
    """
    area, log_ratio = h * w, (np.log(ratio[0]), np.log(ratio[1]))
    if scale[0] < 1.0:
        for _ in range(10):
            target = area * rng.uniform(*scale)
            aspect = float(np.exp(rng.uniform(*log_ratio)))
            cw, ch = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    aspect = w / h
    if aspect < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif aspect > max(ratio):
        cw, ch = int(round(h * max(ratio))), h
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def color_jitter(im: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation, each scaled by a factor in [1 - s, 1 + s], in a random order.

    Works on uint8 and rounds to uint8 after every step (lookup tables; saturation blends with OpenCV's saturating
    addWeighted), as YOLOv5's albumentations ColorJitter does: on digits at a 0.08 crop, jittering in float32 instead
    lost top-1 against YOLOv5 (docs/benchmarks.md, Classification)."""
    lo, hi = max(0.0, 1.0 - strength), 1.0 + strength
    im = np.ascontiguousarray(im, dtype=np.uint8)
    levels = np.arange(256, dtype=np.float64)
    for op in rng.permutation(3):
        f = float(rng.uniform(lo, hi))
        if op == 2:  # saturation: blend with each pixel's grey level
            grey = cv2.cvtColor(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
            im = cv2.addWeighted(im, f, grey, 1 - f, 0.0)
            continue
        lut = levels * f  # brightness
        if op == 1:  # contrast: blend with the mean grey level
            lut += (1 - f) * float(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).mean())
        im = cv2.LUT(im, np.clip(lut, 0, 255).astype(np.uint8))
    return im


class Normalize:
    """uint8/float HWC RGB array (0-255) -> float tensor (3, H, W) normalised with the ImageNet mean and std."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.scale = (1.0 / (255.0 * np.asarray(std, dtype=np.float32))).astype(np.float32)
        self.offset = (np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)).astype(np.float32)

    def __call__(self, im: np.ndarray) -> torch.Tensor:
        x = im.astype(np.float32, copy=False) * self.scale - self.offset
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class TrainTransform:
    """Random resized crop -> flips -> colour jitter (with probability JITTER_P) -> normalisation.

    Works on HWC uint8 RGB arrays with OpenCV (several times faster than torchvision on small images) and draws
    every random number from the generator it is given, so a sample's augmentation depends only on that generator.
    """

    def __init__(self, imgsz: int, aug: Optional[ClassifyAugment] = None):
        self.size = int(imgsz)
        self.aug = aug or ClassifyAugment(scale=(default_crop_scale(imgsz), 1.0))
        self.normalize = Normalize()

    def __call__(self, im: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        a = self.aug
        top, left, ch, cw = crop_box(im.shape[0], im.shape[1], a.scale, a.ratio, rng)
        im = resize(im[top:top + ch, left:left + cw], self.size)
        if a.hflip > 0 and rng.random() < a.hflip:
            im = im[:, ::-1]
        if a.vflip > 0 and rng.random() < a.vflip:
            im = im[::-1]
        if a.jitter > 0 and rng.random() < JITTER_P:
            im = color_jitter(im, a.jitter, rng)
        return self.normalize(im)


def resize(im: np.ndarray, size: int) -> np.ndarray:
    """Square resize: area averaging when shrinking (no aliasing), bilinear when enlarging."""
    shrink = im.shape[0] > size or im.shape[1] > size
    return cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class EvalTransform:
    """The largest centred square resized to imgsz, normalised (YOLOv5's classification eval transform).

    Takes a PIL image or an HWC uint8 RGB array; returns a float tensor (3, imgsz, imgsz).
    """

    def __init__(self, imgsz: int):
        self.size = int(imgsz)
        self.normalize = Normalize()

    def __call__(self, im: Union[Image.Image, np.ndarray]) -> torch.Tensor:
        im = np.asarray(im.convert("RGB")) if isinstance(im, Image.Image) else im
        h, w = im.shape[:2]
        m = min(h, w)
        top, left = (h - m) // 2, (w - m) // 2
        return self.normalize(resize(im[top:top + m, left:left + m], self.size))


def eval_transform(imgsz: int) -> EvalTransform:
    """PIL RGB image (or HWC uint8 RGB array) -> normalised float tensor (3, imgsz, imgsz)."""
    return EvalTransform(imgsz)


def load_rgb(path: PathLike) -> np.ndarray:
    """HWC uint8 RGB array of an image file (OpenCV, several times faster; PIL for formats it cannot read)."""
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is not None:
        return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
    with Image.open(path) as pil:
        return np.asarray(pil.convert("RGB"))


class ClassifyDataset(Dataset):
    """(image tensor (3, imgsz, imgsz) normalised, class index) per sample.

    Training augmentation draws from a numpy generator seeded by (seed, epoch, index): the same epoch gives the same
    images whatever the worker count, and a resumed run continues exactly.
    """

    def __init__(self, samples: Sequence[Sample], imgsz: int, augment: bool = False,
                 aug: Optional[ClassifyAugment] = None, seed: int = 0):
        self.samples = list(samples)
        self.augment = augment
        self.train_transform = TrainTransform(imgsz, aug) if augment else None
        self.eval_transform = EvalTransform(imgsz)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        path, c = self.samples[i]
        im = load_rgb(path)
        if self.train_transform is None:
            return self.eval_transform(im), c
        return self.train_transform(im, np.random.default_rng([self.seed, self.epoch, i])), c


def create_classify_loader(samples: Sequence[Sample], imgsz: int, batch_size: int, augment: bool = False,
                           shuffle: bool = False, workers: int = 0, seed: int = 0,
                           aug: Optional[ClassifyAugment] = None, rank: int = -1) -> EpochLoader:
    """Loader of (images (B, 3, imgsz, imgsz), labels (B,)) batches; shuffled by (seed, epoch) when asked."""
    dataset = ClassifyDataset(samples, imgsz, augment=augment, aug=aug, seed=seed)
    batch_size = min(batch_size, max(len(dataset), 1))
    # a last training batch of one image would make BatchNorm fail on 1x1 maps: drop it (a different one each epoch)
    drop_last = augment and len(dataset) > 1 and len(dataset) % batch_size == 1
    return build_loader(dataset, batch_size, shuffle=shuffle, workers=min(workers, len(dataset)), seed=seed,
                        rank=rank, drop_last=drop_last)
