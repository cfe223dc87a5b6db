"""Options declared once: a dataclass field carries its default, help, flag aliases and check, the argparse parser is
generated from the fields, and options are filled from a Namespace, a dict or an instance, refusing unknown keys.

    @dataclass
    class MyOptions:
        epochs: int = option(100, "training epochs", check=at_least(1))
        imgsz: int = option(640, "image size (pixels)", aliases=("--img",))

    parser = argparse.ArgumentParser(); add_options(parser, MyOptions)
    o = MyOptions(**vars(parser.parse_args()));  check_options(o, MyError)
"""
from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import os
import typing
from typing import Any, Callable, Collection, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Type

from yolobone.utils.cli import parse_bool

Check = Callable[[Any], Any]  # returns the (normalised) value, or raises ValueError("expected ...")


def option(default: Any = dataclasses.MISSING, help: str = "", *, factory: Optional[Callable[[], Any]] = None,
           aliases: Sequence[str] = (), flag: str = "", check: Optional[Check] = None, cli: bool = True,
           **argparse_kwargs: Any) -> Any:
    """A dataclass field that is also a command-line flag: --name-with-dashes (or `flag`) plus `aliases`.

    `check` validates (and may normalise) the value; argparse keywords (nargs, const, choices, required, metavar,
    action, type) override what the field's type implies. cli=False keeps the field out of the parser."""
    meta = {"help": help, "aliases": tuple(aliases), "flag": flag, "check": check, "cli": cli,
            "argparse": argparse_kwargs}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _meta(cls: type, name: str) -> Mapping[str, Any]:
    """The field's option metadata merged down the MRO: a subclass may redeclare a field with a new default (and a
    new check or help) and keep the rest of what its base declared."""
    merged: Dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "help" in f.metadata:
            merged.update({k: v for k, v in f.metadata.items() if v or k == "cli"})
    return merged


def flag_of(cls: type, name: str) -> str:
    """The flag a field is set with on the command line: '--batch-size' for batch_size."""
    return _meta(cls, name).get("flag") or "--" + name.replace("_", "-")


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None if f.default is dataclasses.MISSING else f.default


def _without_none(tp: Any) -> Any:
    """Optional[X] -> X; any other annotation as it is."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) is typing.Union and len(args) == 1 else tp


def _scalar(tp: Any) -> Any:
    """The argparse `type` for an annotation: int, float or str (Any, unions and others read as text)."""
    tp = _without_none(tp)
    return tp if tp in (int, float, str) else str


def _argparse_kwargs(f: dataclasses.Field, tp: Any, meta: Mapping[str, Any]) -> Dict[str, Any]:
    default = _default(f)
    tp = _without_none(tp)
    origin = typing.get_origin(tp)
    if "action" in meta.get("argparse", {}):  # an explicit action takes no inferred type or nargs
        kw: Dict[str, Any] = {}
    elif tp is bool:
        kw = {"action": "store_true"} if not default else {"type": parse_bool, "nargs": "?", "const": True}
    elif origin in (list, tuple, collections.abc.Sequence):
        kw = {"nargs": "+", "type": _scalar(typing.get_args(tp)[0]) if typing.get_args(tp) else str}
    else:
        kw = {"type": _scalar(tp)}
    kw.update(meta.get("argparse", {}))
    kw.setdefault("default", default)
    kw["help"] = meta.get("help", "")
    return kw


def option_fields(cls: type) -> Iterator[Tuple[dataclasses.Field, Any, Mapping[str, Any]]]:
    """(field, resolved type, option metadata) of every field of an options dataclass."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f, hints.get(f.name, str), _meta(cls, f.name)


def add_options(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    """Add one flag per field of `cls` (fields declared with cli=False are left out)."""
    for f, tp, meta in option_fields(cls):
        if not meta.get("cli", True):
            continue
        kw = _argparse_kwargs(f, tp, meta)
        names = [flag_of(cls, f.name), *meta.get("aliases", ())]
        parser.add_argument(*names, dest=f.name, **kw)
    return parser


def to_argv(obj: Any, skip: Collection[str] = ()) -> List[str]:
    """The command-line arguments that give `obj`'s values (those that differ from the defaults, in field order)."""
    cls, argv = type(obj), []
    for f, tp, meta in option_fields(cls):
        value, default = getattr(obj, f.name), _default(f)
        if f.name in skip or not meta.get("cli", True) or value == default or value is None or value == "":
            continue
        flag, kw = flag_of(cls, f.name), _argparse_kwargs(f, tp, meta)
        if kw.get("action") in ("store_true", "store_false"):
            argv.append(flag)  # a store action is only written when the value differs from its default
        elif kw.get("type") is parse_bool:
            argv += [flag, str(bool(value)).lower()]
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def check_options(obj: Any, error: Type[Exception]) -> None:
    """Run every field's check; a failing one raises `error` naming the flag, the value and what is expected."""
    cls = type(obj)
    for f, _, meta in option_fields(cls):
        check = meta.get("check")
        if check is None:
            continue
        value = getattr(obj, f.name)
        try:
            setattr(obj, f.name, check(value))
        except (ValueError, TypeError) as e:
            raise error(f"{flag_of(cls, f.name)} {_shown(value)}: {e}") from None


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def at_least(low: float, *, optional: bool = False) -> Check:
    """Check: value >= low (None passes when `optional`)."""
    def check(value: Any) -> Any:
        if value is not None or not optional:
            if value < low:
                raise ValueError(f"expected >= {low:g}")
        return value
    return check


def above(low: float) -> Check:
    """Check: value > low."""
    def check(value: Any) -> Any:
        if not value > low:
            raise ValueError(f"expected > {low:g}")
        return value
    return check


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False, optional: bool = False,
            what: str = "a value") -> Check:
    """Check: value in [low, high] (ends open as asked); None passes when `optional`."""
    def check(value: Any) -> Any:
        if value is None and optional:
            return value
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            raise ValueError(f"expected {what} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}")
        return value
    return check


def one_of(choices: Collection[Any], *, optional: bool = False) -> Check:
    """Check: value is one of `choices` (None passes when `optional`)."""
    def check(value: Any) -> Any:
        if (value is None and optional) or value in choices:
            return value
        raise ValueError(f"expected one of {', '.join(str(c) for c in choices)}")
    return check


def option_values(opt: Any, cls: type, overrides: Mapping[str, Any], error: Type[Exception], caller: str,
                  ignore: Collection[str] = ()) -> Dict[str, Any]:
    """The fields of `cls` given by opt (+ overrides), paths as str; keys not in cls (nor in `ignore`) raise `error`."""
    if opt is None:
        values: Dict[str, Any] = {}
    elif isinstance(opt, cls):
        values = dataclasses.asdict(opt)
    elif isinstance(opt, argparse.Namespace):
        values = vars(opt).copy()
    elif isinstance(opt, Mapping):
        values = dict(opt)
    else:
        raise error(f"{caller}: expected {cls.__name__}, a Namespace or a dict, got {type(opt).__name__}")
    values.update(overrides)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known - set(ignore))
    if unknown:
        raise error(f"{caller}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in values.items() if k in known}
