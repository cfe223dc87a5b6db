"""Activation specs from YAML (`activation: nn.LeakyReLU(0.1)`) without eval, scoped to one model build."""
from __future__ import annotations

import ast
import contextlib
import contextvars
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

import torch.nn as nn

ActFactory = Callable[[], nn.Module]

_ALLOWED = {
    "ReLU": nn.ReLU, "ReLU6": nn.ReLU6, "LeakyReLU": nn.LeakyReLU, "SiLU": nn.SiLU, "Hardswish": nn.Hardswish,
    "Hardsigmoid": nn.Hardsigmoid, "Mish": nn.Mish, "GELU": nn.GELU, "ELU": nn.ELU, "CELU": nn.CELU,
    "SELU": nn.SELU, "PReLU": nn.PReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "Identity": nn.Identity,
}
_default_act: contextvars.ContextVar[ActFactory] = contextvars.ContextVar("default_act", default=lambda: nn.SiLU())


class ActivationSpec:
    """A parsed activation such as `nn.LeakyReLU(0.1)`: calling it makes a new module; repr is the YAML text."""

    def __init__(self, cls: type, args: Tuple[Any, ...], kwargs: Dict[str, Any], text: str):
        self.cls, self.args, self.kwargs, self.text = cls, args, kwargs, text

    def __call__(self) -> nn.Module:
        return self.cls(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        return self.text


def parse_activation(spec: str) -> ActivationSpec:
    """'nn.LeakyReLU(0.1)' -> a factory making nn.LeakyReLU(0.1): a whitelisted layer with literal numeric or bool
    arguments, read with `ast` (nothing is evaluated)."""
    text = str(spec).strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        node = None
    name = _layer_name(node.func if isinstance(node, ast.Call) else node)
    if name not in _ALLOWED:
        raise ValueError(f"activation {spec!r} is not supported; expected one of "
                         f"{', '.join('nn.' + k + '()' for k in _ALLOWED)} with numeric/bool arguments")
    args, kwargs = _call_arguments(node, spec) if isinstance(node, ast.Call) else ((), {})
    cls = _ALLOWED[name]
    try:
        cls(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"activation {spec!r}: {e}") from None
    return ActivationSpec(cls, args, kwargs, text)


def _layer_name(node: Optional[ast.AST]) -> Optional[str]:
    """`nn.X` or `X` -> 'X'; anything else -> None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "nn":
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _call_arguments(node: ast.Call, spec: str) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    args = tuple(_literal(a, spec) for a in node.args)
    kwargs = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise ValueError(f"activation {spec!r}: **arguments are not allowed")
        kwargs[kw.arg] = _literal(kw.value, spec)
    return args, kwargs


def _literal(node: ast.AST, spec: str) -> Union[int, float, bool]:
    """A number or True/False, optionally negated; nothing else."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        if sign == 1:
            return node.value
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return sign * node.value
    raise ValueError(f"activation {spec!r}: argument {ast.unparse(node)!r} is not a number or True/False")


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
