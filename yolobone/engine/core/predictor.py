"""The prediction loop every task runs: sources -> preprocess -> forward -> postprocess -> results, timed, then written.

A task hands a PredictStep (detection: letterbox, NMS, box scaling, boxes drawn; classification: centre crop,
softmax top-k, labels drawn). ``Predictor.stream`` yields its results per image or video frame (a ``Failure`` for
an unreadable input); ``Predictor.run`` is what detect.py does with them: label files, annotated images/videos,
crops, a window, one log line per frame and a closing speed summary.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from yolobone.engine.core.prediction_output import OutputWriter, describe
from yolobone.engine.core.sources import Failure, Frame, Source, SourceError, SourceSpec, batched, iter_frames, resolve_source
from yolobone.utils.errors import YoloboneError
from yolobone.utils.logging import LOGGER
from yolobone.utils.torch_utils import time_sync

STAGES = ("read", "preprocess", "inference", "postprocess", "write")


class InputReadError(YoloboneError, ValueError):
    """An input given to a predictor's predict() could not be read (path + reason)."""


class PredictStep:
    """One task's part of prediction; `opts` is the task's own options object (thresholds, image size, top-k)."""

    postprocess_name = "post-process"  # how the speed summary names the third stage
    device: torch.device

    def preprocess(self, images: Sequence[np.ndarray], opts: Any) -> Tuple[torch.Tensor, Any]:
        """(the network input for these BGR images, whatever postprocess() needs to map outputs back)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> Any:
        raise NotImplementedError

    def postprocess(self, raw: Any, x: torch.Tensor, context: Any, frames: Sequence[Frame], opts: Any) -> List[Any]:
        """One result per frame (each with a `speed` dict the loop fills)."""
        raise NotImplementedError

    def input_shape(self, opts: Any) -> Tuple[int, int]:
        """(h, w) of the network input, for the speed summary."""
        raise NotImplementedError

    def describe(self, result: Any, frame: Frame) -> str:
        """'HxW what was found' for the per-frame log line."""
        raise NotImplementedError

    def label_lines(self, result: Any, save_conf: bool) -> List[str]:
        """Rows of the labels/<stem>.txt file."""
        raise NotImplementedError

    def draw(self, result: Any, frame: Frame, style: Dict[str, Any]) -> np.ndarray:
        """An annotated BGR copy of the frame's image."""
        raise NotImplementedError

    def save_crops(self, result: Any, folder: Path, stem: str) -> None:
        raise SourceError("crops: this task has no boxes to crop")


@dataclass
class OutputOptions:
    """What a run writes and shows (detect.py's flags); save_dir None writes nothing."""

    save_dir: Optional[Path] = None
    save_img: bool = True
    save_txt: bool = False
    save_conf: bool = False
    save_crop: bool = False
    view: bool = False
    style: Dict[str, Any] = field(default_factory=dict)  # passed to PredictStep.draw (line width, hide labels)
    verbose: bool = True
    collect: bool = False  # keep every result in the report (not for long videos: results may hold images)


@dataclass
class PredictReport:
    """What a run did: where it wrote, how many frames, which inputs failed, and ms per image per stage."""

    save_dir: Optional[Path] = None
    results: List[Any] = field(default_factory=list)  # with OutputOptions.collect
    frames: int = 0
    inputs: int = 0
    failures: List[Failure] = field(default_factory=list)
    speed: Dict[str, float] = field(default_factory=dict)  # read, preprocess, inference, postprocess, write
    labels_saved: int = 0
    wall_s: float = 0.0
    shape: Tuple[int, int, int, int] = (1, 3, 640, 640)

    @property
    def predictions(self) -> List[Any]:
        return self.results

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


