"""Pretrained backbone weights: a YAML `weights` argument -> a state dict, downloaded once into the usual cache.

Accepted values: None/False (random init), True or "DEFAULT" (torchvision's default weights for the model), a
torchvision weights name ("IMAGENET1K_V1" or "ResNet50_Weights.IMAGENET1K_V2"), or a local file path. Torchvision
weights live in the torch hub cache ($TORCH_HOME/hub/checkpoints/<file>); a missing file is downloaded from the
weights' URL with the sha256 check of torch hub (yolobone/utils/download.py). Offline, the error says which file to
put where, and how to train from scratch instead. Loading checks every tensor the backbone uses and ignores the
classifier's.

Nothing is read inside `no_pretrained()` (a checkpoint's weights come next, or only the architecture is wanted),
inside `from_scratch()` (train.py --pretrained false), or when YOLOBONE_PRETRAINED=false is set (the same switch for
every command; the test suite sets it).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union
from urllib.parse import urlparse

import torch
import torch.nn as nn

from yolobone.models.registry import ModelConfigError
from yolobone.utils.download import DownloadError, download_file, hash_prefix_of

_PATH_SUFFIXES = (".pt", ".pth", ".pth.tar", ".ckpt", ".bin")
PRETRAINED_ENV = "YOLOBONE_PRETRAINED"
SCRATCH_HINT = "or train from scratch with --pretrained false (weights: false in the YAML)"
# "load": read weights; "rebuild": a checkpoint's weights come next (no report); "scratch": random init, reported
_mode: contextvars.ContextVar[str] = contextvars.ContextVar("pretrained_mode", default="load")


class PretrainedWeightsError(ModelConfigError):
    """Pretrained weights cannot be found or do not fit the backbone."""


@dataclass
class LoadedWeights:
    """What a backbone module loaded, for the pretrained report (yolobone/models/weights_report.py): set as the
    `loaded_weights` attribute of the module whose state-dict keys `keys` are."""

    origin: str  # 'IMAGENET1K_V2 (file ...)', 'file ...'
    keys: List[str] = field(default_factory=list)
    unused: int = 0  # tensors of the file the backbone has no place for (the classifier)


class StateDict(dict):
    """A state dict that remembers where it was read from (`origin`, for the pretrained report)."""

    origin: str = ""


def pretrained_enabled() -> bool:
    """Whether backbone blocks read pretrained weights now (see the module docstring for what switches it off)."""
    switched_off = os.environ.get(PRETRAINED_ENV, "").strip().lower() in ("0", "false", "no", "off")
    return _mode.get() == "load" and not switched_off


def weights_reported() -> bool:
    """False while rebuilding a checkpoint (no_pretrained): its tensors replace the build's, so no report."""
    return _mode.get() != "rebuild"


@contextlib.contextmanager
def _pretrained_mode(mode: str) -> Iterator[None]:
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


def no_pretrained() -> contextlib.AbstractContextManager:
    """Build models without reading pretrained files (rebuilding a checkpoint whose weights come next, or a model
    built only for its summary or profile)."""
    return _pretrained_mode("rebuild")


def from_scratch() -> contextlib.AbstractContextManager:
    """Build models with randomly initialised backbones (train.py --pretrained false); the report says so."""
    return _pretrained_mode("scratch")


WeightsSource = Union[Path, Any]  # a local file or a torchvision WeightsEnum member


