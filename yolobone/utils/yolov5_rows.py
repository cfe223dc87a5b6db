"""Model YAML rows read back from the layer records of a YOLOv5 model that carries no `yaml` dict.

YOLOv5's ClassificationModel (yolov5s-cls.pt and the runs of its classify/train.py) is a detection model cut after
its backbone, with no YAML kept. Each layer record still holds its input index (`f`) and submodules whose sizes
give the row's arguments, written at depth and width multiple 1.0 so the channels and repeats are literal:

    Conv(conv: Conv2d 32->64, k 3, s 2)      -> [-1, 1, Conv, [64, 3, 2, 1]]
    C3(cv3 -> 128, m: 3 Bottlenecks, add)    -> [-1, 3, C3, [128, True]]
    Classify(linear -> 10)                   -> [-1, 1, Classify, [nc]]
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List

from yolobone.utils.pickled_checkpoint import ForeignCheckpointError, Record

DEFAULT_ACTIVATION = "torch.nn.modules.activation.SiLU"


def _children(record: Record) -> Dict[str, Record]:
    return {k: v for k, v in (record.state.get("_modules") or {}).items() if isinstance(v, Record)}


def _attr(record: Record, name: str, where: str) -> Any:
    if name not in record.state:
        raise ForeignCheckpointError(f"{where}: {record.qualname} has no {name!r} attribute")
    return record.state[name]


def _first(value: Any) -> int:
    return int(value[0] if isinstance(value, (tuple, list)) else value)


def _conv_args(conv: Record, where: str) -> List[int]:
    """A YOLOv5 Conv (Conv2d + BatchNorm2d + SiLU) as [c2, k, s, p, g, d]."""
    layer = _children(conv).get("conv")
    act = _children(conv).get("act")
    if layer is None or (act is not None and act.qualname != DEFAULT_ACTIVATION):
        raise ForeignCheckpointError(f"{where}: a Conv with {act.qualname if act else 'no conv'}; only the default "
                                     f"SiLU convolutions of YOLOv5 are read without a model YAML")
    return [int(_attr(layer, "out_channels", where)), _first(_attr(layer, "kernel_size", where)),
            _first(_attr(layer, "stride", where)), _first(_attr(layer, "padding", where)),
            int(layer.state.get("groups", 1)), _first(layer.state.get("dilation", 1))]


def _conv_row(layer: Record, where: str) -> List[Any]:
    c2, k, s, p, g, d = _conv_args(layer, where)
    return [1, "Conv", [c2, k, s, p, g, d] if (g, d) != (1, 1) else [c2, k, s, p]]


def _c3_row(layer: Record, where: str) -> List[Any]:
    parts = _children(layer)
    blocks = list(_children(parts["m"]).values()) if "m" in parts else []
    if "cv3" not in parts or not blocks:
        raise ForeignCheckpointError(f"{where}: a C3 without cv3 or bottlenecks")
    c2 = _conv_args(parts["cv3"], where)[0]
    c_ = _conv_args(parts["cv1"], where)[0]
    args = [c2, bool(blocks[0].state.get("add", False))]
    return [len(blocks), "C3", args if c_ * 2 == c2 else [*args, c_ / c2]]


def _sppf_row(layer: Record, where: str) -> List[Any]:
    parts = _children(layer)
    return [1, "SPPF", [_conv_args(parts["cv2"], where)[0], _first(_attr(parts["m"], "kernel_size", where))]]


def _classify_row(layer: Record, where: str) -> List[Any]:
    return [1, "Classify", ["nc"]]


ROWS: Dict[str, Callable[[Record, str], List[Any]]] = {
    "Conv": _conv_row, "C3": _c3_row, "SPPF": _sppf_row, "Classify": _classify_row}


def rows_from_records(model: Record, where: str) -> List[List[Any]]:
    """[from, number, module, args] for each layer of a YOLOv5 model record (its `model` Sequential)."""
    layers = _children(model).get("model")
    if layers is None:
        raise ForeignCheckpointError(f"{where}: the YOLOv5 {model.qualname} holds no 'model' layer list")
    rows = []
    for i, layer in enumerate(_children(layers).values()):
        kind = layer.qualname.rsplit(".", 1)[1]
        if kind not in ROWS:
            raise ForeignCheckpointError(f"{where}: layer {i} is a YOLOv5 {kind}; a model without a YAML dict is read "
                                         f"only from {', '.join(ROWS)} layers")
        f = layer.state.get("f", -1)
        rows.append([f if isinstance(f, (int, list)) else -1, *ROWS[kind](layer, f"{where}: layer {i}")])
    return rows


def classify_yaml(model: Record, nc: int, where: str) -> Dict[str, Any]:
    """Our classification model YAML (Classify last) for a YOLOv5 ClassificationModel record."""
    rows = rows_from_records(model, where)
    if not rows or rows[-1][2] != "Classify":
        raise ForeignCheckpointError(f"{where}: the YOLOv5 ClassificationModel does not end in Classify")
    return {"nc": nc, "depth_multiple": 1.0, "width_multiple": 1.0, "backbone": rows[:-1], "head": rows[-1:]}
