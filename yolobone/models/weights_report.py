"""Where a model's tensors came from, per section: the report behind "Transferred 198/349 items".

    backbone resnet50: 320/320 tensors from IMAGENET1K_V2 (file ~/.cache/torch/hub/checkpoints/resnet50-11ad3fa6.pth);
    neck + head: 0/151, random init

and with `--weights yolov5s.pt` (another backbone: its neck and head rows renumbered, models/transfer.py):

    backbone resnet50: 318/318 tensors from IMAGENET1K_V2 (file ...); neck + head: 146/163 tensors from checkpoint
    yolov5s.pt, 17 random init (model.4.cv1, model.4.cv2, model.8.cv1, model.8.cv2 and 4 more)

(the SPPF and the C3s after a Concat read ResNet's wider P3-P5, and an nc other than 80 changes Detect's convs).

Backbone blocks that load pretrained weights leave a `loaded_weights` record (yolobone/models/backbones/pretrained.py) on the
module that holds them; a checkpoint transfer (`train.py --weights`) passes its keys as `sources`, which win.
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, List, Optional

import torch.nn as nn


def tensor_origins(model: nn.Module) -> Dict[str, str]:
    """state-dict key -> origin label, for the tensors loaded by backbone blocks at build time."""
    origins: Dict[str, str] = {}
    for name, module in model.named_modules():
        record = getattr(module, "loaded_weights", None)
        if record is not None:
            prefix = f"{name}." if name else ""
            origins.update({prefix + k: record.origin for k in record.keys})
    return origins


def weights_report(model: nn.Module, sources: Optional[Dict[str, str]] = None) -> str:
    """One line per section (backbone, neck + head): 'n/total tensors from <origin>', the rest random init."""
    origins = {**tensor_origins(model), **(sources or {})}
    n_backbone = len((getattr(model, "yaml", None) or {}).get("backbone") or [])
    name = (getattr(model, "yaml", None) or {}).get("backbone_name")
    sections: Dict[str, List[str]] = {f"backbone {name}" if name else "backbone": [], "neck + head": []}
    titles = list(sections)
    for key in model.state_dict():
        parts = key.split(".")
        row = int(parts[1]) if len(parts) > 1 and parts[0] == "model" and parts[1].isdigit() else n_backbone
        sections[titles[0] if row < n_backbone else titles[1]].append(key)
    lines = []
    for title, keys in sections.items():
        counts = Counter(origins[k] for k in keys if k in origins)
        loaded = sum(counts.values())
        parts = [f"{n}/{len(keys)} tensors from {origin}" for origin, n in counts.most_common()]
        if not parts:
            parts = [f"0/{len(keys)}, random init"]
        elif loaded < len(keys):
            parts.append(f"{len(keys) - loaded} random init ({_modules_of([k for k in keys if k not in origins])})")
        lines.append(f"{title}: {', '.join(parts)}")
    return "; ".join(lines)


def _modules_of(keys: List[str], shown: int = 4) -> str:
    """The modules that hold `keys`, named down to a row's direct children (model.9.cv1), the first `shown`."""
    modules = list(dict.fromkeys(".".join(k.split(".")[:min(3, len(k.split(".")) - 1)]) for k in keys))
    more = f" and {len(modules) - shown} more" if len(modules) > shown else ""
    return ", ".join(modules[:shown]) + more
