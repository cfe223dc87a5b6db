"""A model from a neck YAML and a backbone file: `--backbone NAME|FILE`, and `neck:` + `backbone:` composition files.

    configs/backbones/resnet50.yaml      only `backbone:` rows (+ depth_multiple / width_multiple for those rows)
    configs/yolov5s-resnet50.yaml        `neck: yolov5s.yaml` + `backbone: resnet50`

The neck is any model YAML: its `backbone:` rows are replaced and its head is rewritten in level form, so the stock
YOLOv5 YAMLs (n/s/m/l/x, P6) serve as necks unchanged. A head `from` that points into the old backbone becomes the
level of that row (`6` -> `P4`: the row's stride, measured on the meta device); one that points into the head becomes
a relative offset. A trailing SPPF/SPP (and YOLO11's C2PSA after it) of the old backbone reads the top level and
belongs to the neck: it is kept as the first head row (so `yolov5s.yaml` + `cspdarknet` is yolov5s.yaml again, row
for row).

Multiples: a backbone file that sets `depth_multiple` / `width_multiple` keeps them for its own rows (published
ResNet repeats stay literal); one that sets none (cspdarknet) scales with the neck like YOLOv5's n/s/m/l/x.
"""
from __future__ import annotations

import copy
import difflib
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import yaml

from yolobone.models.levels import level_of, levels_from_strides, row_strides
from yolobone.models.parse import ModelSpec, load_model_yaml, parse_model, read_yaml_rows, register_file_kind
from yolobone.models.registry import ModelConfigError
from yolobone.utils.paths import find_config

BACKBONES_DIR = Path(__file__).resolve().parents[1] / "configs" / "backbones"
CARRIED_TO_NECK = ("SPPF", "SPP", "C2PSA")  # the neck's own pooling (and YOLO11's attention after it), listed
# under the backbone key of YOLOv5 / Ultralytics YAMLs
_BACKBONE_KEYS = {"backbone", "depth_multiple", "width_multiple"}
_COMPOSITION_KEYS = {"neck", "backbone", "nc", "name"}
_DERIVED_KEYS = ("backbone", "head", "name", "backbone_name", "backbone_depth_multiple", "backbone_width_multiple",
                 "yaml_file")

CfgLike = Union[str, Path, Dict[str, Any], ModelSpec]


@dataclass
class BackboneFile:
    """The rows of a backbone file and the multiples it fixes for them."""

    name: str
    path: Path
    rows: List[Any]
    lines: List[Optional[int]] = field(default_factory=list)
    multiples: Dict[str, float] = field(default_factory=dict)  # backbone_depth_multiple / backbone_width_multiple


def available_backbones() -> List[str]:
    """Names accepted by --backbone (the files in configs/backbones/)."""
    return sorted(p.stem for p in BACKBONES_DIR.glob("*.yaml"))


def _shown(path: Path) -> Path:
    """`path` relative to the working directory when it is inside it (for messages and the printed YAML)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def backbone_path(value: Union[str, Path], base: Optional[Path] = None) -> Path:
    """A --backbone value -> its file: a path (absolute, or relative to `base` then the working directory) or a
    name in configs/backbones/ (then in `base`/backbones/)."""
    text = str(value)
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        candidates = [Path(text)] if Path(text).is_absolute() else \
            [p for p in ((base / text) if base else None, Path(text)) if p is not None]
        for p in candidates:
            if p.is_file():
                return p
        raise ModelConfigError(f"backbone file {text} not found (looked in {', '.join(map(str, candidates))})")
    for folder in (BACKBONES_DIR, (base / "backbones") if base else None):
        if folder is not None and (folder / f"{text}.yaml").is_file():
            return _shown(folder / f"{text}.yaml")
    names = available_backbones()
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.5)
    hint = f" (closest: {', '.join(close)})" if close else ""
    raise ModelConfigError(f"unknown backbone {text!r}{hint}; available: {', '.join(names)}, or a backbone YAML file")


def load_backbone(value: Union[str, Path], base: Optional[Path] = None) -> BackboneFile:
    """Read and check a backbone file (only `backbone:` rows and optional multiples)."""
    path = backbone_path(value, base)
    data, lines = read_yaml_rows(path, "backbone file")
    extra = sorted(set(data) - _BACKBONE_KEYS)
    if extra:
        raise ModelConfigError(f"{path}: a backbone file holds only 'backbone:' rows (and depth_multiple, "
                               f"width_multiple for them), found {', '.join(map(str, extra))}")
    rows = data.get("backbone")
    if not isinstance(rows, list) or not rows:
        raise ModelConfigError(f"{path}: 'backbone' must be a non-empty list of [from, number, module, args] rows")
    multiples = {}
    for key in ("depth_multiple", "width_multiple"):
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ModelConfigError(f"{path}: '{key}' must be a positive number, got {v!r}")
            multiples[f"backbone_{key}"] = float(v)
    return BackboneFile(path.stem, path, rows, lines.get("backbone", []), multiples)


# ---- the neck in level form ----------------------------------------------------------------------------------

def _from_items(f: Any) -> List[Any]:
    return f if isinstance(f, list) else [f]


def _backbone_levels(spec: ModelSpec, n_rows: int) -> Tuple[List[Optional[int]], Dict[int, int]]:
    """Strides of the neck file's first n_rows backbone rows and its levels (cached per rows and settings)."""
    part = {**{k: spec.data[k] for k in ("ch", "probe_size") if k in spec.data},
            "backbone": spec.data["backbone"][:n_rows], "head": []}
    strides = _measured_strides(json.dumps(part, sort_keys=True))
    return list(strides), levels_from_strides(strides)


