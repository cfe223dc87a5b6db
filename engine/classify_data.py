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

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2 as T
from tqdm import tqdm

from utils.datasets import SeededShuffleSampler
from utils.logging import LOGGER
from utils.media import IMG_FORMATS, is_image

PathLike = Union[str, os.PathLike]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_SIZE = 2  # pixels; smaller images cannot be cropped and resized meaningfully
NUM_THREADS = min(8, max(1, os.cpu_count() or 1))
Sample = Tuple[str, int]  # (image path, class index)


class ClassifyDataError(ValueError):
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


def resolve_classify_data(data: Optional[PathLike] = None, val_ratio: float = 0.2, seed: int = 0,
                          verbose: bool = True, check_train: bool = True) -> ClassifyData:
    """Find the classes and the checked train/val samples of `data` (see the module docstring).

    check_train=False (validation only) leaves `train` empty when a val/ folder exists instead of reading it.
    """
    from utils.datasets import DatasetError, check_cls_dataset
    from utils.synthetic import BUILTIN_CLASSIFICATION, ensure_builtin_classification_dataset

    spec = "" if data is None else str(data).strip()
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
class CenterCropResize:
    """The largest centred square, resized to size x size (YOLOv5's classification eval transform)."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, im: Image.Image) -> Image.Image:
        w, h = im.size
        m = min(w, h)
        left, top = (w - m) // 2, (h - m) // 2
        return im.resize((self.size, self.size), Image.BILINEAR, box=(left, top, left + m, top + m))


def eval_transform(imgsz: int) -> T.Compose:
    """PIL RGB image -> normalised float tensor (3, imgsz, imgsz)."""
    return T.Compose([CenterCropResize(imgsz), T.ToImage(), T.ToDtype(torch.float32, scale=True),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def train_transform(imgsz: int, aug: Optional[ClassifyAugment] = None) -> T.Compose:
    """Random resized crop, flips, colour jitter, normalisation."""
    aug = aug or ClassifyAugment()
    # geometric and colour ops run on the PIL image (several times faster than on small tensors), then normalise
    ops: list = [T.RandomResizedCrop(imgsz, scale=aug.scale, ratio=aug.ratio, antialias=True)]
    if aug.hflip > 0:
        ops.append(T.RandomHorizontalFlip(aug.hflip))
    if aug.vflip > 0:
        ops.append(T.RandomVerticalFlip(aug.vflip))
    if aug.jitter > 0:
        ops.append(T.ColorJitter(brightness=aug.jitter, contrast=aug.jitter, saturation=aug.jitter))
    ops += [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(ops)


def load_rgb(path: PathLike) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


class ClassifyDataset(Dataset):
    """(image tensor (3, imgsz, imgsz) normalised, class index) per sample.

    Training augmentation draws from a generator seeded by (seed, epoch, index): the same epoch gives the same
    images whatever the worker count, and a resumed run continues exactly.
    """

    def __init__(self, samples: Sequence[Sample], imgsz: int, augment: bool = False,
                 aug: Optional[ClassifyAugment] = None, seed: int = 0):
        self.samples = list(samples)
        self.augment = augment
        self.transform = train_transform(imgsz, aug) if augment else eval_transform(imgsz)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        path, c = self.samples[i]
        im = load_rgb(path)
        if not self.augment:
            return self.transform(im), c
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, self.epoch, i)) % 2 ** 63)  # ints hash to themselves: stable
            return self.transform(im), c


class EpochLoader(DataLoader):
    """DataLoader whose dataset and sampler are told the epoch before each pass (`set_epoch`)."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        self.dataset.set_epoch(self.epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)
        return super().__iter__()


def create_classify_loader(samples: Sequence[Sample], imgsz: int, batch_size: int, augment: bool = False,
                           shuffle: bool = False, workers: int = 0, seed: int = 0,
                           aug: Optional[ClassifyAugment] = None) -> EpochLoader:
    """Loader of (images (B, 3, imgsz, imgsz), labels (B,)) batches; shuffled by (seed, epoch) when asked."""
    dataset = ClassifyDataset(samples, imgsz, augment=augment, aug=aug, seed=seed)
    workers = max(0, min(int(workers), os.cpu_count() or 1, len(dataset)))
    sampler = SeededShuffleSampler(len(dataset), seed) if shuffle else None
    batch_size = min(batch_size, max(len(dataset), 1))
    # a last training batch of one image would make BatchNorm fail on 1x1 maps: drop it (a different one each epoch)
    drop_last = augment and len(dataset) > 1 and len(dataset) % batch_size == 1
    return EpochLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                       pin_memory=torch.cuda.is_available(), drop_last=drop_last)
