"""Find a torchvision classifier's stride-8/16/32 feature maps by a dry forward pass, and cut the network there.

Nothing is typed by hand: `probe_features` builds the model on the meta device (no memory, no init time), runs a
256x384 probe with forward hooks on the possible cut points (up to two levels deep), and for each target stride takes
the module that finishes last with that stride (the end of the stage). A 4-D output's stride is the input-to-map size
ratio rounded to a power of two, the same on both sides (ceil-mode pooling and unpadded convs give SqueezeNet
127/63/31/15 and Inception 29/14/6 at 256 px); its layout is NCHW when its dims 2 and 3 give that stride,
channels-last (Swin) when dims 1 and 2 do. The probe is not square and its aspect ratio is no power of two, so a map
read exactly in one layout cannot be read exactly in the other (see _map_stride), and a fixed-size adaptive pool
(AlexNet's 6x6) gives two strides and is no map. Modules of the classifier (`fc`, `classifier`, `head`, `heads`) are
never picked. A model without a stride-32 map (SqueezeNet) returns P3/P4 only; the YAML adds P5 with a downsampling
row. Transformers: ViT and MaxViT go through the adapters of `tv_adapters.py`.

Cutting: the model's children, with plain `nn.Sequential` and `nn.ModuleList` children opened one level (MobileNet's
`features.6`, RegNet's `trunk_output.block2`, MaxViT's `blocks.1`), form a chain; modules the probe never ran
(Inception's `AuxLogits` in eval mode) are left out. When the probe shows forward() runs exactly that chain (each
module's input is the previous one's output, as `IntermediateLayerGetter` assumes for direct children),
`StageFeatures` keeps only the chain's modules up to P5 under their original names and runs them. Otherwise
`torchvision.models.feature_extraction.create_feature_extractor` cuts it (FX graph modules lose their train/eval state
under deepcopy, which the EMA uses, so they are only the fallback). Probe results are cached per (model, kwargs,
options).
"""
from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from yolobone.models.backbones.tv_adapters import (SimplePyramid, SquarePadded, ViTMap, is_vit, nearest_power_of_two,
                                          set_partition_grids, window_unit)
from yolobone.models.backbones.feature_info import TARGET_STRIDES, FeatureInfo
from yolobone.models.registry import ModelConfigError

PROBE_SIZE = 256  # square probe of the ultralytics form (probe_unwrapped)
PROBE_HW = (256, 384)  # feature probe: multiples of 32 and of Swin's windows, not square (see the module docstring)
MAX_DEPTH = 2  # hook module names with at most this many parts ('layer2', 'features.6')
HEAD_NAMES = ("fc", "classifier", "head", "heads")  # torchvision's classifier attributes: logits, never features

FrozenKwargs = Tuple[Tuple[str, Any], ...]


@dataclass(frozen=True)
class FeatureSpec(FeatureInfo):
    """Where a torchvision model's P3/P4/P5 maps come from, as measured by the probe: the FeatureInfo (`modules` are
    the module names whose outputs are returned) plus how to cut the model there."""

    model: str = ""
    chain: Optional[Tuple[str, ...]] = None  # modules run in sequence up to P5 (StageFeatures), or None (FX fallback)
    returns: Tuple[str, ...] = ()  # the chain element ending each module (equal to modules when chain is None)
    dropped: Optional[str] = None  # a trailing 1x1 conv replaced by Identity (last_conv=False), or None
    layouts: Tuple[str, ...] = ()  # 'NCHW' or 'NHWC' (channels-last: Swin) per map
    exact: bool = True  # maps are ceil(H/s) x ceil(W/s); False: they are resampled to that grid
    kind: str = "stages"  # 'stages'; 'vit' (ViTMap + SimplePyramid); 'maxvit' (stages run by SquarePadded)


@dataclass
class _Record:
    name: str
    module: nn.Module
    shape: Optional[Tuple[int, ...]]


