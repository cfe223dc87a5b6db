"""DetectOptions: train.py's detection flags as typed fields, on top of the shared RunOptions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Collection, Dict, List, Optional, Union

from yolobone.engine.core.options import RunOptions, TrainConfigError

DEFAULT_DATA = "configs/data/shapes.yaml"
DEFAULT_HYP = "configs/hyp/hyp.scratch-low.yaml"  # anchor-based (YOLOv5) heads
ANCHOR_FREE_HYP = "configs/hyp/hyp.ultralytics.yaml"  # anchor-free heads (YOLOv8 / YOLO11 / YOLOv5u)
ANCHOR_FREE_CLOSE_MOSAIC = 10  # Ultralytics' default close_mosaic


@dataclass
class DetectOptions(RunOptions):
    """train.py's options for --task detect (field = flag with dashes as underscores)."""

    data: str = DEFAULT_DATA  # data YAML, or a built-in name ('shapes')
    cfg: str = ""  # model YAML ('' = the one stored in --weights)
    backbone: str = ""  # replace cfg's backbone: a name in configs/backbones/ or a backbone YAML (yolobone/models/compose.py)
    hyp: Union[str, dict] = ""  # hyperparameter YAML or dict ('': DEFAULT_HYP, or ANCHOR_FREE_HYP for those heads)
    rect: bool = False  # rectangular training batches
    noautoanchor: bool = False
    cache: Optional[str] = None  # 'ram', 'disk' or 'auto' (RAM when it fits; the default with speed-ups on)
    image_weights: bool = False  # sample images by their classes' current mAP
    multi_scale: bool = False  # vary the image size +/- 50% per batch
    # train the last N epochs without mosaic (single letterboxed images, as val sees them); None: 10 for anchor-free
    # heads, else 0
    close_mosaic: Optional[int] = None
    optimizer: str = ""  # as RunOptions; '' = auto for anchor-free heads, SGD for anchor-based ones
    single_cls: bool = False  # train every class as one
    freeze: List[Union[int, str]] = field(default_factory=lambda: [0])  # N, layer indices, or 'backbone'
    task: str = "detect"

    MIN_IMGSZ: ClassVar[int] = 32
    IGNORED: ClassVar[Collection[str]] = ()

    def check(self) -> None:
        super().check()
        if self.task != "detect":
            raise TrainConfigError(f"--task {self.task!r}: these are detection options (--task detect)")
        if self.close_mosaic is not None and self.close_mosaic < 0:
            raise TrainConfigError(f"--close-mosaic must be >= 0, got {self.close_mosaic}")
        if self.cache not in (None, "ram", "disk", "auto"):
            raise TrainConfigError(f"--cache {self.cache!r}: expected 'ram', 'disk' or 'auto'")
        if not isinstance(self.freeze, (list, tuple)):
            self.freeze = [self.freeze]
        self.freeze = [int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v for v in self.freeze]
        bad = [v for v in self.freeze if not (isinstance(v, int) and v >= 0) and v != "backbone"]
        if bad:
            raise TrainConfigError(f"--freeze {bad[0]!r}: expected a layer count N, layer indices, or 'backbone'")

    def to_dict(self) -> Dict[str, Any]:
        d = super().to_dict()
        d["freeze"] = list(d["freeze"])
        return d