@functools.lru_cache(maxsize=32)
def _measured_strides(part_json: str) -> Tuple[Optional[int], ...]:
    """Strides do not depend on widths or repeats: measure them on a narrow, shallow CPU build (milliseconds; a
    meta-device pass is slower through BatchNorm's decomposition), and on the meta device at full size when a block
    cannot be narrowed (attention heads, groups)."""
    from yolobone.models.backbones.pretrained import no_pretrained
    data = json.loads(part_json)
    size = int(data.get("probe_size", 256))
    narrow = {**data, "depth_multiple": 0.01, "width_multiple": 0.01, "backbone_depth_multiple": 0.01,
              "backbone_width_multiple": 0.01}
    with no_pretrained():
        try:
            layers = parse_model(narrow)[0]
            return tuple(row_strides(layers, int(data.get("ch", 3)), size))
        except ModelConfigError:
            with torch.device("meta"):
                layers = parse_model(data)[0]
            return tuple(row_strides(layers, int(data.get("ch", 3)), size))


def backbone_levels(backbone: Union[str, Path, BackboneFile]) -> Dict[int, int]:
    """{level k: row} of a backbone file, e.g. {1: 0, 2: 2, 3: 4, 4: 6, 5: 8} for cspdarknet."""
    bb = backbone if isinstance(backbone, BackboneFile) else load_backbone(backbone)
    return levels_from_strides(_measured_strides(json.dumps({"backbone": bb.rows, "head": []}, sort_keys=True)))


def neck_start(spec: ModelSpec) -> int:
    """Index of the first row that belongs to the neck: the backbone rows without their trailing SPPF/SPP."""
    bb = list(spec.data["backbone"] or [])
    kept = len(bb)
    while kept and isinstance(bb[kept - 1], list) and len(bb[kept - 1]) > 2 and \
            bb[kept - 1][2] in CARRIED_TO_NECK and bb[kept - 1][0] == -1:
        kept -= 1
    return kept


def neck_rows(spec: ModelSpec) -> Tuple[List[Any], List[Optional[int]], List[str]]:
    """The head of a model YAML in level form: (rows, YAML line of each, file of each). Trailing SPPF/SPP rows of
    its backbone come first (see the module docstring)."""
    bb, head = list(spec.data["backbone"] or []), list(spec.data["head"] or [])
    kept = neck_start(spec)
    rows = copy.deepcopy(bb[kept:] + head)
    strides: Optional[List[Optional[int]]] = None
    levels: Dict[int, int] = {}
    for h, row in enumerate(rows):
        r = kept + h
        if not isinstance(row, list) or not row:
            continue
        written = []
        for x in _from_items(row[0]):
            if level_of(x) is not None or isinstance(x, bool) or not isinstance(x, int):
                written.append(x)  # a level name already, or invalid (parse_model reports it with its line)
                continue
            a = r + x if x < 0 else x
            if not 0 <= a < r:
                raise ModelConfigError(f"{spec.where(r)}: `from` {x} is out of range; layers 0..{r - 1} exist "
                                       f"before it")
            if a >= kept:
                written.append(a - kept - h)  # a head row: relative offset, as -1 already is
                continue
            if strides is None:
                try:
                    strides, levels = _backbone_levels(spec, kept)
                except ModelConfigError as e:
                    raise ModelConfigError(f"{spec.where(r)}: cannot measure the strides of its backbone rows "
                                           f"to name the level row {a} is ({e})") from None
            s = strides[a]
            k = s.bit_length() - 1 if s else None
            if k is None or levels.get(k) != a:
                what = f"stride {s}, the last row at that stride is {levels.get(k)}" if s else "several outputs"
                raise ModelConfigError(f"{spec.where(r)}: `from` {x} reads backbone row {a} ({what}); a neck that "
                                       f"takes a backbone level must read the last row at its stride (P3/P4/P5)")
            written.append(f"P{k}")
        row[0] = written if isinstance(row[0], list) else written[0]
    lines = [spec.row_lines[i] if i < len(spec.row_lines) else None for i in range(kept, kept + len(rows))]
    sources = [spec.row_sources[i] if i < len(spec.row_sources) else spec.source for i in range(kept, kept + len(rows))]
    return rows, lines, sources


