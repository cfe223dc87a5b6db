"""ClassPrediction: the top-k classes of one image or video frame (the mirror of engine/detect/results.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple


@dataclass
class ClassPrediction:
    """Top-k classes of one image (or video frame), most probable first."""

    path: str
    top: List[Tuple[int, str, float]]  # (class id, class name, probability)
    frame: int = 0  # 1-based video frame number, 0 for still images
    speed: Dict[str, float] = field(default_factory=dict)  # ms per image: read, preprocess, inference, postprocess

    @property
    def cls(self) -> int:
        return self.top[0][0]

    @property
    def name(self) -> str:
        return self.top[0][1]

    @property
    def prob(self) -> float:
        return self.top[0][2]

    def text(self) -> str:
        """'circle 0.91, ring 0.05, ...'."""
        return ", ".join(f"{n} {p:.2f}" for _, n, p in self.top)