def freeze_kwargs(kwargs: Optional[Dict[str, Any]]) -> FrozenKwargs:
    """A hashable form of builder kwargs (lists become tuples) for the probe cache."""
    def frozen(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return tuple(frozen(x) for x in v)
        if isinstance(v, dict):
            return tuple(sorted((k, frozen(x)) for k, x in v.items()))
        return v
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ModelConfigError(f"torchvision model kwargs must be a mapping like {{width_mult: 0.75}}, got {kwargs!r}")
    return tuple(sorted((str(k), frozen(v)) for k, v in (kwargs or {}).items()))


def build_torchvision(name: str, kwargs: FrozenKwargs = ()) -> nn.Module:
    """torchvision.models.get_model(name, weights=None, **kwargs), with one-line errors for bad names/kwargs."""
    import torchvision
    from torchvision.models import get_model, list_models

    known = list_models(module=torchvision.models)  # classification models only
    if not isinstance(name, str) or name not in known:
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f"closest: {', '.join(close)}" if close else "see torchvision.models.list_models()"
        raise ModelConfigError(f"unknown torchvision classification model {name!r} ({hint})")
    try:
        return get_model(name, weights=None, **dict(kwargs))
    except (TypeError, ValueError) as e:
        raise ModelConfigError(f"torchvision {name}(**{dict(kwargs)}) failed: {str(e).splitlines()[0]}") from None


# value-only in-place ops the initializers use; on meta tensors (no values) they only cost time
_INIT_OPS = frozenset({"uniform_", "normal_", "trunc_normal_", "fill_", "zero_", "erfinv_", "mul_", "add_", "sub_",
                       "div_", "clamp_", "copy_", "exponential_", "random_", "bernoulli_", "log_normal_"})


class _MetaInit(TorchFunctionMode):
    """Used inside `torch.device('meta')`: skips initializers on meta tensors; cpu_arange keeps torch.arange and
    torch.tensor on the CPU (RegNet's builder computes its stage widths with tensors and reads them back)."""

    def __init__(self, cpu_arange: bool = False):
        super().__init__()
        self.cpu_arange = cpu_arange

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (getattr(func, "__name__", "") in _INIT_OPS and args and isinstance(args[0], torch.Tensor)
                and args[0].is_meta):
            return args[0]
        if self.cpu_arange and func in (torch.arange, torch.tensor) and kwargs.get("device") is None:
            kwargs = {**kwargs, "device": "cpu"}
        return func(*args, **kwargs)


def build_without_init(name: str, kwargs: FrozenKwargs = ()) -> nn.Module:
    """The model on the meta device, initializers skipped (no memory, no init time); RegNet's builder needs real
    tensors for its widths, so torch.arange stays on the CPU while it builds."""
    try:
        with torch.device("meta"), _MetaInit():
            return build_torchvision(name, kwargs)
    except (RuntimeError, NotImplementedError):
        with torch.device("meta"), _MetaInit(cpu_arange=True):
            return build_torchvision(name, kwargs)


def replace_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


# ---- stride-8/16/32 feature maps ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=128)
def probe_features(name: str, kwargs: FrozenKwargs = (), last_conv: bool = False,
                   strides: Tuple[int, ...] = TARGET_STRIDES) -> FeatureSpec:
    """Measure which modules of torchvision model `name` end its stride-8/16/32 stages (see the module docstring).

    last_conv=False drops a trailing 1x1 conv that follows the last stage (MobileNetV2's 320->1280,
    ShuffleNetV2's conv5, EfficientNet's head conv); ResNet/ConvNeXt/RegNet have none and are unaffected.
    """
    model = build_without_init(name, kwargs).eval()
    if is_vit(model):
        return _probe_vit(name, model, strides)
    unit = window_unit(model)
    size = (unit, unit) if unit else PROBE_HW  # MaxViT's grid attention needs a square
    if unit:
        set_partition_grids(model, unit)
    records, calls, x_id = _trace(model, size)
    picked = _pick(records, strides, name, size)
    dropped = None
    if not last_conv:
        dropped = _trailing_pointwise(records, picked[-1][0])
        if dropped is not None:
            replace_module(model, dropped, nn.Identity())
            records, calls, x_id = _trace(model, size, head_may_fail=True)
            picked = _pick(records, strides, name, size)
    nodes = tuple(p[0].name for p in picked)
    chain, returns = _sequential_chain(model, nodes, calls, x_id)
    channels = tuple(r.shape[3 if layout == "NHWC" else 1] for r, _, layout, _ in picked)
    return FeatureSpec(model=name, modules=nodes, channels=channels,
                       strides=tuple(p[1] for p in picked), chain=chain, returns=returns if chain else nodes,
                       dropped=dropped, layouts=tuple(p[2] for p in picked), exact=all(p[3] for p in picked),
                       kind="maxvit" if unit else "stages")


def _probe_vit(name: str, model: nn.Module, strides: Sequence[int]) -> FeatureSpec:
    """ViT: the encoder's token map (ViTMap) and the simple pyramid made from it, measured on the meta device."""
    trunk = ViTMap(model, name)
    with torch.device("meta"):
        pyramid = SimplePyramid(model.hidden_dim, trunk.stride, strides)
        x = torch.zeros(1, 3, *PROBE_HW)
    with torch.no_grad():
        maps = pyramid(trunk(x))
    got = [nearest_power_of_two(PROBE_HW[0] / m.shape[2]) for m in maps]
    if got != list(strides):  # the pyramid is built for these strides; anything else is a bug here, not user input
        raise RuntimeError(f"{name}: simple pyramid gave strides {got}, expected {list(strides)}")
    return FeatureSpec(model=name, modules=("encoder",) * len(maps), channels=tuple(m.shape[1] for m in maps),
                       strides=tuple(strides), chain=None, returns=(), dropped=None, layouts=("NCHW",) * len(maps),
                       exact=True, kind="vit")


def _trace(model: nn.Module, size: Tuple[int, int], head_may_fail: bool = False):
    """Run the probe (on the model's device, usually meta) with hooks on the direct children and on the children of
    opened containers (the possible cut points).

    Returns (records in completion order, calls {name: (id(input), id(output), completion index)}, id(probe input)).
    head_may_fail: after a trailing conv was dropped the classifier no longer fits its input; the feature maps are
    recorded before it runs, so its failure is expected and ignored (missing strides are still reported by _pick).
    """
    records: List[_Record] = []
    calls: Dict[str, Tuple[int, int, int]] = {}
    keep: List[Any] = []  # hold every hooked tensor so ids stay unique during the trace
    handles = []

    def post(mod: nn.Module, inputs: Any, out: Any, name: str) -> None:
        first = inputs[0] if inputs else None
        keep.extend((first, out))
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) and out.dim() == 4 else None
        records.append(_Record(name, mod, shape))
        # a module called twice cannot be a link of a simple chain: mark it
        calls[name] = (-1, -1, -1) if name in calls else (id(first), id(out), len(records))

    for name, mod in model.named_modules():
        parent = name.rpartition(".")[0]
        if name and name.count(".") < MAX_DEPTH and (not parent or _opened(model.get_submodule(parent))):
            handles.append(mod.register_forward_hook(functools.partial(post, name=name)))
    x = torch.zeros(1, 3, *size, device=next(model.parameters()).device)
    try:
        with torch.no_grad():
            model(x)
    except Exception as e:  # a model that cannot run the probe image is a config error for this row
        if not head_may_fail:
            raise ModelConfigError(f"probe forward of {type(model).__name__} at {size[0]}x{size[1]} failed: "
                                   f"{str(e).splitlines()[0]}") from None
    finally:
        for h in handles:
            h.remove()
    return records, calls, id(x)


