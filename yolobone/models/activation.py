"""Activation specs from YAML (`activation: nn.LeakyReLU(0.1)`) without eval, scoped to one model build."""
from __future__ import annotations

import contextlib
import contextvars
import re
from typing import Callable, Iterator, Optional, Union

import torch.nn as nn

ActFactory = Callable[[], nn.Module]

_ALLOWED = {
    "ReLU": nn.ReLU, "ReLU6": nn.ReLU6, "LeakyReLU": nn.LeakyReLU, "SiLU": nn.SiLU, "Hardswish": nn.Hardswish,
    "Hardsigmoid": nn.Hardsigmoid, "Mish": nn.Mish, "GELU": nn.GELU, "ELU": nn.ELU, "CELU": nn.CELU,
    "SELU": nn.SELU, "PReLU": nn.PReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "Identity": nn.Identity,
}
_SPEC = re.compile(r"^\s*(?:nn\.)?([A-Za-z0-9]+)\s*(?:\((.*)\))?\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

_default_act: contextvars.ContextVar[ActFactory] = contextvars.ContextVar("default_act", default=lambda: nn.SiLU())


def parse_activation(spec: str) -> ActFactory:
    """'nn.LeakyReLU(0.1)' -> a factory making nn.LeakyReLU(0.1); only whitelisted layers and literal args."""
    m = _SPEC.match(str(spec))
    if not m or m.group(1) not in _ALLOWED:
        raise ValueError(f"activation {spec!r} is not supported; expected one of "
                         f"{', '.join('nn.' + k + '()' for k in _ALLOWED)} with numeric/bool arguments")
    cls = _ALLOWED[m.group(1)]
    args, kwargs = [], {}
    for part in filter(None, (p.strip() for p in (m.group(2) or "").split(","))):
        key, _, val = part.rpartition("=")
        parsed = _literal(val.strip(), spec)
        if key:
            if not key.strip().isidentifier():
                raise ValueError(f"activation {spec!r}: bad keyword {key!r}")
            kwargs[key.strip()] = parsed
        else:
            args.append(parsed)
    try:
        cls(*args, **kwargs)
    except TypeError as e:
        raise ValueError(f"activation {spec!r}: {e}") from None
    return lambda: cls(*args, **kwargs)


def _literal(text: str, spec: str) -> Union[int, float, bool]:
    if text in ("True", "False"):
        return text == "True"
    if _NUMBER.match(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    raise ValueError(f"activation {spec!r}: argument {text!r} is not a number or True/False")


def default_activation() -> nn.Module:
    """A new instance of the activation in force for the model being built (SiLU unless the YAML says otherwise)."""
    return _default_act.get()()


def make_activation(act: Union[bool, nn.Module, ActFactory, None]) -> nn.Module:
    """Conv's `act` argument: True -> the build's default, False/None -> Identity, a module -> itself."""
    if act is True:
        return default_activation()
    if act is False or act is None:
        return nn.Identity()
    if isinstance(act, nn.Module):
        return act
    if callable(act):
        return act()
    raise ValueError(f"act must be True/False, an nn.Module or a factory, got {act!r}")


@contextlib.contextmanager
def activation_scope(factory: Optional[ActFactory] = None) -> Iterator[None]:
    """Within the block, `act=True` means one shared `factory()` instance (SiLU by default), as in YOLOv5, where
    all Convs of a model share one stateless activation; the previous default is restored afterwards so no
    later model is affected."""
    make = factory or (lambda: nn.SiLU())
    shared: list = []

    def get() -> nn.Module:
        if not shared:
            shared.append(make())
        return shared[0]

    token = _default_act.set(get)
    try:
        yield
    finally:
        _default_act.reset(token)
