"""Where the data is: YOLOv5 data YAMLs (detection) and ImageFolder roots (classification), image file lists.

``path`` in a data YAML is relative to the YAML's folder; ``train``/``val``/``test`` are relative to ``path`` and
may each be a folder, a .txt list of images, or a list of those. Problems raise DatasetError with one line naming
the file, the key and the value.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

from yolobone.data.media import IMG_FORMATS, is_image
from yolobone.utils.errors import YoloboneError
from yolobone.utils.yaml_io import load_yaml

PathLike = Union[str, os.PathLike]


class DatasetError(YoloboneError, ValueError):
    """A data YAML or dataset that cannot be used; the message names the file and what is wrong."""


def _load_yaml(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"data YAML not found: {path}")
    data = load_yaml(path, DatasetError)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping with train, val and names, got {type(data).__name__}")
    return data


def _names_list(names: Any, where: str) -> List[str]:
    if isinstance(names, dict):
        keys = sorted(names)
        if not all(isinstance(k, int) for k in keys) or keys != list(range(len(keys))):
            raise DatasetError(f"{where}: 'names' dict keys must be 0..{len(keys) - 1}, got {keys}")
        return [str(names[k]) for k in keys]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    raise DatasetError(f"{where}: 'names' must be a list or a dict of class names, got {type(names).__name__}")


def _has_images(p: Path) -> bool:
    if p.is_dir():
        return any(f.is_file() and is_image(f) for f in p.rglob("*"))
    if p.suffix == ".txt":
        return any(line.strip() for line in p.read_text(encoding="utf-8-sig").splitlines())
    return is_image(p)


def check_dataset(data: Union[PathLike, Dict[str, Any]]) -> Dict[str, Any]:
    """Validate a YOLOv5 data YAML (path or dict) and return it with absolute paths, ``names`` as a list and ``nc``.

    ``path`` is relative to the YAML's folder (the current folder for a dict); ``train``/``val``/``test`` are
    relative to ``path``. ``builtin: <name>`` (or passing the bare name, e.g. ``"shapes"``) generates the built-in
    synthetic set into the cache on first use. Raises DatasetError with a one-line message.
    """
    from yolobone.data.synthetic import BUILTIN_DETECTION, ensure_builtin_dataset  # lazy: only needed for built-ins

    if isinstance(data, dict):
        cfg, where, base = dict(data), "data dict", Path.cwd()
    elif isinstance(data, (str, os.PathLike)):
        p = Path(data)
        if str(data) in BUILTIN_DETECTION and not p.exists():
            p = ensure_builtin_dataset(str(data))
        cfg, where, base = _load_yaml(p), str(p), p.resolve().parent
    else:
        raise DatasetError(f"--data: expected a YAML path or a dict, got {type(data).__name__}")

    if "builtin" in cfg:
        name = cfg["builtin"]
        if name not in BUILTIN_DETECTION:
            raise DatasetError(f"{where}: unknown builtin dataset {name!r}, known: {', '.join(BUILTIN_DETECTION)}")
        generated = ensure_builtin_dataset(name)
        gen = _load_yaml(generated)
        if "names" in cfg and _names_list(cfg["names"], where) != _names_list(gen["names"], str(generated)):
            raise DatasetError(f"{where}: names {cfg['names']!r} do not match builtin {name!r} ({gen['names']!r})")
        if "nc" in cfg and cfg["nc"] != gen["nc"]:
            raise DatasetError(f"{where}: nc {cfg['nc']!r} does not match builtin {name!r} ({gen['nc']!r})")
        cfg = {**gen, "builtin": name}
        where, base = str(generated), generated.parent

    for key in ("train", "val"):
        if not cfg.get(key):
            raise DatasetError(f"{where}: missing key {key!r} (a data YAML needs train, val and names)")
    if cfg.get("names") is None:
        if cfg.get("nc") is None:
            raise DatasetError(f"{where}: missing key 'names' (a list of class names)")
        names = [f"class{i}" for i in range(int(cfg["nc"]))]
    else:
        names = _names_list(cfg["names"], where)
    nc = cfg.get("nc", len(names))
    if isinstance(nc, bool) or not isinstance(nc, int) or nc < 1:
        raise DatasetError(f"{where}: 'nc' must be a positive integer, got {nc!r}")
    if nc != len(names):
        raise DatasetError(f"{where}: nc is {nc} but names has {len(names)} entries")

    root = Path(cfg["path"]) if cfg.get("path") else base
    if not root.is_absolute():
        root = (base / root).resolve()
    if not root.is_dir():
        raise DatasetError(f"{where}: 'path' folder not found: {root}")

    def resolve(key: str) -> Union[str, List[str], None]:
        value = cfg.get(key)
        if value in (None, "", []):
            return None
        items = value if isinstance(value, (list, tuple)) else [value]
        out = []
        for item in items:
            if not isinstance(item, (str, os.PathLike)):
                raise DatasetError(f"{where}: {key!r} must be a path or a list of paths, got {item!r}")
            p = Path(item).expanduser()
            p = p if p.is_absolute() else root / p
            if not p.exists():
                hint = " (downloads are not supported: fetch it yourself)" if cfg.get("download") else ""
                raise DatasetError(f"{where}: {key!r} path not found: {p}{hint}")
            if not _has_images(p):
                raise DatasetError(f"{where}: {key!r} has no images ({', '.join(IMG_FORMATS)}): {p}")
            out.append(str(p))
        return out if isinstance(value, (list, tuple)) else out[0]

    result = {k: v for k, v in cfg.items() if k not in ("path", "train", "val", "test", "names", "nc")}
    result.update(path=str(root), train=resolve("train"), val=resolve("val"), test=resolve("test"),
                  names=names, nc=nc, yaml_file=None if isinstance(data, dict) else where)
    return result


# ----------------------------------------------------------------------------------------------- files
def img2label_paths(img_paths: Sequence[PathLike]) -> List[str]:
    """Label path for each image: the last ``images`` folder in the path becomes ``labels``, suffix ``.txt``."""
    out = []
    for p in img_paths:
        parts = list(Path(p).parts)
        dirs = parts[:-1]
        for i in range(len(dirs) - 1, -1, -1):
            if dirs[i] == "images":
                parts[i] = "labels"
                break
        out.append(str(Path(*parts).with_suffix(".txt")))
    return out


def list_image_files(path: Union[PathLike, Sequence[PathLike]], prefix: str = "") -> List[str]:
    """Sorted absolute image paths from a folder (recursive), a .txt list of paths, an image, or a list of these."""
    files: List[str] = []
    for item in path if isinstance(path, (list, tuple)) else [path]:
        p = Path(item).expanduser()
        if p.is_dir():
            files += [str(f) for f in p.rglob("*") if f.is_file() and is_image(f)]
        elif p.is_file() and p.suffix == ".txt":
            for line in p.read_text(encoding="utf-8-sig").splitlines():
                line = line.strip()
                if line:
                    q = Path(line)
                    files.append(str(q if q.is_absolute() else p.parent / q))
        elif p.is_file():
            files.append(str(p))
        else:
            raise DatasetError(f"{prefix}{p} does not exist")
    files = sorted({os.path.abspath(f) for f in files if is_image(f)})
    if not files:
        raise DatasetError(f"{prefix}no images found in {path} (formats: {', '.join(IMG_FORMATS)})")
    return files


def check_cls_dataset(data: PathLike) -> Dict[str, Any]:
    """Resolve a classification set: an ImageFolder root (train/, val/), a YAML with ``builtin: shapes-cls``, or
    the bare built-in name. Returns {'path', 'train', 'val', 'names', 'nc'} with class names from train/'s folders."""
    from yolobone.data.synthetic import BUILTIN_CLASSIFICATION, ensure_builtin_classification_dataset

    p = Path(data)
    if str(data) in BUILTIN_CLASSIFICATION and not p.exists():
        p = ensure_builtin_classification_dataset(str(data))
    elif p.suffix in (".yaml", ".yml"):
        cfg = _load_yaml(p)
        name = cfg.get("builtin")
        if name is None:
            root = Path(cfg.get("path") or p.parent)
            p = root if root.is_absolute() else (p.resolve().parent / root)
        elif name in BUILTIN_CLASSIFICATION:
            p = ensure_builtin_classification_dataset(name)
        else:
            raise DatasetError(f"{data}: unknown builtin classification dataset {name!r}, "
                               f"known: {', '.join(BUILTIN_CLASSIFICATION)}")
    if not p.is_dir():
        raise DatasetError(f"classification dataset folder not found: {p}")
    splits = {}
    for split in ("train", "val"):
        d = p / split
        classes = sorted(c.name for c in d.iterdir() if c.is_dir()) if d.is_dir() else []
        if not classes:
            raise DatasetError(f"{p}: expected {split}/<class>/*.jpg folders, found none in {d}")
        splits[split] = classes
    if splits["val"] != splits["train"]:
        raise DatasetError(f"{p}: val classes {splits['val']} differ from train classes {splits['train']}")
    return {"path": str(p.resolve()), "train": str((p / "train").resolve()), "val": str((p / "val").resolve()),
            "names": splits["train"], "nc": len(splits["train"])}
