"""The detect.py run (the shared Predictor.run with detection's step): predict on a source, write annotated images/videos, label files and crops to runs/detect/exp*.

One log line per image or frame, a warning per unreadable input (the run goes on), a closing speed summary.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from yolobone.engine.core.predictor import OutputOptions, PredictReport, display_available
from yolobone.engine.core.sources import Source, SourceError, resolve_source
from yolobone.engine.detect.predictor import Detector, ImgSize
from yolobone.utils.logging import LOGGER
from yolobone.utils.paths import increment_path


@dataclass
class DetectConfig:
    """detect.py options (YOLOv5 v7.0 names and defaults)."""

    weights: Union[str, os.PathLike]
    source: Union[str, int, os.PathLike]
    imgsz: ImgSize = 640
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 1000
    device: str = ""
    view_img: bool = False
    save_txt: bool = False
    save_conf: bool = False
    save_crop: bool = False
    nosave: bool = False
    classes: Optional[Sequence[int]] = None
    agnostic_nms: bool = False
    project: Union[str, os.PathLike] = "runs/detect"
    name: str = "exp"
    exist_ok: bool = False
    line_thickness: int = 3
    hide_labels: bool = False
    hide_conf: bool = False
    half: bool = False
    vid_stride: int = 1
    batch_size: int = 1
    compile: str = "auto"  # torch.compile the .pt model for the most common input shape (yolobone/engine/backends/compiled.py)


def run_detect(cfg: DetectConfig, detector: Optional[Detector] = None) -> PredictReport:
    """Run detection as detect.py does; bad weights/source/options raise ValueError subclasses before any output."""
    if cfg.vid_stride < 1:
        raise SourceError(f"--vid-stride must be >= 1, got {cfg.vid_stride}")
    if cfg.batch_size < 1:
        raise SourceError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    source: Source = resolve_source(cfg.source)  # before loading weights: a wrong path fails at once
    det = detector or Detector(cfg.weights, device=cfg.device, half=cfg.half, compile=cfg.compile)
    opts = det.options(cfg.conf_thres, cfg.iou_thres, cfg.imgsz, cfg.classes, cfg.agnostic_nms, cfg.max_det)
    if det.backend.can_compile and not source.is_stream and \
            det.backend.plan_compile(*det.main_input_shape(source, opts, cfg.batch_size, cfg.vid_stride)):
        det.backend.warmup(opts.imgsz)  # compile now, so the first image's inference time does not include it
    view = cfg.view_img and display_available()
    if cfg.view_img and not view:
        LOGGER.warning("WARNING: --view-img needs a display (OpenCV GUI build and $DISPLAY); not showing results")
    save_dir = increment_path(Path(cfg.project) / cfg.name, exist_ok=cfg.exist_ok, mkdir=True)
    if cfg.save_txt:
        (save_dir / "labels").mkdir(parents=True, exist_ok=True)
    style = dict(line_thickness=cfg.line_thickness, hide_labels=cfg.hide_labels, hide_conf=cfg.hide_conf)
    out = OutputOptions(save_dir=save_dir, save_img=not cfg.nosave, save_txt=cfg.save_txt, save_conf=cfg.save_conf,
                        save_crop=cfg.save_crop, view=view, style=style)
    return det.run(source, opts, out, batch_size=cfg.batch_size, vid_stride=cfg.vid_stride)
