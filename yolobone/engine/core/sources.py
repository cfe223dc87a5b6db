"""Inference inputs: resolve a --source spec to files or a stream and read them as BGR frames.

A source is an image file, a folder (its files, not sub-folders), a glob, a .txt list of paths, a video file, a
webcam index or a stream URL that OpenCV opens, or in-memory images (numpy BGR arrays, PIL images). Reading never
stops on one bad input: an unreadable file yields a ``Failure`` (path + reason) and the next input is read.
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from yolobone.data.media import IMG_FORMATS, VID_FORMATS
from yolobone.utils.errors import YoloboneError

STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "tcp://", "udp://")
SourceItem = Union[str, os.PathLike, np.ndarray, "PIL.Image.Image"]  # noqa: F821  (PIL is optional here)
SourceSpec = Union[SourceItem, int, Sequence[SourceItem]]


class SourceError(YoloboneError, ValueError):
    """The source spec itself cannot be used (nothing found, bad option); individual bad files are Failures."""


@dataclass
class Frame:
    """One image to run the model on: a file, a video frame, a stream frame or an in-memory array."""

    path: str  # file path, stream name, or "image<i>" for arrays
    image: np.ndarray  # HWC uint8 BGR
    kind: str = "image"  # "image" | "video" | "stream" | "array"
    index: int = 0  # position among the source's files (or arrays)
    total: int = 1  # number of files in the source
    frame: int = 0  # 1-based frame number in a video or stream (0 for still images)
    frames: int = 0  # frames the video container declares (0 when unknown)
    fps: float = 0.0  # rate of the frames yielded (source fps / vid_stride)
    read_ms: float = 0.0  # time spent reading/decoding this frame

    @property
    def stem(self) -> str:
        return Path(self.path).stem if self.kind != "stream" else stream_stem(self.path)


@dataclass
class Failure:
    """An input that could not be read, and why."""

    path: str
    reason: str
    index: int = 0
    total: int = 1


@dataclass
class Source:
    """A resolved source: files to read (in order) or one stream, or arrays already in memory."""

    files: List[str] = field(default_factory=list)
    stream: Optional[Union[str, int]] = None
    arrays: List[np.ndarray] = field(default_factory=list)

    @property
    def is_stream(self) -> bool:
        return self.stream is not None

    def __len__(self) -> int:
        return 1 if self.is_stream else len(self.files) + len(self.arrays)


def stream_stem(name: str) -> str:
    """A file-name-safe stem for a webcam index or stream URL ("0" -> "webcam0")."""
    if name.isdigit():
        return f"webcam{name}"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.split("://", 1)[-1])
    return safe.strip("_")[:64] or "stream"


def _suffix(path: Union[str, Path]) -> str:
    return Path(path).suffix[1:].lower()


def _is_stream_spec(spec: str) -> bool:
    return spec.isdigit() or spec.lower().startswith(STREAM_PREFIXES)


def _folder_files(folder: Path) -> List[str]:
    """Files directly inside folder, sorted; hidden files (.DS_Store, ...) and sub-folders are not inputs."""
    return sorted(str(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _expand(spec: str, base: Optional[Path] = None) -> List[str]:
    """One path-like spec -> files; raises SourceError when it matches nothing."""
    p = Path(os.path.expanduser(spec))
    if base is not None and not p.is_absolute() and (base / p).exists():
        p = base / p
    if any(c in spec for c in "*?["):
        hits = sorted(f for f in glob.glob(str(p), recursive=True) if os.path.isfile(f))
        if not hits:
            raise SourceError(f"source {spec}: the glob matches no files")
        return hits
    if p.is_dir():
        return _folder_files(p)
    if p.is_file():
        if _suffix(p) == "txt":
            return _read_list(p)
        return [str(p)]
    raise SourceError(f"source {spec}: no such file, folder or glob match (nor a webcam index or stream URL)")


def _read_list(txt: Path) -> List[str]:
    """A .txt list: one image, video or folder per line (relative to the list's folder when it exists there,
    else to the cwd)."""
    files: List[str] = []
    for n, line in enumerate(txt.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line)
        if not p.is_absolute() and (txt.parent / p).exists():
            p = txt.parent / p
        if p.is_dir():
            files.extend(_folder_files(p))
        else:
            files.append(str(p))  # a missing entry becomes a Failure when read, so the rest still runs
    if not files:
        raise SourceError(f"source {txt}: the list has no paths")
    return files


def resolve_source(source: SourceSpec) -> Source:
    """Turn a --source value (or API input) into a Source; raises SourceError when nothing can be used."""
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return Source(stream=int(source))
    if isinstance(source, (str, os.PathLike)):
        spec = str(source).strip()
        if not spec:
            raise SourceError("the source is empty: give an image, folder, glob, .txt list, video, webcam index or URL")
        if _is_stream_spec(spec) and not Path(spec).exists():
            return Source(stream=int(spec) if spec.isdigit() else spec)
        files = _expand(spec)
        if not files:
            raise SourceError(f"source {spec}: the folder has no files")
        return Source(files=files)
    if _is_array_like(source):
        return Source(arrays=[_to_bgr(source, 0)])
    if isinstance(source, (list, tuple)):
        if not source:
            raise SourceError("no inputs given: the list is empty")
        out = Source()
        for i, item in enumerate(source):
            if _is_array_like(item):
                out.arrays.append(_to_bgr(item, i))
            elif isinstance(item, (str, os.PathLike)):
                if Path(item).exists() or any(c in str(item) for c in "*?["):
                    out.files.extend(_expand(str(item)))
                else:  # reported as a Failure when read, like a missing entry of a .txt list
                    out.files.append(str(item))
            else:
                raise SourceError(f"input {i}: expected a path, a numpy BGR image or a PIL image, "
                                  f"got {type(item).__name__}")
        if out.files and out.arrays:
            raise SourceError("inputs mix paths and in-memory images; pass one kind per call")
        return out
    raise SourceError(f"source: expected a path, glob, webcam index, URL, image array or a list of them, "
                      f"got {type(source).__name__}")


def _is_array_like(x: object) -> bool:
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("PIL.")


def _to_bgr(x: object, i: int) -> np.ndarray:
    """numpy arrays are taken as OpenCV BGR (HW, HWC with 1/3/4 channels); PIL images are RGB and converted."""
    if not isinstance(x, np.ndarray):  # PIL image
        x = np.asarray(x.convert("RGB"))[:, :, ::-1]
    if x.dtype != np.uint8:
        raise SourceError(f"input {i}: expected a uint8 image array, got dtype {x.dtype}")
    if x.ndim == 2:
        return cv2.cvtColor(x, cv2.COLOR_GRAY2BGR)
    if x.ndim == 3 and x.shape[2] == 4:
        return cv2.cvtColor(x, cv2.COLOR_BGRA2BGR)
    if x.ndim != 3 or x.shape[2] != 3 or min(x.shape[:2]) < 1:
        raise SourceError(f"input {i}: expected an (H, W, 3) BGR image array, got shape {tuple(x.shape)}")
    return np.ascontiguousarray(x)


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as HWC uint8 BGR; raises OSError/ValueError with the reason it cannot."""
    data = np.fromfile(str(path), dtype=np.uint8)  # bytes + imdecode also works for non-ASCII paths
    if data.size == 0:
        raise ValueError("empty file")
    im = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if im is None:
        raise ValueError(f"not a decodable image ({_suffix(path) or 'no suffix'} data is corrupt or unsupported)")
    return im


