"""Classify images, folders, globs, lists and videos with a trained classifier: top-k classes with probabilities.

    python detect.py --task classify --weights runs/train-cls/exp/weights/best.pt --source path/to/images
(detect.py hands `--task classify` to `main` here.) Annotated images (top-k text in the corner) and, with
--save-txt, labels/<stem>.txt ("prob name" per line) go to runs/predict-cls/exp*. Exit code 0: every input read;
1: some inputs were skipped (each logged with its reason); 2: bad weights, source or options.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from engine.backends import Backend
from engine.classify.data import eval_transform
from engine.classify.val_run import backend_imgsz, classifier_on_device
from engine.core.prediction_output import OutputWriter, describe
from engine.core.sources import Failure, Frame, SourceSpec, iter_frames, resolve_source
from utils.cli import add_run_folder_args, run_cli
from utils.logging import LOGGER
from utils.paths import increment_path
from utils.torch_utils import time_sync

PathLike = Union[str, os.PathLike]


@dataclass
class ClassPrediction:
    """Top-k classes of one image (or video frame), most probable first."""

    path: str
    top: List[Tuple[int, str, float]]  # (class id, class name, probability)
    frame: int = 0  # 1-based video frame number, 0 for still images

    @property
    def cls(self) -> int:
        return self.top[0][0]

    @property
    def name(self) -> str:
        return self.top[0][1]

    @property
    def prob(self) -> float:
        return self.top[0][2]

    def text(self) -> str:
        """'circle 0.91, ring 0.05, ...'."""
        return ", ".join(f"{n} {p:.2f}" for _, n, p in self.top)


@dataclass
class PredictReport:
    """All predictions of a run and the inputs that could not be read."""

    predictions: List[ClassPrediction] = field(default_factory=list)
    failures: List[Failure] = field(default_factory=list)
    save_dir: Optional[Path] = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


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


def classify_frames(model: Union[nn.Module, Backend], frames: Sequence[Frame], imgsz: int, topk: int,
                    device: torch.device, half: bool = False) -> List[ClassPrediction]:
    """Top-k predictions for a batch of BGR frames (centre crop, resize, normalise, softmax)."""
    tf = eval_transform(imgsz)
    x = torch.stack([tf(Image.fromarray(np.ascontiguousarray(f.image[:, :, ::-1]))) for f in frames]).to(device)
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.float16,
                                         enabled=half and device.type == "cuda"):
        probs = model(x).float().softmax(1)
    k = min(topk, probs.shape[1])
    p, idx = probs.topk(k, dim=1)
    names = list(getattr(model, "names", []))
    out = []
    for f, pi, ii in zip(frames, p.tolist(), idx.tolist()):
        top = [(c, names[c] if c < len(names) else str(c), prob) for c, prob in zip(ii, pi)]
        out.append(ClassPrediction(path=f.path, top=top, frame=f.frame))
    return out


def predict_classifier(weights: Optional[PathLike] = None, source: SourceSpec = "",
                       model: Union[nn.Module, Backend, None] = None,
                       imgsz: int = 224, topk: int = 5, device: Union[str, torch.device] = "", half: bool = False,
                       save_dir: Optional[PathLike] = None, save_img: bool = True, save_txt: bool = False,
                       vid_stride: int = 1, verbose: bool = True) -> PredictReport:
    """Classify every image/frame of `source`; with save_dir, write annotated images/videos (and labels/*.txt)."""
    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    model, device = classifier_on_device(weights, model, device, "predict_classifier()")
    if isinstance(model, nn.Module):
        model.eval()
    imgsz = backend_imgsz(model, imgsz)
    src = resolve_source(source)
    report = PredictReport(save_dir=Path(save_dir) if save_dir is not None else None)
    out = OutputWriter(report.save_dir) if report.save_dir is not None else None
    try:
        for item in iter_frames(src, vid_stride):
            if isinstance(item, Failure):
                report.failures.append(item)
                LOGGER.warning(f"WARNING: {item.path}: {item.reason}, skipped")
                continue
            t0 = time_sync()
            pred = classify_frames(model, [item], imgsz, topk, device, half)[0]
            dt = (time_sync() - t0) * 1e3
            report.predictions.append(pred)
            if verbose:
                LOGGER.info(f"{describe(item, item.total)}: {item.image.shape[0]}x{item.image.shape[1]} "
                            f"{pred.text()}, {dt:.1f}ms")
            if out is not None:
                _save(out, item, pred, save_img, save_txt)
    finally:
        if out is not None:
            out.close()
    if verbose and report.save_dir is not None:
        LOGGER.info(f"Results saved to {report.save_dir}")
    return report


def _save(out: OutputWriter, frame: Frame, pred: ClassPrediction, save_img: bool, save_txt: bool) -> None:
    out.save_dir.mkdir(parents=True, exist_ok=True)
    stem = out.stem(frame)
    if save_txt:
        labels = out.save_dir / "labels"
        labels.mkdir(exist_ok=True)
        name = f"{stem}_{frame.frame}.txt" if frame.frame else f"{stem}.txt"
        (labels / name).write_text("".join(f"{p:.4f} {n}\n" for _, n, p in pred.top))
    if save_img:
        img = annotate(frame.image, pred)
        if frame.kind in ("video", "stream"):
            out.write_frame(frame, img)
        else:
            out.write_image(frame, img)


def parse_opt(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Classify images or videos with a trained classifier (top-k).")
    p.add_argument("--task", default="classify", choices=["classify"], help="classify (detect.py dispatches on it)")
    p.add_argument("--weights", type=str, required=True, help="classification checkpoint (train.py --task classify)")
    p.add_argument("--source", type=str, required=True, help="file, folder, glob, .txt list, video, webcam, URL")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=224, help="inference size (pixels)")
    p.add_argument("--topk", type=int, default=5, help="classes reported per image")
    p.add_argument("--device", default="", help="cuda device, i.e. 0 or cpu")
    p.add_argument("--half", action="store_true", help="FP16 inference (CUDA only)")
    p.add_argument("--nosave", action="store_true", help="do not save annotated images/videos")
    p.add_argument("--save-txt", action="store_true", help="save labels/<stem>.txt with 'prob name' lines")
    p.add_argument("--vid-stride", type=int, default=1, help="video frame-rate stride")
    add_run_folder_args(p, "runs/predict-cls")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    opt = parse_opt(argv)

    def job() -> int:  # CheckpointError, SourceError, bad --device, unwritable folder: exit 2
        save = not opt.nosave or opt.save_txt
        save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True) if save else None
        return predict_classifier(weights=opt.weights, source=opt.source, imgsz=opt.imgsz, topk=opt.topk,
                                  device=opt.device, half=opt.half, save_dir=save_dir, save_img=not opt.nosave,
                                  save_txt=opt.save_txt, vid_stride=opt.vid_stride).exit_code

    return run_cli(job)
