"""Options dataclasses filled from an argparse Namespace, a dict or another instance, refusing unknown keys."""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Collection, Dict, Mapping, Type


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
