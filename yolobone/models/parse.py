"""Model YAML -> nn.Sequential, with YOLOv5 v7.0 semantics and no eval.

Rows are `[from, number, module, args]` over `backbone + head`:
- `from`: -1 (previous layer), an absolute index, a negative offset, or a list of those; in the head also a level
  name `P3`, `P4`, `P5` (`P2`, `P6`, ...): the backbone's last row at stride 8, 16, 32 (4, 64), measured by a
  shape-only pass through the backbone rows (yolobone/models/levels.py), so a neck written that way fits any backbone.
- `number`: repeats, scaled as max(round(n * depth_multiple), 1) when n > 1. `backbone_depth_multiple` and
  `backbone_width_multiple` (set by composing a backbone file, yolobone/models/compose.py) replace the multiples for the
  backbone rows only.
- `module`: a registered block name (yolobone/models/registry.py) or a whitelisted `nn.<Layer>`.
- `args`: numbers, booleans, None, lists, plain strings, the names `nc` and `anchors`, and activations written
  `nn.LeakyReLU(0.1)` (a whitelisted layer with literal numeric arguments, read by yolobone/models/activation.py).
"""
from __future__ import annotations

import copy
import inspect
import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch.nn as nn
import yaml

from yolobone.models.activation import activation_scope, parse_activation
from yolobone.models.levels import level_names, level_of, levels_from_strides, row_strides
from yolobone.models.registry import BlockSpec, Channels, LayerContext, ModelConfigError, get_block
from yolobone.models.scales import model_multiples, set_scale_from_name
from yolobone.utils.errors import first_line
from yolobone.utils.paths import find_config
from yolobone.utils.yaml_io import load_yaml_document

REQUIRED_KEYS = ("backbone", "head")
KNOWN_KEYS = {"nc", "depth_multiple", "width_multiple", "anchors", "backbone", "head", "activation", "ch",
              "inplace", "probe_size", "names", "kpt_shape", "max_channels", "scale", "scales", "name",
              "backbone_name", "backbone_depth_multiple", "backbone_width_multiple"}
# A plain string argument: a name, a weights name, a file path. Anything with brackets, quotes, operators or
# dunder names is refused rather than evaluated.
_PLAIN_STRING = re.compile(r"^[A-Za-z0-9_.\-/\\:~+ ]*$")
# YOLOv7 rows pass activations positionally, e.g. Conv [32, 3, 2, None, 1, nn.LeakyReLU(0.1)].
_ACTIVATION_CALL = re.compile(r"^nn\.[A-Za-z0-9]+\(.*\)$")
_LITERALS = {"None": None, "True": True, "False": False, "none": None, "true": True, "false": False}


@dataclass
class ModelSpec:
    """A model YAML and where it came from (for error messages)."""

    data: Dict[str, Any]
    source: str = "<dict>"
    row_lines: List[Optional[int]] = field(default_factory=list)  # 1-based YAML line of each layer row
    row_sources: List[str] = field(default_factory=list)  # file of each row when composed from several files

    def where(self, i: Optional[int] = None) -> str:
        """'file:line: layer i' prefix for messages."""
        line = self.row_lines[i] if i is not None and i < len(self.row_lines) else None
        source = self.row_sources[i] if i is not None and i < len(self.row_sources) else self.source
        loc = f"{source}:{line}" if line else source
        return f"{loc}: layer {i}" if i is not None else loc

    @property
    def name(self) -> str:
        """The model's name for summaries: the YAML's `name`, else its file stem."""
        return str(self.data.get("name") or Path(self.source).stem)

    @property
    def rows(self) -> List[Any]:
        return list(self.data.get("backbone") or []) + list(self.data.get("head") or [])


# A model YAML file whose top level has one of these keys is another kind of file, read by its registered loader
# (path, data) -> ModelSpec: compose.py registers `neck:` composition files. Registered from above, so this module
# never imports the modules that build on it.
FILE_KINDS: Dict[str, Callable[[Path, Dict[str, Any]], "ModelSpec"]] = {}


