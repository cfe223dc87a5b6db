"""The detect.py run: predict on a source, write annotated images/videos, label files and crops to runs/detect/exp*.

One log line per image or frame, a warning per unreadable input (the run goes on), a closing speed summary.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2

from engine.core.prediction_output import OutputWriter, describe
from engine.core.sources import Failure, Source, SourceError, resolve_source
from engine.detect.predictor import Detector, ImgSize
from engine.detect.results import Result
from utils.logging import LOGGER
from utils.paths import increment_path



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


@dataclass
class DetectReport:
    """What a run did: where it wrote, how many frames, which inputs failed, and ms per image per stage."""

    save_dir: Path
    frames: int = 0
    inputs: int = 0
    failures: List[Failure] = field(default_factory=list)
    speed: Dict[str, float] = field(default_factory=dict)  # read, preprocess, inference, nms, write (ms/image)
    labels_saved: int = 0
    wall_s: float = 0.0
    shape: Tuple[int, int, int, int] = (1, 3, 640, 640)

    @property
    def exit_code(self) -> int:
        """0 when every input was read, 1 when some were skipped."""
        return 1 if self.failures else 0


def display_available() -> bool:
    """True when OpenCV was built with a GUI and (on Linux) an X11/Wayland display is set."""
    gui = next((line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
                if line.strip().startswith("GUI:")), "NONE")
    if gui.upper() == "NONE":
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def run_detect(cfg: DetectConfig, detector: Optional[Detector] = None) -> DetectReport:
    """Run detection as detect.py does; bad weights/source/options raise ValueError subclasses before any output."""
    if cfg.vid_stride < 1:
        raise SourceError(f"--vid-stride must be >= 1, got {cfg.vid_stride}")
    if cfg.batch_size < 1:
        raise SourceError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    source: Source = resolve_source(cfg.source)  # before loading weights: a wrong path fails at once
    det = detector or Detector(cfg.weights, device=cfg.device, half=cfg.half)
    opts = det.options(cfg.conf_thres, cfg.iou_thres, cfg.imgsz, cfg.classes, cfg.agnostic_nms, cfg.max_det)
    batch_size = 1 if source.is_stream else cfg.batch_size
    view = cfg.view_img and display_available()
    if cfg.view_img and not view:
        LOGGER.warning("WARNING: --view-img needs a display (OpenCV GUI build and $DISPLAY); not showing results")

    save_dir = increment_path(Path(cfg.project) / cfg.name, exist_ok=cfg.exist_ok, mkdir=True)
    labels_dir, crops_dir = save_dir / "labels", save_dir / "crops"
    if cfg.save_txt:
        labels_dir.mkdir(parents=True, exist_ok=True)
    report = DetectReport(save_dir=save_dir, inputs=len(source), shape=(batch_size, 3, *opts.imgsz))
    totals = dict.fromkeys(("read", "preprocess", "inference", "nms", "write"), 0.0)
    outputs = OutputWriter(save_dir)
    t_start = time.perf_counter()
    items = det.stream(source, opts, batch_size=batch_size, vid_stride=cfg.vid_stride)
    try:
        for r in items:
            if isinstance(r, Failure):
                LOGGER.warning(f"WARNING: {r.index + 1}/{r.total} {r.path}: skipped, {r.reason}")
                report.failures.append(r)
                continue
            t0 = time.perf_counter()
            _save(r, cfg, outputs, labels_dir, crops_dir, view, report)
            write_ms = (time.perf_counter() - t0) * 1e3
            report.frames += 1
            for k in ("read", "preprocess", "inference", "nms"):
                totals[k] += r.speed.get(k, 0.0)
            totals["write"] += write_ms
            h, w = r.input_shape
            LOGGER.info(f"{describe(r, len(source))}: {h}x{w} {r.summary()}, "
                        f"{r.speed['inference']:.1f}ms")
    except KeyboardInterrupt:
        if not source.is_stream:
            raise
        LOGGER.info("Stream stopped (Ctrl+C)")
    finally:
        outputs.close()
        if view:
            cv2.destroyAllWindows()
    report.wall_s = time.perf_counter() - t_start
    report.speed = {k: v / max(report.frames, 1) for k, v in totals.items()}
    _log_summary(cfg, report)
    return report


def _save(r: Result, cfg: DetectConfig, out: OutputWriter, labels_dir: Path, crops_dir: Path, view: bool,
          report: DetectReport) -> None:
    """Write what the options ask for: annotated image/video frame, label file, crops; show it when viewing."""
    stem = out.stem(r)
    frame_stem = f"{stem}_{r.frame}" if r.kind in ("video", "stream") else stem
    if cfg.save_txt:
        r.save_txt(labels_dir / f"{frame_stem}.txt", save_conf=cfg.save_conf)
        report.labels_saved += 1
    if cfg.save_crop and len(r):
        r.save_crops(crops_dir, stem=frame_stem)
    if cfg.nosave and not view:
        return
    im = r.plot(line_thickness=cfg.line_thickness, hide_labels=cfg.hide_labels, hide_conf=cfg.hide_conf)
    if view:
        cv2.imshow(str(r.path), im)
        cv2.waitKey(1)
    if cfg.nosave:
        return
    if r.kind in ("video", "stream"):
        out.write_frame(r, im)
    else:
        out.write_image(r, im)


def _log_summary(cfg: DetectConfig, report: DetectReport) -> None:
    s = report.speed
    LOGGER.info(f"Speed: {s['preprocess']:.1f}ms pre-process, {s['inference']:.1f}ms inference, {s['nms']:.1f}ms NMS "
                f"per image at shape {report.shape}")
    if cfg.save_txt or not cfg.nosave or cfg.save_crop:
        extra = f", {report.labels_saved} labels saved to {report.save_dir / 'labels'}" if cfg.save_txt else ""
        LOGGER.info(f"Results saved to {report.save_dir}{extra}")
    if report.failures:
        LOGGER.warning(f"WARNING: {len(report.failures)} of {report.inputs} inputs could not be read and were "
                       f"skipped (listed above)")