def iter_frames(source: Source, vid_stride: int = 1) -> Iterator[Union[Frame, Failure]]:
    """Yield every Frame of the source in order, and a Failure for each input that cannot be read."""
    if vid_stride < 1:
        raise SourceError(f"--vid-stride must be >= 1, got {vid_stride}")
    if source.is_stream:
        yield from _iter_capture(str(source.stream), source.stream, "stream", 0, 1, vid_stride)
        return
    total = len(source)
    for i, im in enumerate(source.arrays):
        yield Frame(f"image{i}", im, kind="array", index=i, total=total)
    for i, path in enumerate(source.files):
        suffix = _suffix(path)
        if suffix in VID_FORMATS:
            yield from _iter_capture(path, path, "video", i, total, vid_stride)
            continue
        if suffix not in IMG_FORMATS:
            yield Failure(path, f"not an image or video (suffix {suffix or 'none'!r}; images: "
                                f"{', '.join(IMG_FORMATS)}; videos: {', '.join(VID_FORMATS)})", i, total)
            continue
        t0 = time.perf_counter()
        try:
            im = read_image(path)
        except (OSError, ValueError, cv2.error) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[-1]
            yield Failure(path, f"unreadable image: {reason}", i, total)
            continue
        yield Frame(path, im, kind="image", index=i, total=total, read_ms=(time.perf_counter() - t0) * 1e3)


