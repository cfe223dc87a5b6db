"""YAMLModel: the layer graph built by parse_model, its forward pass, fusing and summaries."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from yolobone.models.blocks import Conv
from yolobone.models.fold_bn import fold_batchnorms
from yolobone.models.backbones.feature_info import FeatureInfo
from yolobone.models.backbones.pretrained import weights_reported
from yolobone.models.graph import run_rows
from yolobone.models.levels import levels_from_strides, row_strides
from yolobone.models.parse import ModelSpec, parse_model
from yolobone.models.registry import Channels, ModelConfigError
from yolobone.models.weights_report import weights_report
from yolobone.utils.errors import first_line
from yolobone.utils.logging import LOGGER
from yolobone.utils.torch_utils import count_gflops, fuse_conv_and_bn


class YAMLModel(nn.Module):
    """A model whose layers come from a YAML file; subclasses add the head-specific set-up."""

    def __init__(self, cfg: Union[str, Path, Dict[str, Any], ModelSpec] = "configs/yolov5s.yaml", ch: int = 3,
                 nc: Optional[int] = None):
        super().__init__()
        model, save, chs, spec = parse_model(cfg, ch=ch, nc=nc)
        self.yaml: Dict[str, Any] = spec.data
        self.yaml_spec = spec
        self.yaml_file = spec.source
        self.in_channels = int(self.yaml.get("ch", ch))
        self.model = model
        self.save = save
        self.layer_channels: List[Channels] = chs
        self.nc = int(self.yaml.get("nc", 80))
        self.names = [str(i) for i in range(self.nc)]
        if weights_reported():  # a rebuild from a checkpoint (no_pretrained) loads every tensor next
            LOGGER.info(f"pretrained: {weights_report(self)}")

    # ---- forward --------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Any:
        return self._forward_once(x)

    def _forward_once(self, x: torch.Tensor, checked: bool = False) -> Any:
        return run_rows(self.model, x, self.save, self._checked_call if checked else None)[0]

    def _checked_call(self, m: nn.Module, x: Any) -> Any:
        """Run one layer during the build-time dry run; failures and channel mismatches name the layer."""
        try:
            out = m(x)
        except Exception as e:  # any failure here is a config problem of this layer
            shapes = [tuple(t.shape) for t in x] if isinstance(x, list) else tuple(x.shape)
            raise ModelConfigError(f"{self.yaml_spec.where(m.i)} ({m.type}): forward failed on input {shapes}: "
                                   f"{first_line(e)[:300]}") from None
        declared = self.layer_channels[m.i]
        if isinstance(out, torch.Tensor) and isinstance(declared, int) and declared and out.dim() == 4 \
                and out.shape[1] != declared:
            raise ModelConfigError(f"{self.yaml_spec.where(m.i)} ({m.type}): channel rule declares {declared} "
                                   f"output channels but the layer produced {out.shape[1]}")
        if isinstance(out, (list, tuple)) and isinstance(declared, list) and \
                [t.shape[1] for t in out] != list(declared):
            raise ModelConfigError(f"{self.yaml_spec.where(m.i)} ({m.type}): declares outputs {declared} but "
                                   f"produced {[t.shape[1] for t in out]}")
        return out

    def dry_run(self, size: int) -> Any:
        """Forward a zero image through every layer in eval mode (BatchNorm statistics untouched)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                p = next(self.parameters(), torch.empty(0))
                return self._forward_once(torch.zeros(1, self.in_channels, size, size, device=p.device,
                                                      dtype=p.dtype if p.is_floating_point() else torch.float32),
                                          checked=True)
        finally:
            self.train(was_training)

    # ---- utilities ------------------------------------------------------------------------------------------
    def backbone_info(self, size: int = 256) -> FeatureInfo:
        """What the YAML's backbone section hands the neck, in the FeatureInfo every backbone kind shares: the last
        row at each stride 8 and up (P3, P4, ...), its channels, and the row (`model.<i>`), measured with a
        size x size probe."""
        n = len(self.yaml.get("backbone") or [])
        rows = list(self.model)[:n]
        if not rows:
            raise ModelConfigError(f"{self.yaml_file}: no backbone section to describe")
        levels = {k: i for k, i in levels_from_strides(row_strides(rows, self.in_channels, size)).items() if k >= 3}
        if not levels:
            raise ModelConfigError(f"{self.yaml_file}: its backbone rows reach no stride of 8 or more")
        picked = [levels[k] for k in sorted(levels)]
        return FeatureInfo(channels=tuple(int(self.layer_channels[i]) for i in picked),
                           strides=tuple(2 ** k for k in sorted(levels)), modules=tuple(f"model.{i}" for i in picked))

    def fuse(self) -> "YAMLModel":
        """Fold BatchNorm into the preceding convolution (Conv blocks and torchvision backbones; inference only);
        blocks with a `fuse_deploy()` (YOLOv7's RepConv, implicit heads) first fold their training-time structure."""
        for m in list(self.model.modules()):
            if callable(getattr(m, "fuse_deploy", None)):
                m.fuse_deploy()
        for m in self.model.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                m.conv = fuse_conv_and_bn(m.conv, m.bn)
                delattr(m, "bn")
                m.forward = m.forward_fuse
        for layer in self.model:  # per layer: the layer list itself runs rows by `from`, not in sequence
            fold_batchnorms(layer)
        return self

    def summary_line(self, imgsz: Union[int, Sequence[int]] = 640, probe: Optional[int] = None) -> str:
        """'<name> summary: L layers, P parameters, G gradients, F GFLOPs'."""
        n_p = sum(p.numel() for p in self.parameters())
        n_g = sum(p.numel() for p in self.parameters() if p.requires_grad)
        layers = len(list(self.modules()))
        try:
            flops = f", {count_gflops(self, imgsz, probe=probe or self.probe_size):.1f} GFLOPs"
        except Exception as e:  # FLOPs are informative only; a model that cannot be counted still works
            LOGGER.debug(f"GFLOPs not computed: {e}")
            flops = ""
        return f"{self.yaml_spec.name} summary: {layers} layers, {n_p:,} parameters, {n_g:,} gradients{flops}"

    @property
    def probe_size(self) -> int:
        return int(self.yaml.get("probe_size", 256))

    def info(self, verbose: bool = False, imgsz: Union[int, Sequence[int]] = 640) -> str:
        """Log (and return) the layer table when verbose, then the summary line."""
        text = (self.layer_table() + "\n" if verbose else "") + self.summary_line(imgsz)
        LOGGER.info(text)
        return text

    def layer_table(self) -> str:
        """YOLOv5-style table: index, from, n, params, module, arguments."""
        rows = [f"{'':>3}{'from':>18}{'n':>3}{'params':>10}  {'module':<40}{'arguments':<30}"]
        for m in self.model:
            args = [a for a in getattr(m, "yaml_args", [])]
            rows.append(f"{m.i:>3}{_from_text(getattr(m, 'from_text', m.f)):>18}{m.n:>3}{m.np:10.0f}  {m.type:<40}{_short(args):<30}")
        return "\n".join(rows)


def _from_text(f: Any) -> str:
    """`from` as written in the YAML: [-1, P4] rather than [-1, 'P4']."""
    return f"[{', '.join(map(str, f))}]" if isinstance(f, list) else str(f)


def _short(args: List[Any], limit: int = 80) -> str:
    text = str(args)
    return text if len(text) <= limit else text[:limit - 3] + "..."
