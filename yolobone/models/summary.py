"""torchsummary-style table of any model: one row per executed leaf layer with its output shape and parameters,
then totals and an estimate of the memory one forward/backward pass of a single image needs.

    >>> print(model_summary(build_model("configs/cls/yolov5s-cls.yaml"), 224))   # doctest: +SKIP
    Layer (name)                                 Output shape              Params
    Conv2d (model.0.conv)                        [-1, 32, 112, 112]         3,456
    ...
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple, Union

import torch
import torch.nn as nn

MB = 1024 ** 2
_WIDTH = (56, 34, 14)  # column widths: layer, output shape, params


def _shapes(out: Any) -> List[List[int]]:
    """Output shapes with the batch dimension shown as -1; nested lists/tuples/dicts flattened."""
    if isinstance(out, torch.Tensor):
        return [[-1, *out.shape[1:]]] if out.dim() else [[]]
    if isinstance(out, (list, tuple)):
        return [s for o in out for s in _shapes(o)]
    if isinstance(out, dict):
        return [s for o in out.values() for s in _shapes(o)]
    return []


def _numel(out: Any) -> int:
    """Elements of every tensor in an output (batch dimension included)."""
    if isinstance(out, torch.Tensor):
        return out.numel()
    if isinstance(out, (list, tuple)):
        return sum(_numel(o) for o in out)
    if isinstance(out, dict):
        return sum(_numel(o) for o in out.values())
    return 0


def _reported_modules(model: nn.Module) -> Dict[nn.Module, str]:
    """Leaf modules, plus containers that hold parameters of their own (so every parameter appears in a row)."""
    chosen = {}
    for name, m in model.named_modules():
        if m is model and list(m.children()):
            continue
        if not list(m.children()) or any(True for _ in m.parameters(recurse=False)):
            chosen.setdefault(m, name or type(m).__name__)
    return chosen


class _LayerRecorder:
    """Forward hooks that record one row per reported module call: (layer (name), output shapes, new params)."""

    def __init__(self, model: nn.Module):
        self.modules = _reported_modules(model)
        self.rows: List[Tuple[str, str, int]] = []
        self.seen_params: set = set()
        self.activations = 0
        # A module object may sit at several places (YOLOv5 blocks share one activation): name each call by its
        # parent.
        self.names = {(id(parent), id(child)): f"{pname}.{cname}" if pname else cname
                      for pname, parent in model.named_modules(remove_duplicate=False)
                      for cname, child in parent.named_children()}
        self.stack: List[nn.Module] = []

    def own_params(self, m: nn.Module) -> int:
        """Parameters of m not counted in an earlier row."""
        n = 0
        for p in m.parameters(recurse=not list(m.children())):
            if id(p) not in self.seen_params:
                self.seen_params.add(id(p))
                n += p.numel()
        return n

    def push(self, m: nn.Module, _inputs: Any) -> None:
        self.stack.append(m)

    def pop(self, m: nn.Module, _inputs: Any, out: Any) -> None:
        self.stack.pop()
        if m in self.modules:
            parent = self.stack[-1] if self.stack else None
            self.activations += _numel(out)
            shapes = _shapes(out)
            shape_text = ", ".join(str(s) for s in shapes) if shapes else "-"
            name = self.names.get((id(parent), id(m)), self.modules[m])
            self.rows.append((f"{type(m).__name__} ({name})", shape_text, self.own_params(m)))

    def run(self, model: nn.Module, x: torch.Tensor) -> None:
        """One eval-mode forward pass of x with the hooks on; then rows for the layers it skipped that own
        parameters."""
        handles = [h for m in model.modules()
                   for h in (m.register_forward_pre_hook(self.push), m.register_forward_hook(self.pop))]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(x)
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)
        for m, name in self.modules.items():
            n = self.own_params(m)
            if n:
                self.rows.append((f"{type(m).__name__} ({name})", "not run", n))


def _table(rows: Sequence[Tuple[str, str, int]], model: nn.Module, input_numel: int, activations: int,
           bytes_per: int) -> str:
    """The layer rows, the parameter totals and the memory estimate as text."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    input_mb = input_numel * bytes_per / MB
    # every layer output is kept for the backward pass and gets a gradient of the same size: x2 (torchsummary's rule)
    pass_mb = 2 * activations * bytes_per / MB
    params_mb = total * bytes_per / MB
    a, b, c = _WIDTH
    line, double = "-" * (a + b + c), "=" * (a + b + c)
    out = [line, f"{'Layer (name)':<{a}}{'Output shape':<{b}}{'Params':>{c}}", double]
    for layer, shape, n in rows:
        layer = layer if len(layer) < a else layer[:a - 4] + "...)"
        out.append(f"{layer:<{a}}{shape:<{b}}{n:>{c},}")
    out += [double,
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            line,
            f"Input size (MB): {input_mb:.2f}",
            f"Forward/backward pass size (MB): {pass_mb:.2f}",
            f"Params size (MB): {params_mb:.2f}",
            f"Estimated Total Size (MB): {input_mb + pass_mb + params_mb:.2f}",
            line]
    return "\n".join(out)


def model_summary(model: nn.Module, imgsz: Union[int, Sequence[int]] = 224, channels: int = 3,
                  batch_size: int = 1) -> str:
    """Layer table + totals + memory estimate (float32) from one eval-mode forward pass at imgsz.

    Parameters shared by several layers are counted once (in the first row that uses them); parameters of layers
    the forward pass never reaches are listed in rows marked "not run", so the rows add up to the total.
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    p0 = next(model.parameters(), None)
    device = p0.device if p0 is not None else torch.device("cpu")
    dtype = p0.dtype if p0 is not None and p0.is_floating_point() else torch.float32
    x = torch.zeros(batch_size, channels, h, w, device=device, dtype=dtype)
    recorder = _LayerRecorder(model)
    recorder.run(model, x)
    return _table(recorder.rows, model, x.numel(), recorder.activations, torch.finfo(dtype).bits // 8)
