"""Detector: a trained detection model wrapped for inference on images, folders, videos and streams.

    >>> det = Detector("runs/train/exp/weights/best.pt", device="cpu")
    >>> results = det.predict(["a.jpg", "b.jpg"], conf=0.25, iou=0.45)
    >>> results[0].boxes, results[0].scores, results[0].class_ids  # xyxy in original pixels
    >>> cv2.imwrite("a_pred.jpg", results[0].plot())

A Detector is the shared engine.core.predictor.Predictor with detection's step (DetectPredictStep); detect.py runs
the same loop (``Predictor.run``), so its label files equal these predictions.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn as nn

from yolobone.engine.core import predictor
from yolobone.engine.core.predictor import PredictStep, Predictor
from yolobone.engine.core.sources import Failure, Frame, Source, SourceSpec, input_sizes
from yolobone.engine.detect.results import Result
from yolobone.engine.backends import Backend, TorchBackend, load_backend
from yolobone.engine.backends.compiled import dominant_shape
from yolobone.data.augment import letterbox, letterbox_geometry
from yolobone.utils.boxes import scale_boxes
from yolobone.utils.errors import YoloboneError
from yolobone.utils.image_size import stride_multiple
from yolobone.utils.logging import LOGGER
from yolobone.engine.detect.nms import non_max_suppression
from yolobone.utils.torch_utils import select_device

ImgSize = Union[int, Sequence[int]]


class DetectorError(YoloboneError, ValueError):
    """Weights that cannot be used for detection, or prediction options out of range."""


class InputReadError(DetectorError, predictor.InputReadError):
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
            raise DetectorError(f"conf must be in [0, 1], got {self.conf}")
        if not 0.0 <= self.iou <= 1.0:
            raise DetectorError(f"iou must be in [0, 1], got {self.iou}")
        if self.max_det < 1:
            raise DetectorError(f"max_det must be >= 1, got {self.max_det}")
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


class DetectPredictStep(PredictStep):
    """Detection's part of prediction: letterbox, decoded boxes, NMS, boxes scaled back to each original image."""

    postprocess_name = "NMS"

    def __init__(self, backend: Backend):
        self.backend = backend
        self.device = backend.device
        self.half = backend.fp16
        self.names: List[str] = list(backend.names)

    def preprocess(self, images: Sequence[np.ndarray], opts: PredictOptions
                   ) -> Tuple[torch.Tensor, List[Tuple[Tuple[float, float], Tuple[float, float]]]]:
        return self.letterbox_batch(images, opts.imgsz)

    def letterbox_batch(self, images: Sequence[np.ndarray], imgsz: Tuple[int, int]
                        ) -> Tuple[torch.Tensor, List[Tuple[Tuple[float, float], Tuple[float, float]]]]:
        """Letterbox BGR images to one (B, 3, H, W) RGB input in [0, 1]; returns it and each image's ratio_pad.

        Each image is letterboxed with minimal stride padding; images of a batch whose shapes differ are padded
        further (centred) to the largest shape, which keeps their scale, so only the padding changes.
        """
        # a static-shape export takes exactly its size: pad to it instead of to the next stride multiple
        boxed = [letterbox(im, imgsz, auto=self.backend.dynamic, stride=self.backend.stride) for im in images]
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded predictions (B, N, 5 + nc), or (B, N, 4 + nc) from an anchor-free model, in input pixels."""
        return self.backend(x)

    def postprocess(self, raw: torch.Tensor, x: torch.Tensor, context: Any, frames: Sequence[Frame],
                    opts: PredictOptions) -> List[Result]:
        """NMS, then each image's boxes in its original pixels."""
        dets = non_max_suppression(raw, opts.conf, opts.iou, classes=opts.classes, agnostic=opts.agnostic,
                                   max_det=opts.max_det, objectness=not self.backend.anchor_free)
        results = []
        for f, det, rp in zip(frames, dets, context):
            det = det.float()
            boxes = scale_boxes(x.shape[2:], det[:, :4].clone(), f.image.shape[:2], ratio_pad=rp)
            results.append(Result(path=f.path, orig_img=f.image, boxes=boxes.cpu().numpy(),
                                  scores=det[:, 4].cpu().numpy(), class_ids=det[:, 5].cpu().numpy().astype(np.int64),
                                  names=self.names, input_shape=tuple(x.shape[2:]), kind=f.kind, frame=f.frame,
                                  index=f.index, frames=f.frames, fps=f.fps))
        return results

    def input_shape(self, opts: PredictOptions) -> Tuple[int, int]:
        return opts.imgsz

    def describe(self, result: Result, frame: Frame) -> str:
        h, w = result.input_shape
        return f"{h}x{w} {result.summary()}"

    def label_lines(self, result: Result, save_conf: bool) -> List[str]:
        return result.yolo_lines(save_conf)

    def draw(self, result: Result, frame: Frame, style: Dict[str, Any]) -> np.ndarray:
        return result.plot(**style)

    def save_crops(self, result: Result, folder: Path, stem: str) -> None:
        if len(result):
            result.save_crops(folder, stem=stem)


