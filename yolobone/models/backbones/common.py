"""Pieces shared by the backbone families: activation arguments and the `Index` output selector."""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple, Union

import torch
import torch.nn as nn

from yolobone.models.activation import make_activation, parse_activation
from yolobone.models.registry import LayerContext, ModelConfigError, register_block

ActArg = Union[bool, str, nn.Module, None]


def block_activation(act: ActArg) -> nn.Module:
    """A backbone block's `act` argument -> module.

    True is the model's activation (YAML `activation:`, SiLU by default), False/None none, and a string such as
    "ReLU" or "nn.LeakyReLU(0.1)" that activation (published backbones use "ReLU").
    """
    if isinstance(act, str):
        try:
            return parse_activation(act)()
        except ValueError as e:
            raise ModelConfigError(str(e)) from None
    return make_activation(act)


def _index_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """Index [i] (or ultralytics' [c2, i]): the channels of output i of a multi-output layer."""
    if len(args) not in (1, 2) or any(isinstance(a, bool) or not isinstance(a, int) for a in args):
        raise ModelConfigError(f"{ctx.name} expects [index] or ultralytics' [c2, index] (integers), got {args}")
    if len(ctx.c_in) != 1:
        raise ModelConfigError(f"{ctx.name} takes one input (a multi-output layer), got {len(ctx.c_in)} in `from`")
    outputs = ctx.c_in[0]
    if not isinstance(outputs, (list, tuple)):
        raise ModelConfigError(f"{ctx.name} selects one output of a multi-output layer, but its input is a single "
                               f"feature map with {outputs} channels; remove the Index row")
    i = args[-1]
    if not -len(outputs) <= i < len(outputs):
        raise ModelConfigError(f"{ctx.name} index {i} is out of range: its input has {len(outputs)} outputs "
                               f"{list(outputs)} (a backbone without that level needs a downsampling row instead, as "
                               f"in configs/yolov5s-squeezenet.yaml)")
    c2 = int(outputs[i])
    if len(args) == 2 and args[0] != c2:
        raise ModelConfigError(f"{ctx.name} [c2={args[0]}, index={i}] declares {args[0]} channels but output {i} "
                               f"has {c2} (outputs: {list(outputs)})")
    return [i], c2


@register_block(channels=_index_channels)
class Index(nn.Module):
    """Select output `index` of a layer that returns several feature maps: `[-1, 1, Index, [0]]`."""

    def __init__(self, index: int = 0):
        super().__init__()
        self.index = index

    def forward(self, x: Sequence[torch.Tensor]) -> torch.Tensor:
        return x[self.index]
