"""Image and video file suffixes accepted by the loaders (YOLOv5's lists)."""
from __future__ import annotations

from pathlib import Path
from typing import Union

IMG_FORMATS = ("bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm")
VID_FORMATS = ("asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv")


def is_image(path: Union[str, Path]) -> bool:
    return Path(path).suffix[1:].lower() in IMG_FORMATS


def is_video(path: Union[str, Path]) -> bool:
    return Path(path).suffix[1:].lower() in VID_FORMATS
