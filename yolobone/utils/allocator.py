"""glibc malloc settings for tensor work on CPU: freed buffers stay in the process for the next step.

PyTorch takes every CPU tensor from malloc. By default glibc serves large requests with fresh mmap()s and hands
memory at the top of the heap back to the kernel, so each training step maps its activations again and the kernel
zero-fills them page by page. With the settings below a training step reuses the previous step's buffers: far fewer
page faults and less system time (benchmarks/train_step.py measures a step; docs/training.md, Speed). The cost: the
process keeps its peak heap instead of returning it between steps.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Optional

from yolobone.utils.logging import LOGGER

# mallopt(3) parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2 ** 20  # the largest value glibc accepts on 64-bit; bigger tensors still get mmap()

_applied: Optional[bool] = None


def _glibc() -> Optional[ctypes.CDLL]:
    """The C library when it is glibc (mallopt and its parameter numbers are glibc's), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):  # musl and others have no gnu_get_libc_version
        return None


def keep_freed_memory() -> bool:
    """Serve tensors up to 32 MiB from the heap and never trim it; True when applied.

    Process-wide and one-way; applied once. YOLOBONE_MALLOC=default leaves glibc's own policy (for A/B checks).
    """
    global _applied
    if _applied is not None:
        return _applied
    libc = None if os.environ.get("YOLOBONE_MALLOC", "") == "default" else _glibc()
    # mallopt returns 1 on success; -1 for the trim threshold is "never trim" (mallopt(3))
    _applied = (bool(libc) and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
                and libc.mallopt(M_TRIM_THRESHOLD, -1) == 1)
    if libc and not _applied:
        LOGGER.info("malloc: glibc refused the heap-reuse settings; keeping its defaults")
    return _applied
