"""Find a torchvision classifier's stride-8/16/32 feature maps by a dry forward pass, and cut the network there.

Nothing is typed by hand: `probe_features` builds the model on the meta device (no memory, no init time), runs a
256x256 probe with forward hooks on every module up to two levels deep, and for each target stride takes the module
that finishes last with that stride (the end of the stage).

Cutting: the model's children, with plain `nn.Sequential` children opened one level (MobileNet's `features.6`,
RegNet's `trunk_output.block2`), form a chain; when the probe shows forward() runs exactly that chain (each module's
input is the previous one's output, as `IntermediateLayerGetter` assumes for direct children), `StageFeatures` keeps
only the chain's modules up to P5 under their original names and runs them. Otherwise
`torchvision.models.feature_extraction.create_feature_extractor` cuts it (FX graph modules lose their train/eval state
under deepcopy, which the EMA uses, so they are only the fallback). Probe results are cached per (model, kwargs,
options).
"""
from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from models.registry import ModelConfigError

PROBE_SIZE = 256  # a multiple of 32; the same default as the detector's stride probe
MAX_DEPTH = 2  # hook module names with at most this many parts ('layer2', 'features.6')
TARGET_STRIDES = (8, 16, 32)

FrozenKwargs = Tuple[Tuple[str, Any], ...]


@dataclass(frozen=True)
class FeatureSpec:
    """Where a torchvision model's P3/P4/P5 maps come from (feature_info-style), as measured by the probe."""

    model: str
    nodes: Tuple[str, ...]  # module names whose outputs are returned, shallow to deep
    channels: Tuple[int, ...]
    strides: Tuple[int, ...]
    chain: Optional[Tuple[str, ...]]  # modules run in sequence up to P5 (StageFeatures), or None (FX fallback)
    returns: Tuple[str, ...]  # the chain element ending each node (equal to nodes when chain is None)
    dropped: Optional[str]  # a trailing 1x1 conv replaced by Identity (last_conv=False), or None


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


def build_without_init(name: str, kwargs: FrozenKwargs = ()) -> nn.Module:
    """The model on the meta device (no memory, no init time) when its builder allows it; RegNet's builder computes
    widths with tensors, so such models are built on the CPU instead."""
    try:
        with torch.device("meta"):
            return build_torchvision(name, kwargs)
    except (RuntimeError, NotImplementedError):
        with torch.device("cpu"):
            return build_torchvision(name, kwargs)


def replace_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


# ---- stride-8/16/32 feature maps ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def probe_features(name: str, kwargs: FrozenKwargs = (), last_conv: bool = False,
                   strides: Tuple[int, ...] = TARGET_STRIDES) -> FeatureSpec:
    """Measure which modules of torchvision model `name` end its stride-8/16/32 stages (see the module docstring).

    last_conv=False drops a trailing 1x1 conv that follows the last stage (MobileNetV2's 320->1280,
    ShuffleNetV2's conv5, EfficientNet's head conv); ResNet/ConvNeXt/RegNet have none and are unaffected.
    """
    model = build_without_init(name, kwargs).eval()
    records, calls, x_id = _trace(model)
    picked = _pick(records, strides, name)
    dropped = None
    if not last_conv:
        dropped = _trailing_pointwise(records, picked[-1])
        if dropped is not None:
            replace_module(model, dropped, nn.Identity())
            records, calls, x_id = _trace(model, head_may_fail=True)
            picked = _pick(records, strides, name)
    nodes = tuple(r.name for r in picked)
    chain, returns = _sequential_chain(model, nodes, calls, x_id)
    return FeatureSpec(model=name, nodes=nodes, channels=tuple(r.shape[1] for r in picked), strides=tuple(strides),
                       chain=chain, returns=returns if chain else nodes, dropped=dropped)


def _trace(model: nn.Module, head_may_fail: bool = False):
    """Run the probe (on the model's device, usually meta) with hooks.

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
        if name and name.count(".") < MAX_DEPTH:
            handles.append(mod.register_forward_hook(functools.partial(post, name=name)))
    x = torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE, device=next(model.parameters()).device)
    try:
        with torch.no_grad():
            model(x)
    except Exception as e:  # a model that cannot run a 256x256 image is a config error for this row
        if not head_may_fail:
            raise ModelConfigError(f"probe forward of {type(model).__name__} failed: "
                                   f"{str(e).splitlines()[0]}") from None
    finally:
        for h in handles:
            h.remove()
    return records, calls, id(x)


def _flat_children(model: nn.Module) -> List[str]:
    """Direct children, with plain nn.Sequential children replaced by their own children."""
    names = []
    for n, child in model.named_children():
        if type(child).forward is nn.Sequential.forward and len(child):
            names.extend(f"{n}.{c}" for c, _ in child.named_children())
        else:
            names.append(n)
    return names


def _sequential_chain(model: nn.Module, nodes: Sequence[str], calls: Dict[str, Tuple[int, int, int]],
                      x_id: int) -> Tuple[Optional[Tuple[str, ...]], Tuple[str, ...]]:
    """(chain up to the last node, the chain element ending each node) when the probe shows forward() runs that
    chain with nothing in between; (None, ()) otherwise."""
    flat = _flat_children(model)
    returns = []
    for node in nodes:
        inside = [i for i, f in enumerate(flat) if f == node or f.startswith(node + ".")]
        if not inside:
            return None, ()
        returns.append(inside[-1])
    chain = flat[:returns[-1] + 1]
    prev, order = x_id, 0
    for name in chain:
        in_id, out_id, index = calls.get(name, (-1, -1, -1))
        if in_id != prev or index < order:
            return None, ()
        prev, order = out_id, index
    return tuple(chain), tuple(flat[i] for i in returns)


def _pick(records: List[_Record], strides: Sequence[int], name: str) -> List[_Record]:
    """For each stride, the module that finishes last with an output of that stride."""
    last: Dict[int, _Record] = {}
    for r in records:
        if r.shape is None or isinstance(r.module, nn.Identity):
            continue
        h, w = r.shape[2:]
        if h and w and PROBE_SIZE % h == 0 and PROBE_SIZE // h == PROBE_SIZE // w:
            last[PROBE_SIZE // h] = r
    missing = [s for s in strides if s not in last]
    if missing:
        raise ModelConfigError(f"torchvision {name}: no NCHW feature map with stride {missing[0]} in modules up to "
                               f"depth {MAX_DEPTH} (strides found: {sorted(last)}); it cannot feed P3/P4/P5")
    return [last[s] for s in strides]


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
    """Cut `model` (built like the probe's) at spec.nodes; the result returns the feature maps (list, or a dict for the
    FX fallback)."""
    if spec.dropped:
        replace_module(model, spec.dropped, nn.Identity())
    if spec.chain is not None:
        return StageFeatures(model, spec.chain, spec.returns)
    from torchvision.models.feature_extraction import create_feature_extractor
    return create_feature_extractor(model, return_nodes={n: n for n in spec.nodes})


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
