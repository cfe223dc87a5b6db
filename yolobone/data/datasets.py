"""Detection data loading: DetectionDataset (YOLOv5 augmentations, rect batches, RAM/disk cache) and create_dataloader.

Contracts (docs/internals.md): a dataset item is ``(image uint8 CHW RGB, labels (n, 6) [0, cls, cx, cy, w, h],
path, shapes)`` with ``shapes = ((h0, w0), ((h / h0, w / w0), (padw, padh)))`` for letterboxed images and ``None``
for mosaics; ``collate_fn`` stacks images and writes the batch index into column 0.
Data YAML checking lives in yolobone/data/config.py and label checking in yolobone/data/label_check.py; both are re-exported here.
"""
from __future__ import annotations

import math
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from yolobone.data.annotation_sets import scan_split
from yolobone.data.augment import augment_hsv, letterbox, mixup, mosaic4, mosaic9, random_flip, random_perspective
from yolobone.utils.boxes import xywhn2xyxy, xyxy2xywhn
from yolobone.data.config import (DatasetError, check_cls_dataset, check_dataset, img2label_paths,  # noqa: F401
                               list_image_files)
from yolobone.utils.hyp import Hyp, load_hyp
from yolobone.data.label_check import CACHE_VERSION, NUM_THREADS, scan_labels, summarize, verify_image_label  # noqa: F401
from yolobone.utils.logging import LOGGER
from yolobone.data.media import IMG_FORMATS, VID_FORMATS  # noqa: F401
from yolobone.data.ram_cache import resolve_cache

PathLike = Union[str, os.PathLike]
DataSource = Union[PathLike, Sequence[PathLike], Dict[str, Any]]  # images (YOLO labels) or a COCO/VOC split spec

__all__ = ["DatasetError", "DetectionDataset", "EpochLoader", "build_loader", "SeededShuffleSampler", "IMG_FORMATS",
           "VID_FORMATS", "check_cls_dataset", "check_dataset", "create_dataloader", "img2label_paths",
           "list_image_files", "scan_labels", "scan_source", "seed_worker", "verify_image_label"]