class Detector(Predictor):
    """Load weights once (any backend: .pt, .onnx, *_openvino_model/, .torchscript), then predict on any source."""

    def __init__(self, weights: Union[str, os.PathLike, nn.Module, Backend], device: Union[str, torch.device] = "",
                 half: bool = False, fuse: bool = True, compile: str = "off"):
        device = select_device(device)
        if half and device.type != "cuda":
            LOGGER.warning(f"WARNING: --half is for CUDA only; running in float32 on {device.type}")
            half = False
        backend = weights if isinstance(weights, Backend) else load_backend(weights, device, half, fuse,
                                                                             compile=compile)
        if backend.task != "detect":
            raise DetectorError(f"{backend.source}: a {backend.task!r} model; detection needs a detection "
                                f"checkpoint (task 'detect', a Detect head)")
        super().__init__(DetectPredictStep(backend))
        self.device, self.backend, self.weights = device, backend, backend.source
        self.half, self.names, self.nc, self.stride = backend.fp16, list(backend.names), backend.nc, backend.stride

    @property
    def model(self) -> nn.Module:
        """The PyTorch model (PyTorch backend only)."""
        if not isinstance(self.backend, TorchBackend):
            raise DetectorError(f"{self.weights}: a {self.backend.kind} backend has no PyTorch model")
        return self.backend.model

    def main_input_shape(self, source: Source, opts: PredictOptions, batch_size: int = 1, vid_stride: int = 1
                         ) -> Tuple[Optional[Tuple[int, int, int, int]], int]:
        """The most common letterboxed input (B, 3, H, W) of a source and how many images will run at it."""
        auto, stride = self.backend.dynamic, self.backend.stride
        shapes = []
        for (h0, w0), n in input_sizes(source, vid_stride):
            new_w, new_h, pad_w, pad_h = letterbox_geometry(h0, w0, opts.imgsz, auto=auto, stride=stride)
            shapes += [(batch_size, 3, new_h + pad_h, new_w + pad_w)] * n
        return dominant_shape(shapes)

    def preprocess(self, images: Sequence[np.ndarray], imgsz: Tuple[int, int]
                   ) -> Tuple[torch.Tensor, List[Tuple[Tuple[float, float], Tuple[float, float]]]]:
        """The letterboxed (B, 3, H, W) input for these BGR images and each image's ratio_pad."""
        return self.step.letterbox_batch(images, imgsz)

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
        return super().stream(source, opts or self.options(), batch_size, vid_stride)

    def predict(self, images: SourceSpec, conf: float = 0.25, iou: float = 0.45, imgsz: ImgSize = 640,
                classes: Optional[Sequence[int]] = None, agnostic: bool = False, max_det: int = 1000,
                batch_size: int = 1, vid_stride: int = 1, skip_failed: bool = False) -> List[Result]:
        """Results for image paths, folders, globs, .txt lists, videos (one per frame) or BGR/PIL images.

        An unreadable input raises InputReadError unless skip_failed, which logs it and goes on. For long videos
        and streams iterate ``stream`` instead: every Result keeps its original image.
        """
        return self.collect(images, self.options(conf, iou, imgsz, classes, agnostic, max_det), batch_size,
                            vid_stride, skip_failed, error=InputReadError)

    __call__ = predict


def load_detector(weights: Union[str, os.PathLike], device: Union[str, torch.device] = "", half: bool = False,
                  fuse: bool = True, compile: str = "off") -> Detector:
    """Detector for a checkpoint file (see Detector)."""
    return Detector(weights, device=device, half=half, fuse=fuse, compile=compile)