# ---- composing -------------------------------------------------------------------------------------------------

def compose(neck: CfgLike, backbone: Union[str, Path, BackboneFile], base: Optional[Path] = None,
            name: Optional[str] = None) -> ModelSpec:
    """The model YAML `neck` with its backbone replaced by `backbone` (a name, a file, or a loaded BackboneFile)."""
    spec = load_model_yaml(neck)
    bb = backbone if isinstance(backbone, BackboneFile) else load_backbone(backbone, base)
    rows, lines, sources = neck_rows(spec)
    neck_name = str(spec.data.get("name") or Path(spec.source).stem)
    if spec.data.get("backbone_name"):  # the neck is a composition itself: keep its neck's name
        neck_name = neck_name[:-len(spec.data["backbone_name"]) - 1] or neck_name
    data = {k: v for k, v in spec.data.items() if k not in _DERIVED_KEYS}
    data.update(name=name or f"{neck_name}-{bb.name}", backbone_name=bb.name, **bb.multiples,
                backbone=copy.deepcopy(bb.rows), head=rows)
    bb_lines = bb.lines + [None] * (len(bb.rows) - len(bb.lines))
    out = ModelSpec(data, f"{spec.source} + {bb.path}", bb_lines + lines, [str(bb.path)] * len(bb.rows) + sources)
    return load_model_yaml(out)


def compose_file(path: Path, data: Dict[str, Any]) -> ModelSpec:
    """A composition file: `neck: <model YAML>` and `backbone: <name or file>` (paths relative to the file; a neck
    not found there is looked up among the shipped configs)."""
    extra = sorted(set(data) - _COMPOSITION_KEYS)
    if extra:
        raise ModelConfigError(f"{path}: a composition file holds neck, backbone (and nc, name), found "
                               f"{', '.join(map(str, extra))}; put layers in the neck or backbone file")
    for key in ("neck", "backbone"):
        if not isinstance(data.get(key), str):
            raise ModelConfigError(f"{path}: '{key}' must name a file{' or a backbone' if key == 'backbone' else ''}, "
                                   f"got {data.get(key)!r}")
    neck_path = path.parent / data["neck"]
    if not neck_path.is_file():  # not beside the file: a shipped model YAML (`neck: yolo11n.yaml` from any folder)
        neck_path = find_config(data["neck"])
    if neck_path.resolve() == path.resolve():
        raise ModelConfigError(f"{path}: 'neck' names this file itself")
    spec = compose(neck_path, data["backbone"], base=path.parent, name=data.get("name") or path.stem)
    if "nc" in data:
        spec.data["nc"] = data["nc"]
    spec.source = str(path)
    return load_model_yaml(spec)


register_file_kind("neck", compose_file)  # load_model_yaml reads `neck:` files through compose_file


def with_backbone(cfg: CfgLike, backbone: Optional[str]) -> CfgLike:
    """`--cfg` with `--backbone` applied (cfg unchanged when backbone is empty)."""
    return compose(cfg, backbone) if backbone else cfg


# ---- printing --------------------------------------------------------------------------------------------------

def dump_model_yaml(data: Dict[str, Any]) -> str:
    """A model YAML dict as text with one flow-style line per row, loadable as --cfg."""
    def flow(value: Any) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, width=10 ** 6, sort_keys=False).strip()
        return text[:-3].strip() if text.endswith("\n...") else text  # a scalar's document-end marker
    out = []
    for key, value in data.items():
        if key in ("backbone", "head", "anchors") and isinstance(value, list):
            out.append(f"{key}:")
            out.extend(f"  - {flow(row)}" for row in value)
        elif key != "yaml_file":
            out.append(f"{key}: {flow(value)}")
    return "\n".join(out) + "\n"
