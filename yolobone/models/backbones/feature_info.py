"""FeatureInfo: the one record of what a backbone hands the neck, whichever kind it is (a torchvision classifier cut by
the probe, a timm features_only model, or the YAML's own backbone rows): per feature map its channels, its stride and
the module that produces it, as timm's `feature_info` describes them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

TARGET_STRIDES = (8, 16, 32)  # P3, P4, P5: the maps a YOLO neck reads by default


@dataclass(frozen=True)
class FeatureInfo:
    """The feature maps of a backbone, shallow to deep (timm's feature_info: channels, reduction, module)."""

    channels: Tuple[int, ...]
    strides: Tuple[int, ...]  # fewer than asked when the model has no deeper map (SqueezeNet: 8, 16)
    modules: Tuple[str, ...]  # the module (name inside the backbone) whose output each map is

    def __post_init__(self) -> None:
        if not len(self.channels) == len(self.strides) == len(self.modules):
            raise ValueError(f"FeatureInfo: {len(self.channels)} channels, {len(self.strides)} strides and "
                             f"{len(self.modules)} modules; expected one of each per map")

    @property
    def levels(self) -> Tuple[str, ...]:
        """'P3', 'P4', ... per map (stride 2**k is level Pk)."""
        return tuple(f"P{s.bit_length() - 1}" for s in self.strides)
