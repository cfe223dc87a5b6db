"""protocol.yaml: everything that defines a comparison, so that it can be rerun and a reused folder checked.

    task, data (+ sha1 of a data YAML), epochs, imgsz, batch_size, hyp (file + values), optimizer, seeds, freeze,
    the model selection (cfgs / cfg + backbones), models (per config: YAML file, sha1, pretrained weights, frozen
    layers), and environment (python, torch, CUDA, cuDNN, device names, git commit).

`environment` is recorded but not compared: a rerun on another machine or driver is allowed to continue a folder.
Every other key must match for a folder to be reused (`protocol_differences` names the dotted keys that differ).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from yolobone.utils.errors import error_summary, YoloboneError
from yolobone.utils.yaml_io import load_yaml

PROTOCOL_FILE = "protocol.yaml"
PROTOCOL_VERSION = 1
# protocol key -> CompareOptions field it comes from (a --protocol rerun reads these back)
OPTION_KEYS = ("task", "cfgs", "cfg", "backbones", "epochs", "imgsz", "batch_size", "optimizer", "seeds", "freeze")
INFORMATIONAL = ("environment",)  # recorded, not compared


class ProtocolError(YoloboneError, ValueError):
    """A protocol file that cannot be used, or a folder whose protocol differs (one line)."""


def file_sha1(path: Optional[str]) -> Optional[str]:
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def _git_commit() -> Optional[str]:
    root = Path(__file__).resolve().parents[2]  # yolobone/
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(devices: Sequence[str]) -> Dict[str, Any]:
    """Software versions and the names of `devices` ('cpu', 'cuda:0', ...) as this process sees them."""
    import numpy
    import torch
    import torchvision
    from yolobone.utils.profiling import device_name
    env: Dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
                           "numpy": str(numpy.__version__), "cuda": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                           "devices": {str(d): device_name(d) for d in devices}, "git_commit": _git_commit()}
    try:
        import timm
        env["timm"] = timm.__version__
    except ImportError:
        env["timm"] = None
    return env


def describe_model(cfg: str, task: str, nc: int, freeze: Sequence[Any], pretrained: bool = True) -> Dict[str, Any]:
    """A config's identity: YAML file and sha1, where its pretrained tensors come from (none with pretrained False:
    compare.py --pretrained false), the layers frozen, and the recipe its head trains with unless told otherwise."""
    entry: Dict[str, Any] = {"cfg": cfg, "sha1": file_sha1(cfg)}
    from yolobone.engine.train import get_task
    from yolobone.models.backbones.pretrained import from_scratch
    plugin = get_task(task)
    try:
        with contextlib.nullcontext() if pretrained else from_scratch():
            model = plugin.new_model(cfg, nc)
    except Exception as e:  # the comparison reports the failure in its table; the protocol says so too
        entry.update(pretrained=None, freeze=None, error=error_summary(e, limit=1000))
        return entry
    from yolobone.models.weights_report import tensor_origins
    origins = sorted(set(tensor_origins(model).values()))
    entry["pretrained"] = origins or "none (random init)"
    entry["default_recipe"] = plugin.default_recipe(model)  # what an omitted --hyp / --optimizer means for it
    if "freeze" in {f.name for f in dataclasses.fields(plugin.options)} and list(freeze) not in ([], [0]):
        from yolobone.models.freeze import freeze_indices
        entry["freeze"] = freeze_indices(model, list(freeze) if len(freeze) > 1 else freeze[0])
    else:
        entry["freeze"] = []
    return entry


def build_protocol(options: Mapping[str, Any], data: str, data_file: Optional[str], hyp: Optional[str],
                   models: Dict[str, Dict[str, Any]], devices: Sequence[str]) -> Dict[str, Any]:
    """The protocol of a comparison: `options` holds the CompareOptions fields named in OPTION_KEYS."""
    p: Dict[str, Any] = {"protocol_version": PROTOCOL_VERSION}
    for k in OPTION_KEYS:
        v = options.get(k)
        p[k] = list(v) if isinstance(v, (list, tuple)) else v
    p["data"] = {"path": data, "sha1": file_sha1(data_file)}
    p["hyp"] = {"file": hyp, "values": load_yaml(Path(hyp), ProtocolError)} if hyp else None
    p["models"] = models
    if options.get("tune_each") or options.get("tune_time"):  # each config's budget and the recipe it trained with
        p["tuning"] = {"trials_per_config": int(options.get("tune_each") or 0),
                       "seconds_per_config": float(options.get("tune_time") or 0.0),
                       "recipes": dict(options.get("recipes") or {})}
    p["environment"] = environment(devices)
    return p


def write_protocol(path: Path, protocol: Mapping[str, Any]) -> Path:
    """Atomic write of protocol.yaml."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# yolobone comparison protocol: `python compare.py --protocol <this file>` reruns it\n"
                   + yaml.safe_dump(dict(protocol), sort_keys=False))
    os.replace(tmp, path)
    return path


