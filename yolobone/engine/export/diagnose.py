"""Which YAML layer breaks an export: re-export each layer alone, on the input it gets in the full model."""
from __future__ import annotations

import io
import re
from typing import Any, Callable, List, Optional

import torch
import torch.nn as nn

from yolobone.utils.errors import first_line

_OP = re.compile(r"(aten::\w+|prim::\w+|onnx::\w+|operator '[^']+'|[Oo]perator \w+)")


def failing_op(e: BaseException) -> str:
    """The operator named in an exporter error ('aten::fft_rfft2', ...), or the error's first line."""
    found = _OP.search(str(e))
    return found.group(1).replace("operator ", "").strip("'") if found else first_line(e)[:160]


class _OneLayer(nn.Module):
    """One YAML row as a stand-alone module: list inputs (Concat, Detect) arrive as separate arguments."""

    def __init__(self, m: nn.Module, listed: bool):
        super().__init__()
        self.m, self.listed = m, listed

    def forward(self, *xs: torch.Tensor) -> Any:
        return self.m(list(xs) if self.listed else xs[0])


def layer_inputs(model: nn.Module, x: torch.Tensor) -> List[Any]:
    """The input every row of model.model receives in one forward pass."""
    seen: List[Any] = [None] * len(model.model)
    hooks = [m.register_forward_pre_hook(lambda mod, args, i=i: seen.__setitem__(i, args[0]))
             for i, m in enumerate(model.model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def locate_export_failure(model: nn.Module, x: torch.Tensor, export_one: Callable[[nn.Module, tuple, Any], None]
                          ) -> Optional[str]:
    """'file:line: layer i (Block): op' for the first row that fails alone, or None when every row exports."""
    spec = getattr(model, "yaml_spec", None)
    try:
        inputs = layer_inputs(model, x)
    except Exception as e:  # the model does not even run: say so with the layer-free message
        return f"the model's forward pass fails: {first_line(e)[:200]}"
    for i, m in enumerate(model.model):
        xin = inputs[i]
        if xin is None:
            continue
        listed = isinstance(xin, (list, tuple))
        args = tuple(t.clone() for t in xin) if listed else (xin.clone(),)
        try:
            export_one(_OneLayer(m, listed).eval(), args, io.BytesIO())
        except Exception as e:  # the exporter raises many types (RuntimeError, UnsupportedOperatorError, ...)
            where = spec.where(i) if spec is not None else f"layer {i}"
            return f"{where} ({getattr(m, 'type', type(m).__name__)}): op {failing_op(e)} cannot be exported " \
                   f"({first_line(e)[:160]})"
    return None
