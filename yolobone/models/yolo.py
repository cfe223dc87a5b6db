"""DetectionModel: a YOLOv5-style detector built from a model YAML.

    python yolobone/models/yolo.py --cfg configs/yolov5s.yaml [--backbone resnet50] [--nc N] [--imgsz 640]
prints the layer table and the summary line (after the composed YAML when the model is composed from a neck and a
backbone file); a bad YAML exits with code 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from yolobone.models.backbones.pretrained import no_pretrained
from yolobone.models.base import YAMLModel
from yolobone.models.heads import Detect
from yolobone.models.heads_af import DetectAF
from yolobone.models.parse import ModelSpec
from yolobone.models.registry import ModelConfigError
from yolobone.utils.logging import LOGGER


DetectHead = Union[Detect, DetectAF]


class DetectionModel(YAMLModel):
    """YAML layers ending in a Detect head (YOLOv5's anchor-based one or the anchor-free DetectAF); strides measured
    by a dry forward pass at build time."""

    def __init__(self, cfg: Union[str, Path, Dict[str, Any], ModelSpec] = "configs/yolov5s.yaml", ch: int = 3,
                 nc: Optional[int] = None, anchors: Optional[Any] = None, probe_size: Optional[int] = None):
        if anchors is not None:
            from yolobone.models.parse import load_model_yaml
            cfg = load_model_yaml(cfg)
            cfg.data["anchors"] = anchors
        super().__init__(cfg, ch=ch, nc=nc)
        if probe_size is not None:
            self.yaml["probe_size"] = int(probe_size)
        head = self.model[-1]
        if not isinstance(head, (Detect, DetectAF)):
            raise ModelConfigError(f"{self.yaml_file}: the last layer must be Detect for a detection model, "
                                   f"got {type(head).__name__}")
        self._init_strides(head)
        head.initialize_biases()

    @property
    def detect(self) -> DetectHead:
        return self.model[-1]

    @property
    def anchor_free(self) -> bool:
        """True for the anchor-free head (no objectness in its decoded output)."""
        return self.detect.anchor_free

    @property
    def stride(self) -> torch.Tensor:
        return self.detect.stride

    def _init_strides(self, head: DetectHead) -> None:
        s = self.probe_size
        head.inplace = bool(self.yaml.get("inplace", True))
        outputs = self.dry_run(s)[1]  # eval mode: (decoded, raw maps); only the map sizes matter here
        sizes = [tuple(o.shape[2:4]) for o in outputs]  # raw maps are (B, na, H, W, no) or (B, no, H, W)
        strides = [s / h for h, _ in sizes]
        for level, (h, w) in enumerate(sizes):
            if s % h or h != w:
                raise ModelConfigError(f"{self.yaml_file}: Detect input {level} has size {(h, w)} for a "
                                       f"{s}x{s} probe, not an integer stride; set probe_size to a multiple of "
                                       f"the largest stride")
        head.stride = torch.tensor(strides, dtype=torch.float32)
        if any(b <= a for a, b in zip(strides, strides[1:])):
            raise ModelConfigError(f"{self.yaml_file}: Detect inputs must have increasing strides (P3, P4, P5 ...), "
                                   f"measured {strides}")
        if head.anchor_free:
            head.reset_grids()
            return
        _check_anchor_order(head)
        head.anchors /= head.stride.view(-1, 1, 1)  # pixels -> grid units
        head.reset_grids()


def _check_anchor_order(head: Detect) -> None:
    """Anchors must grow with stride (YOLOv5 flips them when written in the opposite order)."""
    area = head.anchors.prod(-1).mean(-1).view(-1)
    da, ds = area[-1] - area[0], head.stride[-1] - head.stride[0]
    if da and (da.sign() != ds.sign()):
        LOGGER.info("AutoAnchor: reversing anchor order to match increasing strides")
        head.anchors[:] = head.anchors.flip(0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Build a model YAML and print its layer table and summary.")
    parser.add_argument("--cfg", type=str, default="configs/yolov5s.yaml", help="model YAML")
    parser.add_argument("--backbone", type=str, default="",
                        help="replace the backbone of --cfg: a name in configs/backbones/ or a backbone YAML file")
    parser.add_argument("--nc", type=int, default=None, help="override the number of classes")
    parser.add_argument("--imgsz", type=int, default=640, help="image size for GFLOPs")
    parser.add_argument("--summary", action="store_true", help="torchsummary-style table (layer, output shape, "
                                                               "parameters, memory)")
    opt = parser.parse_args(argv)
    try:
        with no_pretrained():  # the layer table and summary need no pretrained weights: none are read or downloaded
            model = build_model(opt.cfg, nc=opt.nc, backbone=opt.backbone)
        if model.yaml.get("backbone_name"):
            from yolobone.models.compose import dump_model_yaml
            print(f"# {model.yaml_file}\n{dump_model_yaml(model.yaml)}")
        print(model.layer_table())
        info = model.backbone_info()
        print("backbone features: " + ", ".join(f"{lvl} {c} ch from {m}" for lvl, c, m in
                                                zip(info.levels, info.channels, info.modules)))
        if opt.summary:
            from yolobone.models.summary import model_summary
            print(model_summary(model, opt.imgsz))
        print(model.summary_line(opt.imgsz))
    except (ModelConfigError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def build_model(cfg: Union[str, Path, Dict[str, Any]], nc: Optional[int] = None, ch: int = 3,
                backbone: Optional[str] = None) -> YAMLModel:
    """DetectionModel or ClassificationModel, chosen by the YAML's last layer; `backbone` replaces the YAML's
    backbone (a name in configs/backbones/ or a backbone file, see yolobone/models/compose.py)."""
    from yolobone.models.compose import with_backbone
    from yolobone.models.parse import load_model_yaml
    spec = load_model_yaml(with_backbone(cfg, backbone))
    last = spec.rows[-1][2] if spec.rows else None
    if last == "Classify":
        from yolobone.models.classification import ClassificationModel
        return ClassificationModel(spec, ch=ch, nc=nc)
    return DetectionModel(spec, ch=ch, nc=nc)


if __name__ == "__main__":
    sys.exit(main())
