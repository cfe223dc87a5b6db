"""Training checkpoints: what last.pt/best.pt hold, RNG states for exact resume, the final strip."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable, Dict, Optional, TypeVar

import numpy as np
import torch

from yolobone.utils.checkpoint import CheckpointError, copy_checkpoint, load_checkpoint, save_checkpoint

# Entries only a run in progress needs; final checkpoints drop them.
TRAINING_ONLY = ("ema", "updates", "optimizer", "resume_state")
# last.pt's "stage": "train" while epochs remain; after the last epoch, the next step of the end sequence
# ("best": write and strip best.pt, "validate": final validation and plots, "strip": strip last.pt itself);
# "done" in a final checkpoint. Each step is redone safely, so --resume runs whatever a kill left undone.
TRAIN, DONE = "train", "done"
END_STAGES = ("best", "validate", "strip")
STAGES = (TRAIN, *END_STAGES, DONE)
T = TypeVar("T")


def capture_rng(loader_generator: Optional[torch.Generator] = None) -> Dict[str, Any]:
    """python, numpy, torch (CPU and CUDA) and dataloader-generator states, in weights_only-loadable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "loader": loader_generator.get_state() if loader_generator is not None else None}


def restore_rng(state: Dict[str, Any], loader_generator: Optional[torch.Generator] = None) -> None:
    """Inverse of capture_rng."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader_generator is not None and state.get("loader") is not None:
        loader_generator.set_state(state["loader"])


def float_state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """CPU float32 copy of a state dict (integer buffers kept as they are)."""
    return {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().clone()
            for k, v in model.state_dict().items()}


def stripped(ckpt: Dict[str, Any]) -> Dict[str, Any]:
    """A final copy of a training checkpoint: epoch -1, stage done, training-only entries set to None."""
    final = {k: v for k, v in ckpt.items() if k != "format_version"}
    final.update({k: None for k in TRAINING_ONLY}, epoch=-1, stage=DONE)
    return final


def strip_checkpoint(path: Path) -> Dict[str, Any]:
    """Rewrite a training checkpoint as a final one (stripped(); the same file again when it already is)."""
    ckpt = stripped(load_checkpoint(path))
    save_checkpoint(ckpt, path, step="strip")
    return ckpt


def checkpoint_stage(ckpt: Dict[str, Any], path: Path) -> str:
    """The stage of a checkpoint (STAGES); one written before stages existed is placed by its epoch."""
    stage = ckpt.get("stage")
    if stage is None:
        epoch, epochs = int(ckpt.get("epoch", -1)), int((ckpt.get("opt") or {}).get("epochs", 0))
        return DONE if epoch < 0 else (END_STAGES[0] if epoch + 1 >= epochs else TRAIN)
    if stage not in STAGES:
        raise CheckpointError(f"{path}: unknown training stage {stage!r} (expected one of {', '.join(STAGES)})")
    return stage


def latest_checkpoint(search_dir: Path) -> Path:
    """Most recently written last*.pt under search_dir (for a bare --resume)."""
    runs = sorted(Path(search_dir).rglob("last*.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise CheckpointError(f"resume: no last*.pt found under {search_dir}; pass the checkpoint path")
    return runs[-1]


def load_resumable(path: Path, task: str = "detect") -> Dict[str, Any]:
    """A checkpoint of `task` that can be resumed (it has the training state); otherwise a one-line CheckpointError."""
    ckpt = load_checkpoint(path)
    if ckpt.get("task", "detect") != task:
        raise CheckpointError(f"{path}: a {ckpt.get('task', 'detect')!r} checkpoint cannot resume --task {task} "
                              f"training")
    if (ckpt.get("epoch", -1) < 0 or not ckpt.get("resume_state") or not isinstance(ckpt.get("opt"), dict)
            or checkpoint_stage(ckpt, path) == DONE):
        raise CheckpointError(f"{path}: training already finished (final checkpoint), nothing to resume; "
                              f"start a new run with --weights {path}")
    return ckpt


def run_end_steps(ckpt: Dict[str, Any], last: Path, best: Path, last_is_best: bool,
                  validate: Callable[[Path], T]) -> Optional[T]:
    """The end of a run after its last epoch, from ckpt["stage"] on: best.pt (written from the last epoch's
    checkpoint when that epoch is the best, then stripped), validate(best.pt or last.pt) with its plots, last.pt
    stripped. Each step done is recorded in last.pt, and each can be redone, so --resume finishes what a kill
    interrupted. Returns validate's result (None when that step was already done)."""
    result = None
    if ckpt["stage"] == "best":
        if last_is_best:  # last.pt on disk holds exactly ckpt at this stage: copy its bytes, not serialize again
            copy_checkpoint(last, best, step="final")
        if best.exists():
            strip_checkpoint(best)
        _advance(ckpt, last, "validate")
    if ckpt["stage"] == "validate":
        result = validate(best if best.exists() else last)
        _advance(ckpt, last, "strip")
    if ckpt["stage"] == "strip":
        save_checkpoint(stripped(ckpt), last, step="strip")
        ckpt["stage"] = DONE
    return result


def _advance(ckpt: Dict[str, Any], last: Path, stage: str) -> None:
    """Record in last.pt that the end sequence reached `stage`."""
    ckpt["stage"] = stage
    save_checkpoint(ckpt, last, step="stage")