def read_protocol(path: Path) -> Dict[str, Any]:
    data = load_yaml(Path(path), ProtocolError)
    if not isinstance(data, dict) or data.get("protocol_version") != PROTOCOL_VERSION:
        raise ProtocolError(f"{path}: not a comparison protocol (expected protocol_version: {PROTOCOL_VERSION})")
    missing = [k for k in (*OPTION_KEYS, "data", "hyp") if k not in data]
    if missing:
        raise ProtocolError(f"{path}: missing key(s) {', '.join(missing)}")
    return data


def protocol_options(protocol: Mapping[str, Any], base: Path) -> Dict[str, Any]:
    """CompareOptions values that rerun the protocol. A hyp file that is gone or changed is rewritten next to the
    protocol (hyp.protocol.yaml) from the recorded values, so the rerun trains with exactly those."""
    values = {k: protocol[k] for k in OPTION_KEYS}
    tuning = protocol.get("tuning") or {}
    if tuning:  # the recorded recipes are reused: a rerun trains with them instead of tuning again
        values["tune_each"], values["recipes"] = tuning["trials_per_config"], tuning["recipes"]
        values["tune_time"] = float(tuning.get("seconds_per_config") or 0.0)
    values["data"] = (protocol.get("data") or {}).get("path")
    hyp = protocol.get("hyp")
    if hyp:
        hyp_file = hyp.get("file")
        same = hyp_file and Path(hyp_file).is_file() and load_yaml(Path(hyp_file), ProtocolError) == hyp.get("values")
        if not same:
            hyp_file = str(base / "hyp.protocol.yaml")
            Path(hyp_file).write_text(yaml.safe_dump(hyp.get("values"), sort_keys=False))
        values["hyp"] = hyp_file
    return values


def _flatten(d: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(d, Mapping):
        out: Dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: d}


def protocol_differences(old: Mapping[str, Any], new: Mapping[str, Any],
                         ignore: Sequence[str] = INFORMATIONAL) -> List[str]:
    """Dotted keys whose values differ (or exist on one side only), environment ignored."""
    a = _flatten({k: v for k, v in old.items() if k not in ignore})
    b = _flatten({k: v for k, v in new.items() if k not in ignore})
    where = ("models.", ".cfg")  # a model's file may move (composed into another folder); its sha1 is compared
    return sorted(k for k in set(a) | set(b) if a.get(k, "<missing>") != b.get(k, "<missing>")
                  and not (k.startswith(where[0]) and k.endswith(where[1])))


def check_same_protocol(old: Mapping[str, Any], new: Mapping[str, Any], where: str, hint: str) -> None:
    """Refuse with one line naming every differing key (and the first difference's two values)."""
    diff = protocol_differences(old, new)
    if diff:
        a, b = _flatten(old), _flatten(new)
        first = diff[0]
        was, now = a.get(first, "<missing>"), b.get(first, "<missing>")
        raise ProtocolError(f"{where}: the protocol differs in {', '.join(diff)} ({first}: {was!r} there, "
                            f"{now!r} now); {hint}")
