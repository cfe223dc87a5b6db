"""Detector: a trained detection model wrapped for inference on images, folders, videos and streams.

    >>> det = Detector("runs/train/exp/weights/best.pt", device="cpu")
    >>> results = det.predict(["a.jpg", "b.jpg"], conf=0.25, iou=0.45)
    >>> results[0].boxes, results[0].scores, results[0].class_ids  # xyxy in original pixels
    >>> cv2.imwrite("a_pred.jpg", results[0].plot())

detect.py runs the same ``Detector.stream`` code path, so its label files equal these predictions.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn as nn

from engine.detect.results import Result
from engine.core.sources import Failure, Frame, Source, SourceSpec, batched, iter_frames, resolve_source
from engine.backends import Backend, TorchBackend, load_backend
from utils.augment import letterbox
from utils.boxes import scale_boxes
from utils.image_size import stride_multiple
from utils.logging import LOGGER
from utils.nms import non_max_suppression
from utils.torch_utils import select_device, time_sync

ImgSize = Union[int, Sequence[int]]


class DetectorError(ValueError):
    """Weights that cannot be used for detection, or prediction options out of range."""


class InputReadError(DetectorError):
    """An input given to Detector.predict could not be read (path + reason)."""


@dataclass(frozen=True)
class PredictOptions:
    """Thresholds and filters for one prediction call (YOLOv5 detect.py defaults)."""

    conf: float = 0.25  # keep detections with obj * class score above this
    iou: float = 0.45  # NMS IoU threshold
    imgsz: Tuple[int, int] = (640, 640)  # (h, w) the long side is letterboxed to; multiples of the stride
    classes: Optional[Tuple[int, ...]] = None  # keep only these class ids
    agnostic: bool = False  # NMS across classes
    max_det: int = 1000  # detections kept per image

    def check(self, nc: int) -> "PredictOptions":
        """Raise DetectorError naming the option, the value and the valid range when something is off."""
        if not 0.0 <= self.conf <= 1.0:
            raise DetectorError(f"--conf-thres must be in [0, 1], got {self.conf}")
        if not 0.0 <= self.iou <= 1.0:
            raise DetectorError(f"--iou-thres must be in [0, 1], got {self.iou}")
        if self.max_det < 1:
            raise DetectorError(f"--max-det must be >= 1, got {self.max_det}")
        bad = [c for c in (self.classes or ()) if not 0 <= c < nc]
        if bad:
            raise DetectorError(f"--classes {bad[0]}: the model has {nc} classes (ids 0-{nc - 1})")
        return self


def check_imgsz(imgsz: ImgSize, stride: int) -> Tuple[int, int]:
    """(h, w) rounded up to multiples of stride (with a warning when that changes it)."""
    size = [int(imgsz)] * 2 if isinstance(imgsz, (int, np.integer)) else [int(s) for s in imgsz]
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise DetectorError(f"--imgsz expects one or two positive sizes (h w), got {size}")
    h, w = stride_multiple(size, stride)
    return h, w


class Detector:
    """Load weights once (any backend: .pt, .onnx, *_openvino_model/, .torchscript), then predict on any source."""

    def __init__(self, weights: Union[str, os.PathLike, nn.Module, Backend], device: Union[str, torch.device] = "",
                 half: bool = False, fuse: bool = True):
        self.device = select_device(device)
        if half and self.device.type != "cuda":
            LOGGER.warning(f"WARNING: --half is for CUDA only; running in float32 on {self.device.type}")
            half = False
        self.backend = weights if isinstance(weights, Backend) else load_backend(weights, self.device, half, fuse)
        self.weights = self.backend.source
        if self.backend.task != "detect":
            raise DetectorError(f"{self.weights}: a {self.backend.task!r} model; detection needs a detection "
                                f"checkpoint (task 'detect', a Detect head)")
        self.half = self.backend.fp16
        self.names: List[str] = list(self.backend.names)
        self.nc = self.backend.nc
        self.stride = self.backend.stride
        self._warm = self.device.type != "cuda"  # only CUDA needs a warm-up before timing means anything

    @property
    def model(self) -> nn.Module:
        """The PyTorch model (PyTorch backend only)."""
        if not isinstance(self.backend, TorchBackend):
            raise DetectorError(f"{self.weights}: a {self.backend.kind} backend has no PyTorch model")
        return self.backend.model

    # ---- stages -------------------------------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray], imgsz: Tuple[int, int]
                   ) -> Tuple[torch.Tensor, List[Tuple[Tuple[float, float], Tuple[float, float]]]]:
        """Letterbox BGR images to one (B, 3, H, W) RGB input in [0, 1]; returns it and each image's ratio_pad.

        Each image is letterboxed with minimal stride padding; images of a batch whose shapes differ are padded
        further (centred) to the largest shape, which keeps their scale, so only the padding changes.
        """
        # a static-shape export takes exactly its size: pad to it instead of to the next stride multiple
        boxed = [letterbox(im, imgsz, auto=self.backend.dynamic, stride=self.stride) for im in images]
        H, W = max(b[0].shape[0] for b in boxed), max(b[0].shape[1] for b in boxed)
        arrays, ratio_pads = [], []
        for im, (rw, rh), (dw, dh) in boxed:
            h, w = im.shape[:2]
            if (h, w) != (H, W):
                top, left = (H - h) // 2, (W - w) // 2
                im = cv2.copyMakeBorder(im, top, H - h - top, left, W - w - left, cv2.BORDER_CONSTANT,
                                        value=(114, 114, 114))
                dw, dh = dw + left, dh + top
            arrays.append(im)
            ratio_pads.append(((rh, rw), (dw, dh)))  # scale_boxes wants (gain_y, gain_x), (pad_x, pad_y)
        x = np.ascontiguousarray(np.stack(arrays)[..., ::-1].transpose(0, 3, 1, 2))  # BGR HWC -> RGB CHW
        x = torch.from_numpy(x).to(self.device, non_blocking=True)
        x = (x.half() if self.half else x.float()) / 255
        return x, ratio_pads

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded predictions (B, N, 5 + nc) in input pixels."""
        if not self._warm:
            self.backend(torch.zeros_like(x))
            self._warm = True
        return self.backend(x)

    def postprocess(self, pred: torch.Tensor, opts: PredictOptions) -> List[torch.Tensor]:
        return non_max_suppression(pred, opts.conf, opts.iou, classes=opts.classes, agnostic=opts.agnostic,
                                   max_det=opts.max_det)

    def predict_frames(self, frames: Sequence[Frame], opts: PredictOptions) -> List[Result]:
        """Run one batch of frames through pre-process, model and NMS; boxes come back in original pixels."""
        t0 = time_sync()
        x, ratio_pads = self.preprocess([f.image for f in frames], opts.imgsz)
        t1 = time_sync()
        pred = self.infer(x)
        t2 = time_sync()
        dets = self.postprocess(pred, opts)
        t3 = time_sync()
        n = len(frames)
        speed = {"preprocess": (t1 - t0) * 1e3 / n, "inference": (t2 - t1) * 1e3 / n, "nms": (t3 - t2) * 1e3 / n}
        results = []
        for f, det, rp in zip(frames, dets, ratio_pads):
            det = det.float()
            boxes = scale_boxes(x.shape[2:], det[:, :4].clone(), f.image.shape[:2], ratio_pad=rp)
            results.append(Result(path=f.path, orig_img=f.image, boxes=boxes.cpu().numpy(),
                                  scores=det[:, 4].cpu().numpy(), class_ids=det[:, 5].cpu().numpy().astype(np.int64),
                                  names=self.names, input_shape=tuple(x.shape[2:]), kind=f.kind, frame=f.frame,
                                  index=f.index, frames=f.frames, fps=f.fps, speed={"read": f.read_ms, **speed}))
        return results

    # ---- sources ------------------------------------------------------------------------------------------------
    def options(self, conf: float = 0.25, iou: float = 0.45, imgsz: ImgSize = 640,
                classes: Optional[Sequence[int]] = None, agnostic: bool = False, max_det: int = 1000
                ) -> PredictOptions:
        """Checked PredictOptions for this model (imgsz rounded to its stride, class ids within nc)."""
        return PredictOptions(float(conf), float(iou), self.backend.input_size(check_imgsz(imgsz, self.stride)),
                              None if classes is None else tuple(int(c) for c in classes), bool(agnostic),
                              int(max_det)).check(self.nc)

    def stream(self, source: Union[SourceSpec, Source], opts: Optional[PredictOptions] = None,
               batch_size: int = 1, vid_stride: int = 1) -> Iterator[Union[Result, Failure]]:
        """Yield a Result per image or video frame, and a Failure (path + reason) for each unreadable input."""
        opts = opts or self.options()
        src = source if isinstance(source, Source) else resolve_source(source)
        for item in batched(iter_frames(src, vid_stride), batch_size):
            if isinstance(item, Failure):
                yield item
            else:
                yield from self.predict_frames(item, opts)

    def predict(self, images: SourceSpec, conf: float = 0.25, iou: float = 0.45, imgsz: ImgSize = 640,
                classes: Optional[Sequence[int]] = None, agnostic: bool = False, max_det: int = 1000,
                batch_size: int = 1, vid_stride: int = 1, skip_failed: bool = False) -> List[Result]:
        """Results for image paths, folders, globs, .txt lists, videos (one per frame) or BGR/PIL images.

        An unreadable input raises InputReadError unless skip_failed, which logs it and goes on. For long videos
        and streams iterate ``stream`` instead: every Result keeps its original image.
        """
        opts = self.options(conf, iou, imgsz, classes, agnostic, max_det)
        results = []
        for item in self.stream(images, opts, batch_size, vid_stride):
            if isinstance(item, Failure):
                if not skip_failed:
                    raise InputReadError(f"{item.path}: {item.reason}")
                LOGGER.warning(f"WARNING: {item.path}: skipped, {item.reason}")
                continue
            results.append(item)
        return results

    __call__ = predict


def load_detector(weights: Union[str, os.PathLike], device: Union[str, torch.device] = "", half: bool = False,
                  fuse: bool = True) -> Detector:
    """Detector for a checkpoint file (see Detector)."""
    return Detector(weights, device=device, half=half, fuse=fuse)