class Predictor:
    """A task's PredictStep driven over any source; detection's Detector and classification's Classifier are these."""

    def __init__(self, step: PredictStep):
        self.step = step
        self._warm = step.device.type != "cuda"  # only CUDA needs a warm-up before timing means anything

    def predict_frames(self, frames: Sequence[Frame], opts: Any) -> List[Any]:
        """Results for one batch of frames, each with its ms per image per stage."""
        t0 = time_sync()
        x, context = self.step.preprocess([f.image for f in frames], opts)
        t1 = time_sync()
        with torch.no_grad():
            if not self._warm:
                self.step.forward(torch.zeros_like(x))
                self._warm = True
            raw = self.step.forward(x)
        t2 = time_sync()
        results = self.step.postprocess(raw, x, context, frames, opts)
        t3 = time_sync()
        n = len(frames)
        speed = {"preprocess": (t1 - t0) * 1e3 / n, "inference": (t2 - t1) * 1e3 / n,
                 "postprocess": (t3 - t2) * 1e3 / n}
        for f, r in zip(frames, results):
            r.speed = {"read": f.read_ms, **speed}
        return results

    def batches(self, source: Union[SourceSpec, Source], opts: Any, batch_size: int = 1, vid_stride: int = 1
                ) -> Iterator[Union[Tuple[List[Frame], List[Any]], Failure]]:
        """(frames, their results) per batch, and a Failure (path + reason) for each unreadable input."""
        src = source if isinstance(source, Source) else resolve_source(source)
        for item in batched(iter_frames(src, vid_stride), batch_size):
            yield item if isinstance(item, Failure) else (item, self.predict_frames(item, opts))

    def stream(self, source: Union[SourceSpec, Source], opts: Any, batch_size: int = 1, vid_stride: int = 1
               ) -> Iterator[Any]:
        """A result per image or video frame, and a Failure (path + reason) for each unreadable input."""
        for item in self.batches(source, opts, batch_size, vid_stride):
            if isinstance(item, Failure):
                yield item
            else:
                yield from item[1]

    def collect(self, source: Union[SourceSpec, Source], opts: Any, batch_size: int = 1, vid_stride: int = 1,
                skip_failed: bool = False, error: type = InputReadError) -> List[Any]:
        """Every result in a list; an unreadable input raises `error` unless skip_failed, which logs it and goes on."""
        results = []
        for item in self.stream(source, opts, batch_size, vid_stride):
            if isinstance(item, Failure):
                if not skip_failed:
                    raise error(f"{item.path}: {item.reason}")
                LOGGER.warning(f"WARNING: {item.path}: skipped, {item.reason}")
                continue
            results.append(item)
        return results

    def run(self, source: Union[SourceSpec, Source], opts: Any, out: OutputOptions, batch_size: int = 1,
            vid_stride: int = 1) -> PredictReport:
        """Predict on every input, writing and logging what `out` asks; unreadable inputs are logged and skipped."""
        src = source if isinstance(source, Source) else resolve_source(source)
        batch_size = 1 if src.is_stream else batch_size
        report = PredictReport(save_dir=out.save_dir, inputs=len(src),
                               shape=(batch_size, 3, *self.step.input_shape(opts)))
        totals = dict.fromkeys(STAGES, 0.0)
        writer = None
        if out.save_dir is not None:
            out.save_dir.mkdir(parents=True, exist_ok=True)
            writer = OutputWriter(out.save_dir)
        t_start = time.perf_counter()
        try:
            for item in self.batches(src, opts, batch_size, vid_stride):
                if isinstance(item, Failure):
                    LOGGER.warning(f"WARNING: {item.index + 1}/{item.total} {item.path}: skipped, {item.reason}")
                    report.failures.append(item)
                    continue
                for f, r in zip(*item):
                    self._handle(f, r, out, writer, report, totals)
        except KeyboardInterrupt:
            if not src.is_stream:
                raise
            LOGGER.info("Stream stopped (Ctrl+C)")
        finally:
            if writer is not None:
                writer.close()
            if out.view:
                cv2.destroyAllWindows()
        report.wall_s = time.perf_counter() - t_start
        report.speed = {k: v / max(report.frames, 1) for k, v in totals.items()}
        if out.verbose:
            self._log_summary(out, report)
        return report

    def _handle(self, f: Frame, r: Any, out: OutputOptions, writer: Optional[OutputWriter], report: PredictReport,
                totals: Dict[str, float]) -> None:
        """Write, show, log and count one result."""
        t0 = time.perf_counter()
        if writer is not None or out.view:
            self._save(f, r, out, writer, report)
        totals["write"] += (time.perf_counter() - t0) * 1e3
        for k in STAGES[:-1]:
            totals[k] += r.speed.get(k, 0.0)
        report.frames += 1
        if out.collect:
            report.results.append(r)
        if out.verbose:
            LOGGER.info(f"{describe(f, report.inputs)}: {self.step.describe(r, f)}, {r.speed['inference']:.1f}ms")

    def _save(self, f: Frame, r: Any, out: OutputOptions, writer: Optional[OutputWriter],
              report: PredictReport) -> None:
        """What the options ask for: label file, crops, annotated image or video frame; a window when viewing."""
        if writer is not None:
            stem = writer.stem(f)
            frame_stem = f"{stem}_{f.frame}" if f.kind in ("video", "stream") else stem
            if out.save_txt:
                path = writer.save_dir / "labels" / f"{frame_stem}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(line + "\n" for line in self.step.label_lines(r, out.save_conf)))
                report.labels_saved += 1
            if out.save_crop:
                self.step.save_crops(r, writer.save_dir / "crops", frame_stem)
        save_img = writer is not None and out.save_img
        if not (save_img or out.view):
            return
        im = self.step.draw(r, f, out.style)
        if out.view:
            cv2.imshow(str(f.path), im)
            cv2.waitKey(1)
        if save_img:
            (writer.write_frame if f.kind in ("video", "stream") else writer.write_image)(f, im)

    def _log_summary(self, out: OutputOptions, report: PredictReport) -> None:
        s = report.speed
        LOGGER.info(f"Speed: {s['preprocess']:.1f}ms pre-process, {s['inference']:.1f}ms inference, "
                    f"{s['postprocess']:.1f}ms {self.step.postprocess_name} per image at shape {report.shape}")
        if report.save_dir is not None and (out.save_img or out.save_txt or out.save_crop):
            extra = f", {report.labels_saved} labels saved to {report.save_dir / 'labels'}" if out.save_txt else ""
            LOGGER.info(f"Results saved to {report.save_dir}{extra}")
        if report.failures:
            LOGGER.warning(f"WARNING: {len(report.failures)} of {report.inputs} inputs could not be read and were "
                           f"skipped (listed above)")
