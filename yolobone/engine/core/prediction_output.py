"""Where a prediction run (detection or classification) writes: unique output names, images, videos; log wording."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

from yolobone.engine.core.sources import stream_stem

FOURCC = "mp4v"


class OutputWriter:
    """Output files of a prediction run: names per input (unique within the run), images, and the open video writer.

    Inputs are anything with `index`, `path`, `kind` and `fps` (the loop passes each result's sources.Frame)."""

    def __init__(self, save_dir: Path):
        self.save_dir = save_dir
        self.stems: Dict[Tuple[int, str], str] = {}
        self.taken: set = set()
        self.writer: Optional[cv2.VideoWriter] = None
        self.writer_key: Optional[Tuple[int, str]] = None

    def stem(self, r: Any) -> str:
        """Stem for this input's outputs; a second input with the same stem gets stem_2, stem_3, ..."""
        key = (r.index, r.path)
        if key not in self.stems:
            base = stream_stem(r.path) if r.kind == "stream" else Path(r.path).stem
            stem, n = base, 2
            while stem in self.taken:
                stem, n = f"{base}_{n}", n + 1
            self.taken.add(stem)
            self.stems[key] = stem
        return self.stems[key]

    def write_image(self, r: Any, im: np.ndarray) -> Path:
        suffix = Path(r.path).suffix.lower() if r.kind == "image" else ".jpg"
        path = self.save_dir / f"{self.stem(r)}{suffix}"
        try:
            ok = cv2.imwrite(str(path), im)
        except cv2.error:
            ok = False
        if not ok:  # formats OpenCV reads but cannot write (dng, mpo, ...) are saved as JPEG
            path = path.with_suffix(".jpg")
            if not cv2.imwrite(str(path), im):
                raise OSError(f"{path}: OpenCV could not write the annotated image")
        return path

    def write_frame(self, r: Any, im: np.ndarray) -> None:
        key = (r.index, r.path)
        if key != self.writer_key:
            self.close()
            path = self.save_dir / f"{self.stem(r)}.mp4"
            h, w = im.shape[:2]
            self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), r.fps or 30.0, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"{path}: OpenCV could not open a {FOURCC} video writer")
            self.writer_key = key
        self.writer.write(im)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        self.writer, self.writer_key = None, None


def describe(r: Any, total: int) -> str:
    """'image 3/8 path', 'video 1/2 (17/300) path' or 'stream name (frame 5)' for log lines."""
    if r.kind == "video":
        return f"video {r.index + 1}/{total} ({r.frame}/{r.frames or '?'}) {r.path}"
    if r.kind == "stream":
        return f"stream {r.path} (frame {r.frame})"
    return f"image {r.index + 1}/{total} {r.path}"