def register_file_kind(key: str, loader: Callable[[Path, Dict[str, Any]], "ModelSpec"]) -> None:
    """Files with top-level `key` are loaded by `loader` (yolobone.models imports every module that registers)."""
    FILE_KINDS[key] = loader


def load_model_yaml(cfg: Union[str, Path, Dict[str, Any], ModelSpec]) -> ModelSpec:
    """Read and structurally check a model YAML (a path, an already-loaded dict, or a ModelSpec)."""
    if isinstance(cfg, ModelSpec):
        return cfg
    if isinstance(cfg, dict):
        spec = ModelSpec(copy.deepcopy(cfg), str(cfg.get("yaml_file", "<dict>")))
        spec.row_lines = [None] * len(spec.rows)
    else:
        path = find_config(cfg)
        data, lines = read_yaml_rows(path, "model YAML")
        kind = next((k for k in FILE_KINDS if k in data), None)
        if kind is not None:  # e.g. a composition file: `neck: yolov5s.yaml` + `backbone: resnet50`
            return FILE_KINDS[kind](path, data)
        set_scale_from_name(data, str(path))
        spec = ModelSpec(data, str(path))
        spec.row_lines = lines.get("backbone", []) + lines.get("head", [])
    _check_structure(spec)
    return spec


def read_yaml_rows(path: Path, what: str) -> Tuple[Dict[str, Any], Dict[str, List[int]]]:
    """A YAML mapping file -> (data, {'backbone'|'head': 1-based line of each row}); every model and backbone
    YAML is read here."""
    path = find_config(path)
    if not path.is_file():
        raise ModelConfigError(f"{path}: {what} not found")
    data, node = load_yaml_document(path, ModelConfigError)
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path}: expected a mapping with 'backbone' and 'head', got {type(data).__name__}")
    lines: Dict[str, List[int]] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) in REQUIRED_KEYS and isinstance(value, yaml.SequenceNode):
                lines[key.value] = [item.start_mark.line + 1 for item in value.value]
    return data, lines


