"""Where the data is: YOLOv5 data YAMLs (detection) and ImageFolder roots (classification), image file lists.

``path`` in a data YAML is relative to the YAML's folder; ``train``/``val``/``test`` are relative to ``path`` and
may each be a folder, a .txt list of images, or a list of those. Problems raise DatasetError with one line naming
the file, the key and the value.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from yolobone.data.errors import DatasetError
from yolobone.data.media import IMG_FORMATS, is_image
from yolobone.utils.yaml_io import load_yaml

PathLike = Union[str, os.PathLike]


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


def _source(data: Union[PathLike, Dict[str, Any]]) -> Tuple[Dict[str, Any], str, Path]:
    """(config, where, base folder) of a data YAML path, a dict or a built-in's name / ``builtin:`` key."""
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
    if "builtin" not in cfg:
        return cfg, where, base
    name = cfg["builtin"]
    if name not in BUILTIN_DETECTION:
        raise DatasetError(f"{where}: unknown builtin dataset {name!r}, known: {', '.join(BUILTIN_DETECTION)}")
    generated = ensure_builtin_dataset(name)
    gen = _load_yaml(generated)
    if "names" in cfg and _names_list(cfg["names"], where) != _names_list(gen["names"], str(generated)):
        raise DatasetError(f"{where}: names {cfg['names']!r} do not match builtin {name!r} ({gen['names']!r})")
    if "nc" in cfg and cfg["nc"] != gen["nc"]:
        raise DatasetError(f"{where}: nc {cfg['nc']!r} does not match builtin {name!r} ({gen['nc']!r})")
    return {**gen, "builtin": name}, str(generated), generated.parent


def _root(cfg: Dict[str, Any], where: str, base: Path) -> Path:
    root = Path(cfg["path"]) if cfg.get("path") else base
    if not root.is_absolute():
        root = (base / root).resolve()
    if not root.is_dir():
        raise DatasetError(f"{where}: 'path' folder not found: {root}")
    return root


def _resolve_paths(cfg: Dict[str, Any], key: str, root: Path, where: str) -> Union[str, List[str], None]:
    """A YOLO-form split: a folder, a .txt list of images, an image, or a list of those (absolute, checked)."""
    value = cfg.get(key)
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


def _yaml_names(cfg: Dict[str, Any], where: str) -> Optional[List[str]]:
    if cfg.get("names") is not None:
        return _names_list(cfg["names"], where)
    return [f"class{i}" for i in range(int(cfg["nc"]))] if cfg.get("nc") is not None else None


def _checked_nc(cfg: Dict[str, Any], names: List[str], where: str) -> int:
    nc = cfg.get("nc", len(names))
    if isinstance(nc, bool) or not isinstance(nc, int) or nc < 1:
        raise DatasetError(f"{where}: 'nc' must be a positive integer, got {nc!r}")
    if nc != len(names):
        raise DatasetError(f"{where}: nc is {nc} but names has {len(names)} entries")
    return nc


def check_dataset(data: Union[PathLike, Dict[str, Any]]) -> Dict[str, Any]:
    """Validate a data YAML (path or dict) and return it with absolute paths, ``names`` as a list and ``nc``.

    ``path`` is relative to the YAML's folder (the current folder for a dict); ``train``/``val``/``test`` are
    relative to ``path``: YOLO image folders or lists, or COCO JSON / VOC splits (``{coco: x.json, images: dir}``,
    ``x.json``, ``{voc: ImageSets/Main/train.txt}``), which come back as spec dicts whose class names are the
    dataset's. ``builtin: <name>`` (or the bare name, e.g. ``"shapes"``) generates the built-in synthetic set into
    the cache on first use. Raises DatasetError with a one-line message.
    """
    from yolobone.data.annotation_sets import names_from_specs, split_spec

    cfg, where, base = _source(data)
    for key in ("train", "val"):
        if not cfg.get(key):
            raise DatasetError(f"{where}: missing key {key!r} (a data YAML needs train, val and names)")
    root = _root(cfg, where, base)
    specs = {k: split_spec(cfg.get(k), k, root, where) for k in ("train", "val", "test")}
    names = _yaml_names(cfg, where)
    if any(specs.values()):
        names = names_from_specs([s for s in specs.values() if s], None if cfg.get("names") is None else names,
                                 where)
    elif names is None:
        raise DatasetError(f"{where}: missing key 'names' (a list of class names)")
    nc = _checked_nc(cfg, names, where)
    splits = {k: {**specs[k], "names": names} if specs[k] else
              (_resolve_paths(cfg, k, root, where) if cfg.get(k) not in (None, "", []) else None)
              for k in ("train", "val", "test")}
    result = {k: v for k, v in cfg.items() if k not in ("path", "train", "val", "test", "names", "nc")}
    result.update(path=str(root), **splits, names=names, nc=nc, yaml_file=None if isinstance(data, dict) else where)
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


def list_image_files(path: Union[PathLike, Sequence[PathLike], Dict[str, Any]], prefix: str = "") -> List[str]:
    """Sorted absolute image paths from a folder (recursive), a .txt list of paths, an image, or a list of these;
    or the images of a COCO/VOC split spec (check_dataset's)."""
    if isinstance(path, dict):
        from yolobone.data.annotation_sets import spec_image_files

        return sorted(spec_image_files(path))
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