class DetectionDataset(Dataset):
    """YOLO-format detection dataset with YOLOv5's augmentations.

    Every random draw of item ``i`` comes from ``np.random.default_rng((seed, epoch, i))``, so a batch is the same
    whatever the worker count and a resumed run sees the augmentations of an uninterrupted one (call
    ``set_epoch``; ``EpochLoader`` does it for you).
    """

    def __init__(self, path: DataSource, img_size: int = 640, batch_size: int = 16,
                 augment: bool = False, hyp: Union[Hyp, dict, PathLike, None] = None, rect: bool = False,
                 cache: Union[str, bool, None] = None, single_cls: bool = False, stride: int = 32, pad: float = 0.0,
                 nc: Optional[int] = None, image_weights: bool = False, seed: int = 0, prefix: str = ""):
        if cache not in (None, False, True, "ram", "disk", "auto"):
            raise DatasetError(f"{prefix}cache must be 'ram', 'disk', 'auto' or None, got {cache!r}")
        # the epoch lives in shared memory so persistent loader workers see set_epoch() (speed-ups, issue 18)
        self._shared_epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.img_size, self.stride, self.pad = int(img_size), int(stride), float(pad)
        self.augment, self.rect, self.image_weights = augment, rect, image_weights
        self.mosaic = augment and not rect  # mosaic would undo the rectangular batch shapes
        self.mosaic_until: Optional[int] = None  # first epoch without mosaic (--close-mosaic); None: every epoch
        self.hyp = load_hyp(hyp)
        self.seed, self.epoch, self.prefix = int(seed), 0, prefix
        for key in ("copy_paste", "paste_in"):
            if augment and getattr(self.hyp, key) > 0:
                LOGGER.warning(f"{prefix}{key}={getattr(self.hyp, key)} pastes nothing: it cuts objects along polygon "
                               "labels, which are reduced to boxes here")

        scan, from_cache, where = scan_source(path, nc, prefix)
        self.problems: List[Tuple[str, str]] = [(f, why) for f, why in scan["problems"]]
        summary = summarize(scan, where, from_cache, prefix)
        (LOGGER.warning if self.problems else LOGGER.info)(summary)
        if not scan["entries"]:
            raise DatasetError(f"{prefix}no usable images in {where}: all {scan['counts']['images']} were skipped "
                               f"({self.problems[0][1] if self.problems else 'unknown reason'})")

        self.im_files = [e[0] for e in scan["entries"]]
        # COCO/VOC sets: each image's original id and each class's category id, for --save-json
        self.image_ids = dict(zip(self.im_files, scan["image_ids"])) if "image_ids" in scan else None
        self.category_ids: Optional[List[int]] = scan.get("category_ids")
        self.annotation_file: Optional[str] = path.get("source") if isinstance(path, dict) else None
        self.label_files = ([self.annotation_file] * len(self.im_files) if self.annotation_file else
                            img2label_paths(self.im_files))
        self.shapes = np.array([[e[1], e[2]] for e in scan["entries"]], dtype=np.int64)  # (N, 2) w, h
        self.labels = [np.array(e[3], np.float32).reshape(-1, 5) for e in scan["entries"]]
        if single_cls:
            for lb in self.labels:
                lb[:, 0] = 0
        if not any(len(lb) for lb in self.labels):
            LOGGER.warning(f"{prefix}no labels in {path}: training will only learn background")
        self.n = len(self.im_files)
        self.indices = np.arange(self.n)

        n_batches = math.ceil(self.n / batch_size)
        self.batch = np.arange(self.n) // batch_size  # batch index of each image
        self.batch_shapes: Optional[np.ndarray] = None
        if rect:
            self._make_rect_batches(n_batches)

        self.ims: List[Optional[np.ndarray]] = [None] * self.n
        self.cache_mode = "ram" if cache is True else (resolve_cache(cache, self.n, self.img_size) or None)
        if self.cache_mode:
            self._cache_images()

    # -- setup
    def _make_rect_batches(self, n_batches: int) -> None:
        """Sort by aspect ratio; each batch gets the smallest stride-multiple (h, w) holding its images."""
        aspect = self.shapes[:, 1] / self.shapes[:, 0]  # h / w
        order = aspect.argsort(kind="stable")
        self.im_files = [self.im_files[i] for i in order]
        self.label_files = [self.label_files[i] for i in order]
        self.labels = [self.labels[i] for i in order]
        self.shapes = self.shapes[order]
        aspect = aspect[order]
        shapes = np.ones((n_batches, 2))  # (h, w) relative to img_size
        for b in range(n_batches):
            ar = aspect[self.batch == b]
            lo, hi = ar.min(), ar.max()
            if hi < 1:  # all landscape: full width, height hi
                shapes[b] = [hi, 1]
            elif lo > 1:  # all portrait: full height, width 1 / lo
                shapes[b] = [1, 1 / lo]
        self.batch_shapes = (np.ceil(shapes * self.img_size / self.stride + self.pad) * self.stride).astype(int)

    def _read(self, i: int) -> np.ndarray:
        f = self.im_files[i]
        if self.cache_mode == "disk":
            npy = Path(f).with_suffix(".npy")
            if npy.is_file():
                return np.load(npy)
        im = cv2.imread(f)  # BGR, EXIF orientation applied
        if im is None:
            raise DatasetError(f"{self.prefix}image not readable (removed or changed after the scan?): {f}")
        return im

    def _resize(self, im: np.ndarray) -> np.ndarray:
        h0, w0 = im.shape[:2]
        r = self.img_size / max(h0, w0)
        if r != 1:
            interp = cv2.INTER_LINEAR if (self.augment or r > 1) else cv2.INTER_AREA
            im = cv2.resize(im, (max(1, round(w0 * r)), max(1, round(h0 * r))), interpolation=interp)
        return im

    def _cache_images(self) -> None:
        if self.cache_mode == "disk":
            def save(i: int) -> int:
                npy = Path(self.im_files[i]).with_suffix(".npy")
                if not npy.is_file():
                    np.save(npy, self._read(i), allow_pickle=False)
                return npy.stat().st_size
        else:
            def save(i: int) -> int:
                self.ims[i] = self._resize(self._read(i))
                return self.ims[i].nbytes
        total = 0
        with ThreadPoolExecutor(NUM_THREADS) as pool:
            for nbytes in tqdm(pool.map(save, range(self.n)), total=self.n, leave=False,
                               desc=f"{self.prefix}Caching images ({self.cache_mode})"):
                total += nbytes
        LOGGER.info(f"{self.prefix}Cached {self.n} images ({total / 1e9:.2f} GB {self.cache_mode})")

    # -- epochs
    @property
    def epoch(self) -> int:
        return int(self._shared_epoch)

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._shared_epoch.fill_(int(value))

    def set_epoch(self, epoch: int) -> None:
        """Epoch that seeds this epoch's augmentations (and image-weight resampling)."""
        self.epoch = int(epoch)

    def mosaic_on(self, epoch: int) -> bool:
        """Whether items of `epoch` may be mosaics (then with probability hyp.mosaic)."""
        return self.mosaic and (self.mosaic_until is None or epoch < self.mosaic_until)

    def update_image_weights(self, class_weights: np.ndarray) -> None:
        """Redraw ``indices`` (with replacement) so images holding high-weight classes come more often."""
        cw = np.asarray(class_weights, np.float64)
        iw = np.array([cw[lb[:, 0].astype(int)].sum() if len(lb) else 0.0 for lb in self.labels])
        p = iw / iw.sum() if iw.sum() > 0 else None
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        self.indices = rng.choice(self.n, size=self.n, p=p)

    # -- items
    def load_image(self, i: int) -> Tuple[np.ndarray, Tuple[int, int], Tuple[int, int]]:
        """(BGR image resized so its long side is img_size, (h0, w0) original, (h, w) resized)."""
        if self.ims[i] is not None:
            im = self.ims[i].copy()  # augmentations work in place; the cache must stay clean
            w0, h0 = self.shapes[i]
            return im, (int(h0), int(w0)), im.shape[:2]
        im = self._read(i)
        h0, w0 = im.shape[:2]
        im = self._resize(im)
        return im, (h0, w0), im.shape[:2]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        i = int(self.indices[index])
        hyp = self.hyp
        shapes = None
        if self.mosaic_on(self.epoch) and rng.random() < hyp.mosaic:
            img, labels = self._load_mosaic(i, rng)
            if rng.random() < hyp.mixup:
                img2, labels2 = self._load_mosaic(int(rng.integers(self.n)), rng)
                img, labels = mixup(img, labels, img2, labels2, rng)
        else:
            img, (h0, w0), (h, w) = self.load_image(i)
            shape = tuple(self.batch_shapes[self.batch[i]]) if self.rect else self.img_size
            img, (rw, rh), (dw, dh) = letterbox(img, shape, auto=False, scaleup=self.augment)
            shapes = ((h0, w0), ((h * rh / h0, w * rw / w0), (dw, dh)))
            labels = self.labels[i].copy()
            if len(labels):
                labels[:, 1:] = xywhn2xyxy(labels[:, 1:], w * rw, h * rh, dw, dh)
            if self.augment:
                img, labels = random_perspective(img, labels, hyp.degrees, hyp.translate, hyp.scale, hyp.shear,
                                                 hyp.perspective, rng=rng)
        if len(labels):
            labels[:, 1:5] = xyxy2xywhn(labels[:, 1:5], w=img.shape[1], h=img.shape[0], clip=True, eps=1e-3)
        if self.augment:
            augment_hsv(img, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v, rng=rng)
            img, labels = random_flip(img, labels, hyp.flipud, hyp.fliplr, rng=rng)
        out = torch.zeros((len(labels), 6))
        if len(labels):
            out[:, 1:] = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))
        chw = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        return torch.from_numpy(chw), out, self.im_files[i], shapes

    def _load_mosaic(self, i: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """A 4-image mosaic (YOLOv5), or with probability hyp.mosaic9 a 9-image one around image i (YOLOv7)."""
        nine = self.hyp.mosaic9 > 0 and rng.random() < self.hyp.mosaic9
        picks = [i] + [int(self.indices[j]) for j in rng.integers(0, self.n, 8 if nine else 3)]
        if not nine:
            rng.shuffle(picks)  # as YOLOv5: the indexed image lands in any quadrant, not always top-left
        images = [self.load_image(k)[0] for k in picks]
        labels = [self.labels[k] for k in picks]
        canvas, rows = (mosaic9 if nine else mosaic4)(images, labels, self.img_size, rng)
        border = -self.img_size // 2
        hyp = self.hyp
        return random_perspective(canvas, rows, hyp.degrees, hyp.translate, hyp.scale, hyp.shear, hyp.perspective,
                                  border=(border, border), rng=rng)

    @staticmethod
    def collate_fn(batch):
        """Stack images (padding bottom/right with 114 if their sizes differ) and index the targets by image."""
        ims, labels, paths, shapes = zip(*batch)
        hs, ws = [im.shape[1] for im in ims], [im.shape[2] for im in ims]
        H, W = max(hs), max(ws)
        if min(hs) != H or min(ws) != W:  # only when a sampler mixes rect batches (e.g. DDP padding)
            padded = torch.full((len(ims), 3, H, W), 114, dtype=torch.uint8)
            for k, im in enumerate(ims):
                padded[k, :, :im.shape[1], :im.shape[2]] = im
                if len(labels[k]):
                    labels[k][:, [2, 4]] *= im.shape[2] / W  # x, w
                    labels[k][:, [3, 5]] *= im.shape[1] / H  # y, h
            images = padded
        else:
            images = torch.stack(ims, 0)
        for k, lb in enumerate(labels):
            lb[:, 0] = k
        return images, torch.cat(labels, 0), paths, shapes


def scan_source(path: DataSource, nc: Optional[int], prefix: str = "") -> Tuple[dict, bool, Path]:
    """(scan, from_cache, where) for YOLO images + txt labels or a COCO/VOC split spec (see check_dataset)."""
    if isinstance(path, dict):
        scan, from_cache = scan_split(path, prefix)
        return scan, from_cache, Path(path["source"])
    files = list_image_files(path, prefix)
    label_files = img2label_paths(files)
    labels_dir = Path(label_files[0]).parent
    cache_path = labels_dir.with_name(labels_dir.name + ".cache")  # not with_suffix: 'train.v2' keeps its dot
    scan, from_cache = scan_labels(files, label_files, nc, cache_path, prefix)
    return scan, from_cache, labels_dir


# ----------------------------------------------------------------------------------------------- loading
class SeededShuffleSampler(Sampler[int]):
    """A fresh permutation per epoch drawn from (seed, epoch): resumed runs see the same order."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class EpochLoader(DataLoader):
    """DataLoader whose epoch (augmentation seed and shuffle order) advances by one per pass over it.

    Call ``set_epoch(e)`` before iterating to pin epoch ``e`` (the trainer does, every epoch and when resuming).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        return super().__iter__()


def build_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = False, workers: int = 0, seed: int = 0,
                 rank: int = -1, collate_fn: Optional[Callable] = None, drop_last: bool = False,
                 persistent_workers: bool = False) -> EpochLoader:
    """The EpochLoader of every task: (seed, epoch)-shuffled, or sharded by a DistributedSampler when rank != -1.

    persistent_workers keeps the worker processes between epochs: only for datasets whose epoch reaches them
    through shared memory (DetectionDataset)."""
    workers = max(0, min(int(workers), os.cpu_count() or 1))
    if rank != -1:
        sampler: Optional[Sampler] = DistributedSampler(dataset, shuffle=shuffle, seed=seed)
    else:
        sampler = SeededShuffleSampler(len(dataset), seed) if shuffle else None
    generator = torch.Generator()
    generator.manual_seed(seed + max(rank, 0))
    return EpochLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                       pin_memory=torch.cuda.is_available(), collate_fn=collate_fn, worker_init_fn=seed_worker,
                       generator=generator, drop_last=drop_last, persistent_workers=persistent_workers and workers > 0)


