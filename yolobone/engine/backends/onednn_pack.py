"""CPU inference without a compile: each fused Conv block's convolution and activation run as one oneDNN call on
weights reordered once, which is what inductor's freezing gives a compiled model, at no compile cost. Other plain
convolutions (torchvision / timm backbones, the Detect head) run on weights reordered once too.

Eager PyTorch runs a fused block as two passes (convolution, then SiLU over the whole output) and lets oneDNN
reorder the weights on every call; the packed call applies the activation while the output is still in cache.
Outputs equal the eager model's up to float rounding (tests/test_onednn_pack.py).

    pack = ConvActPack(model)        # a fused (BatchNorm folded) model on the CPU
    out = pack.run(x)                # first call: one eager pass that records the shapes, then packs
    out = pack.run(x)                # packed; pack.unpack() restores the plain fused forward
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from yolobone.engine.core.acceleration import compile_error_summary
from yolobone.utils.logging import LOGGER

# oneDNN post-op name and scalars for each activation the packed call can apply; others leave the block eager.
ACTIVATIONS: Dict[type, Callable[[nn.Module], Tuple[str, List[float]]]] = {
    nn.SiLU: lambda a: ("swish", []),
    nn.ReLU: lambda a: ("relu", []),
    nn.Identity: lambda a: ("none", []),
    nn.Sigmoid: lambda a: ("sigmoid", []),
    nn.Hardswish: lambda a: ("hardswish", []),
    nn.LeakyReLU: lambda a: ("leaky_relu", [float(a.negative_slope)]),
}


def pack_unavailable_reason() -> Optional[str]:
    """Why packed oneDNN calls cannot run in this torch build, or None."""
    if not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled:
        return "oneDNN (mkldnn) is not available or is disabled"
    if not hasattr(torch.ops.mkldnn, "_convolution_pointwise") or not hasattr(torch._C._nn,
                                                                             "mkldnn_reorder_conv2d_weight"):
        return f"torch {torch.__version__} has no mkldnn._convolution_pointwise"
    return None


def activation_attr(act: nn.Module) -> Optional[Tuple[str, List[float]]]:
    """(oneDNN post-op, scalars) for `act`, or None when it has none (the block then stays eager)."""
    make = ACTIVATIONS.get(type(act))
    return make(act) if make is not None else None


def packable_conv(conv: Any) -> bool:
    """A plain zero-padded float32 CPU Conv2d (no subclass, no string padding)."""
    return (type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and conv.weight.dtype == torch.float32 and conv.weight.device.type == "cpu")


def packable(block: nn.Module) -> bool:
    """A fused conv + activation block: `fuse()` switched it to forward_fuse, a packable conv, a known activation."""
    fuse = getattr(block, "forward_fuse", None)
    act = getattr(block, "act", None)
    return (fuse is not None and block.__dict__.get("forward") == fuse and packable_conv(getattr(block, "conv", None))
            and isinstance(act, nn.Module) and activation_attr(act) is not None)


def pack_targets(model: nn.Module) -> Tuple[List[nn.Module], List[nn.Conv2d]]:
    """(conv + activation blocks, other plain convs) to pack: a backbone's or a head's own convs get their weights
    reordered once even where their activation is a separate module."""
    blocks = [m for m in model.modules() if packable(m)]
    inside = {id(b.conv) for b in blocks}
    convs = [m for m in model.modules() if packable_conv(m) and id(m) not in inside and "forward" not in m.__dict__]
    return blocks, convs


class PackedConvAct:
    """A block's forward as one oneDNN convolution with the activation as a post-op, on pre-reordered weights."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module, input_shape: Tuple[int, ...]):
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.attr, self.scalars = activation_attr(act)
        # The reorder targets the layout oneDNN picks for this input shape; other shapes still run (reordered).
        self.weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
            conv.weight.detach().to_mkldnn(), self.padding, self.stride, self.dilation, self.groups, list(input_shape))
        self.bias = conv.bias.detach() if conv.bias is not None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, self.padding, self.stride,
                                                       self.dilation, self.groups, self.attr, self.scalars, "")


class ConvActPack:
    """Packs a fused model's conv + activation blocks (and its other plain convs) on first use; unpack() gives the
    plain fused model back."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.blocks, self.convs = pack_targets(model)
        why_not = pack_unavailable_reason() if self.blocks or self.convs else "no convolutions to pack"
        self.failed = why_not is not None
        self.packed = self.proven = False
        if why_not and (self.blocks or self.convs):
            LOGGER.info(f"oneDNN packing: skipped ({why_not})")

    def run(self, x: torch.Tensor) -> Any:
        """The model's output for x; the first call runs eagerly and packs (its shapes pick the weight layouts)."""
        if self.failed:
            return self.model(x)
        if not self.packed:
            return self._run_and_pack(x)
        if self.proven:
            return self.model(x)
        try:
            out = self.model(x)
        except Exception as e:  # an op this torch build lacks for these tensors: stay eager, say so once
            LOGGER.warning(f"oneDNN packing: cannot be used here ({compile_error_summary(e)}); running eagerly")
            self.unpack()
            self.failed = True
            return self.model(x)
        self.proven = True
        return out

    def _run_and_pack(self, x: torch.Tensor) -> Any:
        shapes: Dict[nn.Module, Tuple[int, ...]] = {}
        hooks = [m.register_forward_pre_hook(lambda m, args: shapes.setdefault(m, tuple(args[0].shape)) and None)
                 for m in (*self.blocks, *self.convs)]
        try:
            out = self.model(x)
        finally:
            for h in hooks:
                h.remove()
        # a block or conv this input never reached (an unused branch) stays as it is
        for b in self.blocks:
            if b in shapes:
                b.forward = PackedConvAct(b.conv, b.act, shapes[b])
        for c in self.convs:
            if c in shapes:
                c.forward = PackedConvAct(c, nn.Identity(), shapes[c])
        self.packed = True
        return out

    def unpack(self) -> None:
        """Restore every block's plain fused forward (the model is then exportable and compilable again)."""
        for b in self.blocks:
            b.forward = b.forward_fuse
        for c in self.convs:
            c.__dict__.pop("forward", None)  # back to nn.Conv2d.forward
        self.packed = self.proven = False
