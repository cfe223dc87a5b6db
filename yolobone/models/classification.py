"""ClassificationModel: backbone rows + a `Classify` head, from a cls YAML or cut from a detection YAML/checkpoint.

    model = ClassificationModel("configs/cls/yolov5s-cls.yaml", nc=4)          # a cls YAML as written
    model = ClassificationModel("configs/yolov5s.yaml", nc=4)                   # detection backbone (rows 0-9) + Classify
    model = ClassificationModel("configs/yolov5s.yaml", nc=4, cutoff=9)         # rows 0-8 + Classify (= yolov5s-cls)
    model = ClassificationModel("runs/train/exp/weights/best.pt", nc=4)         # same, backbone weights copied
    logits = model(torch.rand(2, 3, 224, 224))                                  # (2, 4)

`cutoff` is the number of detection layers kept (layers 0..cutoff-1); the Classify head becomes layer `cutoff`
(or `cutoff + 1` when the last kept layer has several outputs: an `[-1, 1, Index, [-1]]` row then takes the
deepest, stride-32 one).
The cut model's YAML is stored in `model.yaml`, so checkpoints rebuild it through `build_model` like any cls YAML.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from yolobone.models.base import YAMLModel
from yolobone.models.heads import Classify
from yolobone.models.parse import ModelSpec, load_model_yaml, parse_model
from yolobone.models.registry import ModelConfigError
from yolobone.utils.logging import LOGGER

CfgLike = Union[str, Path, Dict[str, Any], ModelSpec]


class ClassificationModel(YAMLModel):
    """YAML layers ending in a Classify head: (B, 3, H, W) -> (B, nc) logits."""

    def __init__(self, cfg: CfgLike = "configs/cls/yolov5s-cls.yaml", ch: int = 3, nc: Optional[int] = None,
                 cutoff: Optional[int] = None):
        weights: Optional[Dict[str, torch.Tensor]] = None
        if isinstance(cfg, (str, os.PathLike)) and Path(cfg).suffix == ".pt":
            cfg, weights = _detection_checkpoint(Path(cfg))
        spec = load_model_yaml(cfg)
        if _last_module(spec) == "Classify":
            if cutoff is not None:
                raise ModelConfigError(f"{spec.source}: cutoff={cutoff} given, but this is already a classification "
                                       f"YAML (its last layer is Classify); cutoff applies to detection YAMLs")
        else:
            spec = classification_yaml(spec, cutoff=cutoff, nc=nc, ch=ch)
        super().__init__(spec, ch=ch, nc=nc)
        head = self.model[-1]
        if not isinstance(head, Classify):
            raise ModelConfigError(f"{self.yaml_file}: the last layer must be Classify, got {type(head).__name__}")
        out = self.dry_run(self.probe_size)
        if tuple(out.shape) != (1, self.nc):
            raise ModelConfigError(f"{self.yaml_file}: Classify output shape {tuple(out.shape)}, expected (1, {self.nc})")
        self.task = "classify"
        if weights is not None:
            self.transfer_weights(weights)

    @classmethod
    def from_detection_model(cls, model: YAMLModel, nc: Optional[int] = None,
                             cutoff: Optional[int] = None) -> "ClassificationModel":
        """Cut a built detection model after its backbone (or `cutoff` layers) and copy those layers' weights."""
        cfg = copy.deepcopy(model.yaml)
        cfg.setdefault("yaml_file", str(model.yaml_file))
        new = cls(cfg, ch=model.in_channels, nc=nc, cutoff=cutoff)
        new.transfer_weights(model.state_dict())
        return new

    def transfer_weights(self, state: Dict[str, torch.Tensor]) -> int:
        """Copy every tensor of `state` whose name and shape match this model (the head never matches); returns n."""
        own = self.state_dict()
        matched = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)
                   and not k.startswith(f"model.{len(self.model) - 1}.")}
        self.load_state_dict(matched, strict=False)
        LOGGER.info(f"Transferred {len(matched)}/{len(own)} tensors from the detection weights")
        return len(matched)


def _last_module(spec: ModelSpec) -> Optional[str]:
    rows = spec.rows
    return rows[-1][2] if rows and isinstance(rows[-1], list) and len(rows[-1]) >= 3 else None


def classification_yaml(cfg: CfgLike, cutoff: Optional[int] = None, nc: Optional[int] = None,
                        ch: int = 3) -> ModelSpec:
    """A detection YAML's first `cutoff` rows (default: all backbone rows) + Classify, as a new model YAML.

    When the last kept layer has several outputs (a wrapper backbone returning P3/P4/P5), an Index row picks the
    last (deepest) one.
    """
    spec = load_model_yaml(cfg)
    rows = spec.rows
    n_backbone = len(spec.data.get("backbone") or [])
    keep = n_backbone if cutoff is None else cutoff
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= len(rows) - 1:
        raise ModelConfigError(f"{spec.source}: cutoff must be an integer in 1..{len(rows) - 1} (layers kept before "
                               f"the Classify head; the backbone has {n_backbone}), got {cutoff!r}")
    for i, row in enumerate(rows[:keep]):
        if row[2] in ("Detect", "Classify"):
            raise ModelConfigError(f"{spec.where(i)}: cutoff={keep} keeps the {row[2]} head; use a smaller cutoff")
    data = {k: copy.deepcopy(v) for k, v in spec.data.items() if k not in ("backbone", "head", "anchors")}
    data["backbone"] = copy.deepcopy(rows[:keep])
    data["head"] = []
    if nc is not None:
        data["nc"] = nc
    data.setdefault("nc", 1000)
    kept = ModelSpec(data, spec.source, list(spec.row_lines[:keep]))
    _, _, chs, _ = parse_model(kept, ch=ch, nc=nc)
    head: List[Any] = []
    if isinstance(chs[-1], (list, tuple)):
        head.append([-1, 1, "Index", [-1]])
    head.append([-1, 1, "Classify", ["nc"]])
    data["head"] = head
    source = f"{spec.source} (cut at {keep})"
    data["yaml_file"] = source
    return ModelSpec(data, source, list(spec.row_lines[:keep]) + [None] * len(head))


def _detection_checkpoint(path: Path) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor]]:
    """A detection checkpoint's model YAML and weights (classification checkpoints load with models.load_model)."""
    from yolobone.utils.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.get("task", "detect") == "classify":
        raise ModelConfigError(f"{path}: is already a classification checkpoint; load it with models.load_model")
    cfg = copy.deepcopy(ckpt["model_yaml"])
    cfg.setdefault("yaml_file", str(path))
    return cfg, ckpt["model"]