def seed_worker(worker_id: int) -> None:
    """Seed python/numpy in each worker from torch's per-worker seed; keep OpenCV single-threaded there."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)
    cv2.setNumThreads(0)


def create_dataloader(path: DataSource, imgsz: int, batch_size: int, stride: int, *,
                      hyp: Union[Hyp, dict, PathLike, None] = None, augment: bool = False,
                      cache: Union[str, bool, None] = None, pad: float = 0.0, rect: bool = False, workers: int = 0,
                      shuffle: bool = False, single_cls: bool = False, nc: Optional[int] = None, seed: int = 0,
                      prefix: str = "", rank: int = -1, image_weights: bool = False, persistent_workers: bool = False
                      ) -> Tuple[EpochLoader, DetectionDataset]:
    """Build a DetectionDataset and its loader; ``rank != -1`` shards it with a DistributedSampler.

    persistent_workers keeps the worker processes between epochs (the epoch reaches them through shared memory)."""
    if rect and shuffle:
        LOGGER.warning(f"{prefix}--rect is incompatible with shuffling, shuffle=False")
        shuffle = False
    if image_weights and shuffle:
        shuffle = False  # image weights already redraw the order
    dataset = DetectionDataset(path, imgsz, batch_size, augment=augment, hyp=hyp, rect=rect, cache=cache,
                               single_cls=single_cls, stride=stride, pad=pad, nc=nc, image_weights=image_weights,
                               seed=seed, prefix=prefix)
    loader = build_loader(dataset, min(batch_size, len(dataset)), shuffle=shuffle, workers=workers, seed=seed,
                          rank=rank, collate_fn=DetectionDataset.collate_fn, persistent_workers=persistent_workers)
    return loader, dataset