def _check_structure(spec: ModelSpec) -> None:
    d = spec.data
    for k in REQUIRED_KEYS:
        if k not in d:
            raise ModelConfigError(f"{spec.source}: missing required key '{k}' (expected a list of "
                                   f"[from, number, module, args] rows under 'backbone' and 'head')")
        if d[k] is not None and not isinstance(d[k], list):
            raise ModelConfigError(f"{spec.source}: '{k}' must be a list of [from, number, module, args] rows, "
                                   f"got {type(d[k]).__name__}")
    if not spec.rows:
        raise ModelConfigError(f"{spec.source}: 'backbone' and 'head' hold no layers")
    for key in ("depth_multiple", "width_multiple", "backbone_depth_multiple", "backbone_width_multiple"):
        v = d.get(key, 1.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ModelConfigError(f"{spec.source}: '{key}' must be a positive number, got {v!r}")
    nc = d.get("nc", 80)
    if isinstance(nc, bool) or not isinstance(nc, int) or nc < 1:
        raise ModelConfigError(f"{spec.source}: 'nc' must be a positive integer, got {nc!r}")
    for i, row in enumerate(spec.rows):
        if not isinstance(row, list) or len(row) not in (3, 4):
            raise ModelConfigError(f"{spec.where(i)}: expected a row [from, number, module, args], got {row!r}")


def resolve_arg(value: Any, spec: ModelSpec, i: int, nc: int, anchors: Any) -> Any:
    """One YAML argument -> a Python value; refuses anything that would need evaluating."""
    if isinstance(value, list):
        return [resolve_arg(v, spec, i, nc, anchors) for v in value]
    if isinstance(value, dict):
        return {k: resolve_arg(v, spec, i, nc, anchors) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    if value == "nc":
        return nc
    if value == "anchors":
        if anchors is None:
            raise ModelConfigError(f"{spec.where(i)}: argument 'anchors' used but the YAML has no 'anchors' key")
        return copy.deepcopy(anchors)
    if value in _LITERALS:
        return _LITERALS[value]
    if _ACTIVATION_CALL.match(value):
        try:
            return parse_activation(value)
        except ValueError:
            pass  # not a whitelisted activation with literal arguments: refused as code below
    if not _PLAIN_STRING.match(value) or "__" in value or ":" in value[2:] or \
            any(keyword.iskeyword(tok) for tok in value.split()):
        raise ModelConfigError(f"{spec.where(i)}: argument {value!r} looks like code; arguments must be numbers, "
                               f"booleans, None, lists, plain names or paths, 'nc', 'anchors' or an activation such as "
                               f"nn.LeakyReLU(0.1) (nothing is evaluated)")
    return value


def _resolve_from(f: Any, i: int, spec: ModelSpec, name: str,
                  levels: Optional[Dict[int, int]] = None) -> Tuple[Union[int, List[int]], List[int]]:
    """`from` -> (as written with level names replaced by row indices, absolute source indices with -1 meaning the
    network input). `levels` maps P-levels to backbone rows (head rows only; None in the backbone)."""
    items = f if isinstance(f, list) else [f]
    if not items or any(isinstance(x, bool) or not (isinstance(x, int) or level_of(x)) for x in items):
        levels_hint = ", or a level name P3/P4/P5 in the head" if levels is not None else ""
        raise ModelConfigError(f"{spec.where(i)} ({name}): `from` must be an integer or a list of integers"
                               f"{levels_hint}, got {f!r}")
    written, resolved = [], []
    for x in items:
        k = level_of(x)
        if k is not None:
            if levels is None:
                raise ModelConfigError(f"{spec.where(i)} ({name}): `from` {x} names a backbone level; levels are "
                                       f"for head rows (the backbone's own rows use indices)")
            if k not in levels:
                raise ModelConfigError(f"{spec.where(i)} ({name}): neck asks for {x}; backbone "
                                       f"{spec.data.get('backbone_name') or spec.name} has {level_names(levels)}")
            x = levels[k]
        j = i + x if x < 0 else x
        if i == 0 and x == -1:
            j = -1
        elif not 0 <= j < i:
            avail = f"layers 0..{i - 1} exist before it" if i else "only -1 (the input image) is valid for layer 0"
            raise ModelConfigError(f"{spec.where(i)} ({name}): `from` {x} is out of range; {avail}")
        written.append(x)
        resolved.append(j)
    return (written if isinstance(f, list) else written[0]), resolved


def _uses_levels(rows: List[Any]) -> bool:
    return any(level_of(x) is not None for row in rows if isinstance(row, list) and row
               for x in (row[0] if isinstance(row[0], list) else [row[0]]))


def _check_signature(bspec: BlockSpec, args: List[Any], spec: ModelSpec, i: int) -> None:
    try:
        sig = inspect.signature(bspec.cls)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*args)
    except TypeError as e:
        params = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}"
                           for p in sig.parameters.values())
        raise ModelConfigError(f"{spec.where(i)} ({bspec.name}): wrong arguments {args} for "
                               f"{bspec.name}({params}) ({e})") from None