def _opened(module: nn.Module) -> bool:
    """A plain nn.Sequential or nn.ModuleList: its children are links of the model's chain. Children of other blocks
    (Inception's parallel branches) are internals, never cut points."""
    return isinstance(module, nn.ModuleList) or type(module).forward is nn.Sequential.forward


def _flat_children(model: nn.Module) -> List[str]:
    """Direct children, with plain nn.Sequential and nn.ModuleList children replaced by their own children."""
    names = []
    for n, child in model.named_children():
        if _opened(child) and len(child):
            names.extend(f"{n}.{c}" for c, _ in child.named_children())
        else:
            names.append(n)
    return names


def _sequential_chain(model: nn.Module, nodes: Sequence[str], calls: Dict[str, Tuple[int, int, int]],
                      x_id: int) -> Tuple[Optional[Tuple[str, ...]], Tuple[str, ...]]:
    """(chain up to the last node, the chain element ending each node) when the probe shows forward() runs that
    chain with nothing in between; (None, ()) otherwise. Children the probe never ran are not part of the chain."""
    flat = [f for f in _flat_children(model) if f in calls]
    returns = []
    for node in nodes:
        inside = [i for i, f in enumerate(flat) if f == node or f.startswith(node + ".")]
        if not inside:
            return None, ()
        returns.append(inside[-1])
    chain = flat[:returns[-1] + 1]
    prev, order = x_id, 0
    for name in chain:
        in_id, out_id, index = calls[name]
        if in_id != prev or index < order:
            return None, ()
        prev, order = out_id, index
    return tuple(chain), tuple(flat[i] for i in returns)


