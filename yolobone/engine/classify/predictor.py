"""Classifier: a trained image classifier wrapped for inference; top-k classes with probabilities per image or frame.

    >>> clf = Classifier("runs/train-cls/exp/weights/best.pt", device="cpu")
    >>> preds = clf.predict(["a.jpg", "b.jpg"], imgsz=224, topk=5)
    >>> preds[0].name, preds[0].prob, preds[0].top   # best class, its probability, [(id, name, prob), ...]

A Classifier is the shared engine.core.predictor.Predictor with classification's step (ClassifyPredictStep):
centre crop + resize + normalise, softmax, top-k, the classes written in the image's corner.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from yolobone.engine.backends import Backend
from yolobone.data.classify import EvalTransform, eval_transform
from yolobone.engine.classify.results import ClassPrediction
from yolobone.engine.classify.val_run import backend_imgsz, classifier_on_device
from yolobone.engine.core.predictor import PredictStep, Predictor
from yolobone.engine.core.sources import Frame, SourceSpec

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class ClassifyPredictOptions:
    """Options of one prediction call: the square input size and how many classes to report."""

    imgsz: int = 224
    topk: int = 5


def annotate(img_bgr: np.ndarray, pred: ClassPrediction) -> np.ndarray:
    """A copy of the image with one 'prob name' line per top-k class in the top-left corner."""
    img = img_bgr.copy()
    h, w = img.shape[:2]
    scale = max(min(h, w) / 640, 0.3)
    thickness = max(int(round(scale * 2)), 1)
    x, y = int(8 * scale) + 2, int(8 * scale) + 2
    for _, name, p in pred.top:
        text = f"{p:.2f} {name}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(img, (x - 2, y - 2), (x + tw + 2, y + th + base + 2), (40, 40, 40), -1)
        cv2.putText(img, text, (x, y + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
        y += th + base + 6
    return img


class ClassifyPredictStep(PredictStep):
    """Classification's part of prediction: centre crop, resize, normalise; softmax and top-k."""

    def __init__(self, model: Union[nn.Module, Backend], device: torch.device, half: bool = False):
        self.model, self.device = model, device
        self.half = half and device.type == "cuda"
        self.names = list(getattr(model, "names", []))
        self._transform: Optional[EvalTransform] = None

    def preprocess(self, images: Sequence[np.ndarray], opts: ClassifyPredictOptions) -> Tuple[torch.Tensor, None]:
        if self._transform is None or self._transform.size != opts.imgsz:
            self._transform = eval_transform(opts.imgsz)
        tf = self._transform
        x = torch.stack([tf(Image.fromarray(np.ascontiguousarray(im[:, :, ::-1]))) for im in images])
        return x.to(self.device), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, nc); float16 autocast with --half on CUDA."""
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.half):
            return self.model(x)

    def postprocess(self, raw: torch.Tensor, x: torch.Tensor, context: Any, frames: Sequence[Frame],
                    opts: ClassifyPredictOptions) -> List[ClassPrediction]:
        probs = raw.float().softmax(1)
        p, idx = probs.topk(min(opts.topk, probs.shape[1]), dim=1)
        names = self.names
        return [ClassPrediction(path=f.path, frame=f.frame,
                                top=[(c, names[c] if c < len(names) else str(c), prob) for c, prob in zip(ii, pi)])
                for f, pi, ii in zip(frames, p.tolist(), idx.tolist())]

    def input_shape(self, opts: ClassifyPredictOptions) -> Tuple[int, int]:
        return opts.imgsz, opts.imgsz

    def describe(self, result: ClassPrediction, frame: Frame) -> str:
        h, w = frame.image.shape[:2]
        return f"{h}x{w} {result.text()}"

    def label_lines(self, result: ClassPrediction, save_conf: bool) -> List[str]:
        return [f"{p:.4f} {n}" for _, n, p in result.top]

    def draw(self, result: ClassPrediction, frame: Frame, style: Dict[str, Any]) -> np.ndarray:
        return annotate(frame.image, result)


class Classifier(Predictor):
    """Load a classifier once (checkpoint, export, or an in-memory model), then predict top-k on any source."""

    def __init__(self, weights: Optional[PathLike] = None, model: Union[nn.Module, Backend, None] = None,
                 device: Union[str, torch.device] = "", half: bool = False):
        model, device = classifier_on_device(weights, model, device, "Classifier()")
        if isinstance(model, nn.Module):
            model.eval()
        super().__init__(ClassifyPredictStep(model, device, half))
        self.model, self.device, self.names = model, device, self.step.names

    def options(self, imgsz: int = 224, topk: int = 5) -> ClassifyPredictOptions:
        """Checked options: topk >= 1, imgsz a static-shape export's own size."""
        if topk < 1:
            raise ValueError(f"--topk must be >= 1, got {topk}")
        return ClassifyPredictOptions(backend_imgsz(self.model, int(imgsz)), int(topk))

    def predict(self, images: SourceSpec, imgsz: int = 224, topk: int = 5, batch_size: int = 1,
                vid_stride: int = 1, skip_failed: bool = False) -> List[ClassPrediction]:
        """Top-k predictions for every image/frame of a source (InputReadError for an unreadable one unless
        skip_failed, which logs it and goes on)."""
        return self.collect(images, self.options(imgsz, topk), batch_size, vid_stride, skip_failed)

    __call__ = predict
