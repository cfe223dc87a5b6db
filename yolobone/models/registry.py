"""Block registry: YAML module name -> class + the rule that maps input channels and args to output channels.

A block registers itself next to its definition::

    @register_block(channels=scaled_out, repeat="internal")
    class C3(nn.Module): ...

`parse_model` resolves every YAML module name here (never with eval).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn

from yolobone.utils.errors import YoloboneError

Channels = Union[int, List[int]]


class ModelConfigError(YoloboneError, ValueError):
    """A model YAML (or a block in it) is invalid; the message is one line naming file, line and layer."""


@dataclass
class LayerContext:
    """What a channel rule may need to know about the layer being built."""

    c_in: List[Channels]  # output channels of each `from` input (a list when the input is multi-output)
    width_multiple: float
    depth_multiple: float
    nc: int
    no: int  # outputs per anchor x anchors of the Detect head (YOLOv5 never width-scales this value)
    n: int  # repeats after depth scaling
    index: int
    name: str

    @property
    def c1(self) -> int:
        """The single input's channel count (errors when the input is not a single feature map)."""
        if len(self.c_in) != 1:
            raise ModelConfigError(f"{self.name} takes one input, got {len(self.c_in)} (from a list of layers)")
        c = self.c_in[0]
        if isinstance(c, (list, tuple)):
            raise ModelConfigError(f"{self.name} input produces {len(c)} feature maps {list(c)}; "
                                   f"select one first with an Index row, e.g. [-1, 1, Index, [0]]")
        return c

    def scale_width(self, c2: int) -> int:
        """YOLOv5's width rule: c2 * width_multiple rounded up to a multiple of 8 (except the head's `no`)."""
        if c2 == self.no:
            return c2
        return make_divisible(c2 * self.width_multiple, 8)


ChannelRule = Callable[[LayerContext, List[Any]], Tuple[List[Any], Channels]]
RepeatArgs = Callable[[List[Any]], List[Any]]


def make_divisible(x: float, divisor: int) -> int:
    """Smallest multiple of divisor that is >= x."""
    return int(math.ceil(x / divisor) * divisor)


@dataclass(frozen=True)
class BlockSpec:
    """A registered block: its class, channel rule and how the YAML `number` column repeats it."""

    name: str
    cls: type
    channels: ChannelRule
    repeat: str = "sequential"  # "internal": n passed after (c1, c2); "sequential": n copies chained
    repeat_args: Optional[RepeatArgs] = None  # args of copies 2..n when repeat == "sequential"; None: no copies
    min_inputs: int = 1
    aliases: Tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: Dict[str, BlockSpec] = {}


def register_block(name: Optional[str] = None, *, channels: ChannelRule, repeat: str = "sequential",
                   repeat_args: Optional[RepeatArgs] = None, aliases: Sequence[str] = ()) -> Callable[[type], type]:
    """Class decorator registering a block under `name` (default: the class name) and its aliases.

    repeat_args: how copies 2..n of a row with `number` n > 1 get their arguments from the first copy's. The shared
    rules bring their own (scaled_out/fixed_out chain output -> input channels, same_channels repeats the arguments);
    a block with another channel rule must declare it, or a row repeating it is an error.
    """
    if repeat not in ("internal", "sequential"):
        raise ValueError(f"repeat must be 'internal' or 'sequential', got {repeat!r}")

    def decorator(cls: type) -> type:
        key = name or cls.__name__
        spec = BlockSpec(key, cls, channels, repeat, repeat_args or default_repeat_args(channels),
                         aliases=tuple(aliases))
        for k in (key, *aliases):
            if k in _REGISTRY:
                raise ValueError(f"block name {k!r} is already registered by {_REGISTRY[k].cls.__module__}."
                                 f"{_REGISTRY[k].cls.__qualname__}")
        for k in (key, *aliases):
            _REGISTRY[k] = spec
        return cls

    return decorator


def registered_names() -> List[str]:
    return sorted(_REGISTRY)


