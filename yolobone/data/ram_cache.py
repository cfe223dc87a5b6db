"""Whether a dataset's resized images fit in RAM: the `--cache auto` decision."""
from __future__ import annotations

from typing import Optional

RAM_CACHE_FRACTION = 0.25  # cache only when the resized images take at most this share of available memory


def available_memory() -> int:
    """Bytes of memory available to new allocations (Linux /proc/meminfo; 0 when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def resolve_cache(cache: Optional[str], n_images: int, imgsz: int, available_bytes: Optional[int] = None
                  ) -> Optional[str]:
    """'auto' -> 'ram' when n_images at imgsz (long side, uint8, 3 channels) fit in RAM_CACHE_FRACTION of the
    available memory, else None; any other value is returned unchanged."""
    if cache != "auto":
        return cache
    need = n_images * imgsz * imgsz * 3
    free = available_memory() if available_bytes is None else available_bytes
    return "ram" if free and need <= RAM_CACHE_FRACTION * free else None
