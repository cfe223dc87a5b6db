"""The one way the project reads YAML files: safe tags only, and bounded in size and in alias expansion.

PyYAML shares the object an alias points to, so reading an alias bomb ("billion laughs": each level repeats the
previous one ten times) is cheap; it is everything after (deep copies, validation, walking a `names` list) that
expands it into billions of items. So the document is refused before it is used: at most MAX_BYTES of text and
MAX_NODES nodes, counting every alias as the nodes it repeats. Errors are one line naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import yaml

from yolobone.utils.errors import YoloboneError

MAX_BYTES = 2 ** 20  # 1 MiB: model, data, hyp and comparison YAMLs are a few kB (a 20k-class names list ~0.4 MB)
MAX_NODES = 100_000  # after alias expansion; a model YAML has a few hundred, a 20k-class data YAML ~20k

ErrorFactory = Callable[[str], Exception]


class YAMLFileError(YoloboneError, ValueError):
    """A YAML file that cannot be read, is not valid YAML, or is beyond the size bounds."""


class _TooLarge(Exception):
    pass


# libyaml's parser when PyYAML was built with it (10x faster); the same safe constructor either way.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent, yaml.AliasEvent)


def _check_node_count(raw: bytes, limit: int) -> None:
    """Stop at the (limit + 1)th node while only parsing: composing nodes costs several times more."""
    loader = _SafeLoader(raw)
    try:
        count = 0
        while loader.check_event():
            count += isinstance(loader.get_event(), _NODE_EVENTS)
            if count > limit:
                raise _TooLarge(f"more than {limit} nodes")
    finally:
        loader.dispose()


def expanded_size(node: yaml.Node, limit: int = MAX_NODES) -> int:
    """Nodes in the document with every alias replaced by a copy of its anchor; stops past `limit`.

    Each distinct node is sized once (memoised), so a bomb is measured in time linear in its text."""
    sizes: Dict[int, int] = {}
    open_nodes = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _TooLarge("a recursive alias (an anchor that contains itself)")
        open_nodes.add(key)
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        open_nodes.discard(key)
        if total > limit:
            raise _TooLarge(f"more than {limit} nodes once its aliases are expanded")
        sizes[key] = total
        return total

    return size(node)


def load_yaml_document(path: str | os.PathLike, error: ErrorFactory = YAMLFileError, *,
                       max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Tuple[Any, Optional[yaml.Node]]:
    """(data, root node) of a YAML file; the node gives line numbers (None for an empty file).

    error builds the exception raised (the caller's error type) from a one-line message naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if len(raw) > max_bytes:
        raise error(f"{path}: larger than {max_bytes // 1024} KiB, too big for a YAML file this project reads")
    loader = None
    try:
        _check_node_count(raw, max_nodes)
        loader = _SafeLoader(raw)
        node = loader.get_single_node()
        if node is None:
            return None, None
        expanded_size(node, max_nodes)
        return loader.construct_document(node), node
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{loc}: invalid YAML ({problem})") from None
    except _TooLarge as e:
        raise error(f"{path}: refused, the YAML holds {e}") from None
    except RecursionError:
        raise error(f"{path}: refused, the YAML is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml(path: str | os.PathLike, error: ErrorFactory = YAMLFileError) -> Any:
    """The data of a YAML file, read safely and within the bounds (see load_yaml_document)."""
    return load_yaml_document(path, error)[0]