def _map_stride(shape: Tuple[int, ...], size: Tuple[int, int]) -> Optional[Tuple[int, str, bool]]:
    """(stride, layout, exact) of a 4-D output, None when it is no map (a pooled vector, a fixed-size adaptive pool).

    The stride is the probe-to-map size ratio rounded to a power of two, the same on both sides. A reading whose
    sides are exactly ceil(probe/stride) wins: as the probe's aspect ratio is not a power of two, a channels-last map
    can only be read exactly as channels-last, and an NCHW map as NCHW. Otherwise (ceil-mode / unpadded nets) NCHW is
    tried before channels-last."""
    readings = []
    for layout, (i, j) in (("NCHW", (2, 3)), ("NHWC", (1, 2))):
        h, w = shape[i], shape[j]
        if h and w:
            s = nearest_power_of_two(size[0] / h)
            if s == nearest_power_of_two(size[1] / w):
                readings.append((s, layout, (h, w) == (math.ceil(size[0] / s), math.ceil(size[1] / s))))
    readings.sort(key=lambda r: not r[2])  # exact readings first, stable otherwise
    return readings[0] if readings else None


def _pick(records: List[_Record], strides: Sequence[int], name: str,
          size: Tuple[int, int]) -> List[Tuple[_Record, int, str, bool]]:
    """For each stride, (the module that finishes last with a map of that stride, stride, layout, exact). Deep strides
    the model lacks are left out (SqueezeNet ends at 16); a missing shallow one is an error."""
    last: Dict[int, Tuple[_Record, int, str, bool]] = {}
    for r in records:
        if r.shape is None or isinstance(r.module, nn.Identity) or r.name.split(".")[0] in HEAD_NAMES:
            continue
        found = _map_stride(r.shape, size)
        if found:
            last[found[0]] = (r, *found)
    have = [s for s in strides if s in last]
    if have != list(strides[:len(have)]) or not have:
        missing = next(s for s in strides if s not in last)
        raise ModelConfigError(f"torchvision {name}: no feature map with stride {missing} in modules up to depth "
                               f"{MAX_DEPTH} (strides found: {sorted(last)}); it cannot feed P3/P4/P5")
    return [last[s] for s in have]


def _trailing_pointwise(records: List[_Record], final: _Record) -> Optional[str]:
    """Name of the single 1x1 conv block that produces the final map (descending into the last submodule with the
    same output shape), or None when the final map comes from a multi-conv stage."""
    rec = final
    while True:
        convs = [m for m in rec.module.modules() if isinstance(m, nn.Conv2d)]
        if len(convs) == 1:
            c = convs[0]
            return rec.name if c.kernel_size == (1, 1) and c.stride == (1, 1) and c.groups == 1 else None
        inner = [r for r in records if r.name.startswith(rec.name + ".") and r.shape == rec.shape]
        if not convs or not inner:
            return None
        rec = inner[-1]


class StageFeatures(nn.Module):
    """Runs a torchvision model's modules `chain` in order (original names kept, nothing else held) and returns the
    outputs of the `returns` modules: [(B, C3, H/8, W/8), (B, C4, H/16, W/16), (B, C5, H/32, W/32)]."""

    def __init__(self, model: nn.Module, chain: Sequence[str], returns: Sequence[str]):
        super().__init__()
        for name in chain:
            parent = self
            *path, leaf = name.split(".")
            for part in path:
                if part not in dict(parent.named_children()):
                    parent.add_module(part, nn.Module())  # a plain container keeps 'features.6' names
                parent = parent.get_submodule(part)
            parent.add_module(leaf, model.get_submodule(name))
        self.chain = list(chain)
        self.returns = set(returns)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for name in self.chain:
            x = self.get_submodule(name)(x)
            if name in self.returns:
                outs.append(x)
        return outs


