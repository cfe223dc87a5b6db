"""Running YAML rows: each layer reads the outputs its `from` names (layer.sources), not just the previous one."""
from __future__ import annotations

from typing import Any, Callable, Container, List, Optional, Sequence, Tuple

import torch.nn as nn

LayerCall = Callable[[nn.Module, Any], Any]


def run_rows(layers: Sequence[nn.Module], x: Any, save: Optional[Container[int]] = None,
             call: Optional[LayerCall] = None) -> Tuple[Any, List[Any]]:
    """Forward `x` through rows built by parse_model. Returns (last output, per-row outputs); a row's output is kept
    only when its index is in `save` (all rows when save is None)."""
    y: List[Any] = []
    for m in layers:
        if m.f != -1:
            inputs = [x if j in (-1, m.i - 1) else y[j] for j in m.sources]
            x = inputs[0] if isinstance(m.f, int) else inputs
        x = call(m, x) if call is not None else m(x)
        y.append(x if save is None or m.i in save else None)
    return x, y