def input_sizes(source: Source, vid_stride: int = 1) -> List[Tuple[Tuple[int, int], int]]:
    """((h, w), inputs of that size) per file or array, read from image headers and video containers without
    decoding pixels; streams and unreadable files are left out (their size is not known in advance)."""
    from PIL import Image

    sizes = [((int(a.shape[0]), int(a.shape[1])), 1) for a in source.arrays if getattr(a, "ndim", 0) >= 2]
    for path in source.files:
        suffix = _suffix(path)
        if suffix in VID_FORMATS:
            cap = cv2.VideoCapture(path)
            try:
                n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
                h, w = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            finally:
                cap.release()
            if n > 0 and h > 0 and w > 0:
                sizes.append(((h, w), -(-n // vid_stride)))
        elif suffix in IMG_FORMATS:
            try:
                with Image.open(path) as im:
                    w, h = im.size  # EXIF rotation is ignored: a rotated photo only changes which shape it joins
            except (OSError, ValueError):
                continue
            sizes.append(((h, w), 1))
    return sizes


def _iter_capture(name: str, target: Union[str, int], kind: str, index: int, total: int,
                  vid_stride: int) -> Iterator[Union[Frame, Failure]]:
    """Frames of a video file or stream, keeping every vid_stride-th frame (the first one included)."""
    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        what = "video" if kind == "video" else "stream (webcam index or URL)"
        yield Failure(name, f"OpenCV cannot open this {what}", index, total)
        return
    try:
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "video" else 0
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = (fps if fps and np.isfinite(fps) and 0 < fps < 1000 else 30.0) / vid_stride
        n = 0
        while True:
            t0 = time.perf_counter()
            ok, im = cap.read()
            if not ok or im is None:
                break
            n += 1
            frame_no = (n - 1) * vid_stride + 1
            read_ms = (time.perf_counter() - t0) * 1e3
            yield Frame(name, im, kind=kind, index=index, total=total, frame=frame_no,
                        frames=max(declared, 0), fps=fps, read_ms=read_ms)
            for _ in range(vid_stride - 1):  # skipped frames are only grabbed, not decoded
                if not cap.grab():
                    return
        if n == 0:
            yield Failure(name, f"no frame could be decoded from this {kind}", index, total)
    finally:
        cap.release()


def batched(items: Iterator[Union[Frame, Failure]], batch_size: int
            ) -> Iterator[Union[List[Frame], Failure]]:
    """Group consecutive Frames into lists of up to batch_size; a Failure is passed on in order, alone."""
    if batch_size < 1:
        raise SourceError(f"--batch-size must be >= 1, got {batch_size}")
    batch: List[Frame] = []
    for item in items:
        if isinstance(item, Failure):
            if batch:
                yield batch
                batch = []
            yield item
            continue
        batch.append(item)
        if len(batch) == batch_size or item.kind == "stream":
            yield batch
            batch = []
    if batch:
        yield batch