def feature_body(model: nn.Module, spec: FeatureSpec) -> nn.Module:
    """Cut `model` (built like the probe's) at spec.modules; the result returns the feature maps (list, or a dict for the
    FX fallback; ViT: its one token map, see feature_pyramid)."""
    if spec.kind == "vit":
        return ViTMap(model, spec.model)
    if spec.dropped:
        replace_module(model, spec.dropped, nn.Identity())
    if spec.chain is not None:
        body: nn.Module = StageFeatures(model, spec.chain, spec.returns)
    else:
        from torchvision.models.feature_extraction import create_feature_extractor
        body = create_feature_extractor(model, return_nodes={n: n for n in spec.modules})
    unit = window_unit(model)
    return SquarePadded(body, unit) if spec.kind == "maxvit" and unit else body


def feature_pyramid(model: nn.Module, spec: FeatureSpec) -> Optional[nn.Module]:
    """The layers that turn a single-scale body's map into P3/P4/P5 (ViT: SimplePyramid), or None."""
    if spec.kind != "vit":
        return None
    return SimplePyramid(model.hidden_dim, nearest_power_of_two(model.patch_size), spec.strides)


def as_nchw_grid(maps: Sequence[torch.Tensor], image_hw: Sequence[int], spec: FeatureSpec) -> List[torch.Tensor]:
    """Channels-last maps permuted to NCHW; with inexact maps (ceil-mode / unpadded nets) each map resampled
    bilinearly to ceil(H/s) x ceil(W/s), the grid the detector's stride-s cells cover."""
    out = []
    for m, s, layout in zip(maps, spec.strides, spec.layouts or ("NCHW",) * len(maps)):
        if layout == "NHWC":
            m = m.permute(0, 3, 1, 2)
        grid = (math.ceil(image_hw[0] / s), math.ceil(image_hw[1] / s))
        if not spec.exact and tuple(m.shape[-2:]) != grid:
            m = F.interpolate(m, size=grid, mode="bilinear", align_corners=False)
        out.append(m)
    return out


# ---- ultralytics' TorchVision semantics: unwrap / truncate / split ------------------------------------------

def unwrap_model(model: nn.Module, unwrap: bool, truncate: int) -> nn.Module:
    """unwrap: the model's children (the first one's children when it is a Sequential) minus the last `truncate`, as
    a Sequential; otherwise the whole model with its `head`/`heads` replaced by Identity."""
    if not unwrap:
        for attr in ("head", "heads"):
            if hasattr(model, attr):
                setattr(model, attr, nn.Identity())
        return model
    layers = list(model.children())
    if layers and isinstance(layers[0], nn.Sequential):
        layers = [*layers[0].children(), *layers[1:]]
    if truncate:
        layers = layers[:-truncate]
    if not layers:
        raise ModelConfigError(f"unwrapping {type(model).__name__} with truncate={truncate} leaves no layers")
    return nn.Sequential(*layers)


def run_unwrapped(body: nn.Module, x: torch.Tensor, split: bool) -> Union[torch.Tensor, List[torch.Tensor]]:
    """Forward of an unwrapped model: split returns [x, output of layer 0, output of layer 1, ...]."""
    if not split:
        return body(x)
    y = [x]
    for m in body:
        y.append(m(y[-1]))
    return y


@functools.lru_cache(maxsize=64)
def probe_unwrapped(name: str, kwargs: FrozenKwargs, unwrap: bool, truncate: int,
                    split: bool) -> Union[int, Tuple[int, ...]]:
    """Output channels of an unwrapped model (a tuple per output when split), by a meta-device forward."""
    body = unwrap_model(build_without_init(name, kwargs).eval(), unwrap, truncate)
    x = torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE, device=next(body.parameters()).device)
    try:
        with torch.no_grad():
            out = run_unwrapped(body, x, split and unwrap)
    except Exception as e:  # e.g. a classifier that needs a flatten the unwrapped Sequential lacks
        raise ModelConfigError(f"torchvision {name} unwrapped (truncate={truncate}) cannot run: "
                               f"{str(e).splitlines()[0]}") from None
    if isinstance(out, list):
        return tuple(int(t.shape[1]) for t in out)
    return int(out.shape[1])