def parse_model(cfg: Union[str, Path, Dict[str, Any], ModelSpec], ch: int = 3, nc: Optional[int] = None,
                verbose: bool = False) -> Tuple[nn.Sequential, List[int], List[Channels], ModelSpec]:
    """Build the layers of a model YAML.

    Returns (layers, indices whose outputs later layers read, output channels per layer, the resolved YAML).
    Each layer gets attributes i (index), f (`from`), type (module name) and np (parameter count).
    """
    spec = load_model_yaml(cfg)
    d = spec.data
    if nc is not None and nc != d.get("nc"):
        d["nc"] = nc
    nc = int(d.get("nc", 80))
    mult = model_multiples(d, spec.source)
    gd, gw = mult.depth, mult.width
    n_backbone = len(d.get("backbone") or [])
    backbone_gd = float(d.get("backbone_depth_multiple", gd))
    backbone_gw = float(d.get("backbone_width_multiple", gw))
    head_uses_levels = _uses_levels(list(d.get("head") or []))
    levels: Optional[Dict[int, int]] = None
    anchors = d.get("anchors")
    no = _anchor_outputs(anchors, nc)
    act_factory = None
    if d.get("activation"):
        try:
            act_factory = parse_activation(d["activation"])
        except ValueError as e:
            raise ModelConfigError(f"{spec.source}: {e}") from None

    layers, save, chs = [], [], []
    with activation_scope(act_factory):
        for i, row in enumerate(spec.rows):
            f, n, name = row[0], row[1], row[2]
            raw_args = row[3] if len(row) > 3 else []
            if not isinstance(name, str):
                raise ModelConfigError(f"{spec.where(i)}: module name must be a string, got {name!r}")
            if raw_args is None:
                raw_args = []
            if not isinstance(raw_args, list):
                raise ModelConfigError(f"{spec.where(i)} ({name}): args must be a list, got {raw_args!r}")
            try:
                bspec = get_block(name, raw_args)
            except ModelConfigError as e:
                raise ModelConfigError(f"{spec.where(i)}: {e}") from None
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ModelConfigError(f"{spec.where(i)} ({name}): `number` must be a positive integer, got {n!r}")
            if i == n_backbone and head_uses_levels:
                size = int(d.get("probe_size", 256))
                levels = levels_from_strides(row_strides(layers, ch, size, spec.where))
            elif i >= n_backbone and levels is None:
                levels = {}
            row_gd, row_gw = (backbone_gd, backbone_gw) if i < n_backbone else (gd, gw)
            f, sources = _resolve_from(f, i, spec, name, levels)
            args = [resolve_arg(a, spec, i, nc, anchors) for a in raw_args]
            n = max(round(n * row_gd), 1) if n > 1 else n
            c_in = [ch if j == -1 else chs[j] for j in sources]
            ctx = LayerContext(c_in=c_in, width_multiple=row_gw, depth_multiple=row_gd, nc=nc, no=no, n=n, index=i,
                               name=name, max_channels=mult.max_channels, scale=mult.scale,
                               previous=tuple(m.type for m in layers))
            try:
                args, c2 = bspec.channels(ctx, args)
            except ModelConfigError as e:
                raise ModelConfigError(f"{spec.where(i)}: {e}") from None
            copies = n
            if bspec.repeat == "internal":
                args.insert(2, n)
                copies = 1
            module = _instantiate(bspec, args, copies, spec, i)
            module.i, module.f, module.type, module.sources = i, f, name, sources
            module.from_text = row[0]  # as written (level names kept) for the layer table
            module.np = sum(p.numel() for p in module.parameters())
            module.yaml_args = args
            module.n = n
            layers.append(module)
            save.extend(j for j in sources if j != -1 and j != i - 1)
            chs.append(c2)
    return nn.Sequential(*layers), sorted(set(save)), chs, spec


def _anchor_outputs(anchors: Any, nc: int) -> int:
    """YOLOv5's `no` (anchors per level x (5 + nc)), which its width rule never scales; 0 for a YAML without
    anchors (anchor-free heads: every channel count is scaled)."""
    if anchors is None:
        return 0
    na = (len(anchors[0]) // 2 if isinstance(anchors, list) and anchors and isinstance(anchors[0], list)
          else anchors if isinstance(anchors, int) else 3)
    return na * (nc + 5)


def _instantiate(bspec: BlockSpec, args: List[Any], copies: int, spec: ModelSpec, i: int) -> nn.Module:
    _check_signature(bspec, args, spec, i)
    follow = bspec.repeat_args
    if copies > 1 and follow is None:
        raise ModelConfigError(f"{spec.where(i)} ({bspec.name}): `number` {copies} asks for {copies} chained copies, "
                               f"but {bspec.name} declares no rule for the arguments of copies 2..{copies} "
                               f"(register_block(repeat_args=...)); use number 1")
    try:
        first = bspec.cls(*args)
        if copies == 1:
            return first
        rest = follow(args)
        _check_signature(bspec, rest, spec, i)
        return nn.Sequential(first, *(bspec.cls(*rest) for _ in range(copies - 1)))
    except ModelConfigError as e:
        raise ModelConfigError(f"{spec.where(i)} ({bspec.name}): {e}") from None
    except (TypeError, ValueError, RuntimeError, KeyError, IndexError) as e:
        raise ModelConfigError(f"{spec.where(i)} ({bspec.name}): cannot build with args {args}: "
                               f"{first_line(e)}") from None
