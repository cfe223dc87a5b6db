"""Image sizes rounded to a model's stride: the one rule train, val, predict and export share."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

from yolobone.utils.logging import LOGGER

ImgSize = Union[int, Sequence[int]]


def stride_multiple(imgsz: ImgSize, stride: int) -> Union[int, Tuple[int, ...]]:
    """imgsz (one size, or (h, w)) rounded up to multiples of stride and at least stride, in the same form;
    a warning names the change."""
    sizes = (int(imgsz),) if isinstance(imgsz, (int, float)) or hasattr(imgsz, "__index__") \
        else tuple(int(s) for s in imgsz)
    fixed = tuple(max(-(-s // stride) * stride, stride) for s in sizes)
    if fixed != sizes:
        shown = (lambda v: v[0] if len(v) == 1 else list(v))
        LOGGER.warning(f"WARNING: --imgsz {shown(sizes)} must be a multiple of the max stride {stride}, "
                       f"using {shown(fixed)}")
    return fixed[0] if len(fixed) == 1 and not isinstance(imgsz, (list, tuple)) else fixed