def get_block(name: str) -> BlockSpec:
    """Resolve a YAML module name: a registered block or a whitelisted `nn.<Layer>`."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    torch_spec = _torch_layer_spec(name)
    if torch_spec is not None:
        return torch_spec
    close = difflib.get_close_matches(name, registered_names() + [f"nn.{n}" for n in _TORCH_RULES], n=3, cutoff=0.5)
    hint = f"closest known: {', '.join(close)}" if close else "see yolobone/models/registry.py registered_names()"
    raise ModelConfigError(f"unknown module {name!r} ({hint})")


# ---- channel rules shared by many blocks -------------------------------------------------------------------

def scaled_out(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """YOLOv5 channel blocks: args [c2, *rest] -> [c1, c2 * width, *rest]; output c2."""
    if not args:
        raise ModelConfigError(f"{ctx.name} needs output channels as its first argument, got no arguments")
    c2 = _int_arg(ctx, args[0], "output channels (args[0])")
    c2 = ctx.scale_width(c2)
    return [ctx.c1, c2, *args[1:]], c2


def fixed_out(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """Like scaled_out but args[0] is taken literally (no width_multiple): backbones with published widths."""
    if not args:
        raise ModelConfigError(f"{ctx.name} needs output channels as its first argument, got no arguments")
    c2 = _int_arg(ctx, args[0], "output channels (args[0])")
    return [ctx.c1, c2, *args[1:]], c2


def same_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """Shape-only layers (upsample, pooling, identity, activations): output channels = input channels."""
    return list(args), ctx.c1


def concat_channels(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """Concatenation along channels: output = sum of inputs."""
    if len(ctx.c_in) < 2:
        raise ModelConfigError(f"{ctx.name} needs at least 2 inputs in `from`, got {len(ctx.c_in)}")
    for c in ctx.c_in:
        if isinstance(c, (list, tuple)):
            raise ModelConfigError(f"{ctx.name} input produces several feature maps {list(c)}; select one with Index")
    return list(args), int(sum(ctx.c_in))


def chain_channels(args: List[Any]) -> List[Any]:
    """Args of copies 2..n for (c1, c2, ...) blocks: input channels become the output channels."""
    return [args[1], args[1], *args[2:]] if len(args) >= 2 else list(args)


def same_args(args: List[Any]) -> List[Any]:
    """Args of copies 2..n for blocks that keep their channels: the first copy's arguments."""
    return list(args)


def default_repeat_args(rule: ChannelRule) -> Optional[RepeatArgs]:
    """The chaining that comes with a shared channel rule; None for any other rule (the block must declare it)."""
    if rule in (scaled_out, fixed_out, _nn_in_out):
        return chain_channels
    if rule in (same_channels, _nn_norm):
        return same_args
    return None


def _int_arg(ctx: LayerContext, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ModelConfigError(f"{ctx.name} expects an integer for {what}, got {value!r}")
    return int(value)


# ---- torch.nn layers by name ---------------------------------------------------------------------------------

def _nn_in_out(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """nn.Conv2d / nn.ConvTranspose2d rows give (in, out, ...) explicitly: check `in` against the real input."""
    if len(args) < 2:
        raise ModelConfigError(f"{ctx.name} expects [in_channels, out_channels, kernel, ...], got {args}")
    c_in = _int_arg(ctx, args[0], "in_channels (args[0])")
    if c_in != ctx.c1:
        raise ModelConfigError(f"{ctx.name} channel mismatch: args say in_channels={c_in} but its input "
                               f"(from {ctx.index}'s `from`) has {ctx.c1} channels")
    return list(args), _int_arg(ctx, args[1], "out_channels (args[1])")


def _nn_norm(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
    """nn.BatchNorm2d / nn.GroupNorm-free norms: YOLOv5 passes the input channels as the only argument."""
    return [ctx.c1, *args[1:]], ctx.c1


_TORCH_RULES: Dict[str, ChannelRule] = {
    **{n: same_channels for n in (
        "Upsample", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Identity", "Dropout",
        "Dropout2d", "ReLU", "ReLU6", "SiLU", "LeakyReLU", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "GELU",
        "Mish", "ELU", "ZeroPad2d", "PixelShuffle", "PixelUnshuffle")},
    "Conv2d": _nn_in_out,
    "ConvTranspose2d": scaled_out,  # YOLOv5 treats it as a channel block: args [c2, k, s, ...]
    "BatchNorm2d": _nn_norm,
    "InstanceNorm2d": _nn_norm,
}
_TORCH_CHANNEL_CHANGES = {"PixelShuffle", "PixelUnshuffle"}


def _torch_layer_spec(name: str) -> Optional[BlockSpec]:
    if not name.startswith("nn."):
        return None
    short = name[3:]
    rule = _TORCH_RULES.get(short)
    if rule is None:
        return None
    if short in _TORCH_CHANNEL_CHANGES:
        rule = _pixel_shuffle_rule(short)
    return BlockSpec(name, getattr(nn, short), rule, repeat_args=default_repeat_args(rule))


def _pixel_shuffle_rule(short: str) -> ChannelRule:
    def rule(ctx: LayerContext, args: List[Any]) -> Tuple[List[Any], int]:
        r = _int_arg(ctx, args[0] if args else None, "the factor (args[0])")
        c = ctx.c1 // (r * r) if short == "PixelShuffle" else ctx.c1 * r * r
        return list(args), c
    return rule
