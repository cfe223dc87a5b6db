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
from yolobone.engine.backends.compiled import compile_option
from yolobone.utils.logging import LOGGER
from yolobone.utils.options import at_least, between, check_options, one_of, option
from yolobone.utils.paths import increment_path


@dataclass
class DetectConfig:
    """detect.py's options (YOLOv5 v7.0 names and defaults), each declared once: the parser is generated from them."""

    weights: Union[str, os.PathLike] = option("", "checkpoint path (a train.py best.pt or last.pt) or an exported "
                                                  "model", required=True)
    source: Union[str, int, os.PathLike] = option("", "file, folder, glob, .txt list of paths, video, webcam index "
                                                      "or stream URL", required=True)
    imgsz: ImgSize = option(640, "inference size: one value (square limit) or h w", aliases=("--img", "--img-size"),
                            nargs="+", type=int)
    conf_thres: float = option(0.25, "confidence threshold", check=between(0.0, 1.0))
    iou_thres: float = option(0.45, "NMS IoU threshold", check=between(0.0, 1.0))
    max_det: int = option(1000, "maximum detections per image", check=at_least(1))
    device: str = option("", "cuda device, i.e. 0 or 0,1,2,3 or cpu")
    view_img: bool = option(False, "show results (needs a display)")
    save_txt: bool = option(False, "save results to labels/*.txt (YOLO format)")
    save_conf: bool = option(False, "add confidences to --save-txt labels")
    save_crop: bool = option(False, "save cropped boxes to crops/<class>/")
    nosave: bool = option(False, "do not save annotated images/videos")
    classes: Optional[Sequence[int]] = option(None, "filter by class: --classes 0, or --classes 0 2 3")
    agnostic_nms: bool = option(False, "class-agnostic NMS")
    project: Union[str, os.PathLike] = option("runs/detect", "save to project/name")
    name: str = option("exp", "save to project/name")
    exist_ok: bool = option(False, "existing project/name ok, do not increment")
    line_thickness: int = option(3, "bounding box thickness (pixels)")
    hide_labels: bool = option(False, "hide labels")
    hide_conf: bool = option(False, "hide confidences")
    half: bool = option(False, "FP16 half-precision inference (CUDA only)")
    vid_stride: int = option(1, "video frame-rate stride", check=at_least(1))
    batch_size: int = option(1, "images per forward pass for folders and lists", check=at_least(1))
    compile: str = compile_option()
    task: str = option("detect", "what to run: detect, or classify (top-k classes with a classifier checkpoint; "
                                 "detect.py --task classify --help lists its flags)", choices=("detect", "classify"),
                       check=one_of(("detect",)))


def run_detect(cfg: DetectConfig, detector: Optional[Detector] = None) -> PredictReport:
    """Run detection as detect.py does; bad weights/source/options raise ValueError subclasses before any output."""
    check_options(cfg, SourceError)
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