def resolve_weights(model: str, weights: Any) -> Optional[WeightsSource]:
    """The YAML value -> None, a torchvision WeightsEnum member, or an existing local file."""
    if weights is None or weights is False or (isinstance(weights, str) and weights.lower() in ("", "none")):
        return None
    if not pretrained_enabled():
        return None
    if weights is True:
        weights = "DEFAULT"
    if not isinstance(weights, str):
        raise PretrainedWeightsError(f"{model}: weights must be true/false, a torchvision weights name or a file "
                                     f"path, got {weights!r}")
    if looks_like_path(weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(f"{model}: weights file {path} not found")
        return path
    from torchvision.models import get_model_weights, get_weight
    if "." in weights:
        try:
            return get_weight(weights)
        except (KeyError, ValueError, AttributeError):
            raise PretrainedWeightsError(f"{model}: unknown torchvision weights {weights!r}") from None
    enum = get_model_weights(model)
    try:
        return enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    except KeyError:
        names = ", ".join(enum.__members__)
        raise PretrainedWeightsError(f"{model}: unknown weights {weights!r}; torchvision has {names}") from None


def looks_like_path(value: str) -> bool:
    """A weights value that names a file rather than a weights name."""
    return "/" in value or os.sep in value or value.endswith(_PATH_SUFFIXES) or Path(value).expanduser().is_file()


def offline_error(what: str, url: str, path: Path, why: str) -> PretrainedWeightsError:
    """The one-line error of a weights file that is not cached and could not be downloaded."""
    return PretrainedWeightsError(f"{what}: {path.name} is not cached and could not be downloaded ({why}): put "
                                  f"{path.name} (from {url}) in {path.parent}/, {SCRATCH_HINT}")


def fetch_to_cache(what: str, url: str, path: Path) -> Path:
    """path when it is there, else url downloaded into it (sha256-checked against the hash in its name)."""
    if path.is_file():
        return path
    try:
        return download_file(url, path, hash_prefix_of(path.name))
    except DownloadError as e:
        raise offline_error(what, url, path, str(e)) from None


def cached_file(weights: Any) -> Path:
    """The torch hub cache file of a torchvision weights member, downloaded on first use."""
    name = os.path.basename(urlparse(weights.url).path)
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    return fetch_to_cache(f"pretrained weights {weights!r}", weights.url, path)


def read_state_dict(source: WeightsSource) -> StateDict:
    """Tensors of a torchvision weights member (from the cache, downloaded on first use) or of a local file (state
    dict, or a dict holding one under 'state_dict' or 'model'); loaded with weights_only=True."""
    path = source if isinstance(source, Path) else cached_file(source)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean "not a weights file"
        again = "" if isinstance(source, Path) else "; delete it to download it again"
        raise PretrainedWeightsError(f"{path}: cannot read as a state dict ({type(e).__name__}: "
                                     f"{str(e).splitlines()[0] if str(e) else ''}){again}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedWeightsError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    state = StateDict(obj)
    state.origin = f"file {path}" if isinstance(source, Path) else f"{source.name} (file {path})"
    return state


def load_mapped_state(module: nn.Module, state: Dict[str, torch.Tensor],
                      key_of: Callable[[str, torch.Tensor], Optional[str]], source: str) -> Tuple[List[str], int]:
    """Copy `state` into `module`: each module tensor from the file key `key_of(name, tensor)` gives. Every tensor of
    `module` must be found with its shape; file keys left over (the classifier) are counted, not loaded. Meta tensors
    are replaced (assign). Returns (the module keys loaded, the number of file tensors not used)."""
    mapped, missing, wrong, used = {}, [], [], set()
    for name, t in module.state_dict(keep_vars=True).items():
        key = key_of(name, t)
        if key is None or key not in state:
            missing.append(key or name)
        elif tuple(state[key].shape) != tuple(t.shape):
            wrong.append(f"{key} {tuple(state[key].shape)} vs {tuple(t.shape)}")
        else:
            mapped[name] = state[key]
            used.add(key)
    if missing or wrong:
        detail = f"missing {missing[:2]}" if missing else f"shape mismatch {wrong[:2]}"
        raise PretrainedWeightsError(f"{source}: weights do not fit the backbone ({len(missing)} missing, "
                                     f"{len(wrong)} of another shape: {detail})")
    module.load_state_dict(mapped, strict=True, assign=True)
    return sorted(mapped), len(state) - len(used)


def load_backbone_state(module: nn.Module, original: Dict[int, str], state: Dict[str, torch.Tensor],
                        source: str) -> int:
    """Copy `state` (named as in the original torchvision model) into `module`, which holds some of that model's
    tensors, possibly renamed; `original` maps id(tensor) -> name in the original model, taken before cutting.
    Keys the original model lacks are an error, keys of parts `module` dropped (the classifier) are ignored. Returns
    the number of tensors loaded."""
    known = set(original.values())
    unknown = [k for k in state if k not in known]
    if unknown:
        raise PretrainedWeightsError(f"{source}: {len(unknown)} keys are not in the model, e.g. {unknown[0]!r} "
                                     f"(model keys look like {next(iter(original.values()))!r})")
    keys, unused = load_mapped_state(module, state, lambda name, t: original.get(id(t), name), source)
    left = [n for n, t in _tensors(module) if t.is_meta]
    if left:
        raise PretrainedWeightsError(f"{source}: backbone tensors {left[:3]} were not in the file")
    module.loaded_weights = LoadedWeights(getattr(state, "origin", "") or source, keys, unused)
    return len(keys)


def _tensors(module: nn.Module) -> Iterable:
    yield from module.named_parameters()
    yield from module.named_buffers()
