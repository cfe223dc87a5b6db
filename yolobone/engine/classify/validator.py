"""The classification validator: one eval pass gives the loss, the top-k ranking of every image, top-1/top-5,
per-class accuracy and the confusion matrix (the mirror of engine/detect/validator.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from yolobone.data.classify import ClassifyDataError
from yolobone.engine.backends import Backend
from yolobone.engine.core.validator import EvalStep, evaluate_loop

TOPK = 5


@dataclass
class ClassifyMetrics:
    """Per-image targets and ranked predictions of a validation pass, and the summaries derived from them."""

    names: List[str]
    targets: np.ndarray  # (N,) true class
    ranked: np.ndarray  # (N, k) predicted classes, most probable first, k = min(5, nc)
    loss: float  # mean loss per image
    speed_ms: tuple = (0.0, 0.0, 0.0)  # pre-process, inference, post-process per image

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def correct(self) -> np.ndarray:
        """(N, k) booleans: prediction j of image i is its true class."""
        return self.ranked == self.targets[:, None]

    @property
    def top1(self) -> float:
        return float(self.correct[:, 0].mean()) if len(self.targets) else 0.0

    @property
    def top5(self) -> float:
        return float(self.correct.any(1).mean()) if len(self.targets) else 0.0

    @property
    def fitness(self) -> float:
        """What best.pt is chosen by: top-1 accuracy."""
        return self.top1

    @property
    def confusion(self) -> np.ndarray:
        """(nc, nc) counts, rows = predicted class, columns = true class."""
        m = np.zeros((self.nc, self.nc), dtype=np.int64)
        np.add.at(m, (self.ranked[:, 0], self.targets), 1)
        return m

    def per_class(self) -> List[tuple]:
        """(name, images, top-1, top-5) for each class with at least one image."""
        rows = []
        c = self.correct
        for i, name in enumerate(self.names):
            sel = self.targets == i
            if sel.any():
                rows.append((name, int(sel.sum()), float(c[sel, 0].mean()), float(c[sel].any(1).mean())))
        return rows

    def table(self) -> str:
        """YOLOv5-style table: 'all' then one row per class (images, top-1, top-5)."""
        lines = [f"{'Class':>24}{'Images':>12}{'top1_acc':>12}{'top5_acc':>12}",
                 f"{'all':>24}{len(self.targets):>12}{self.top1:>12.3g}{self.top5:>12.3g}"]
        lines += [f"{name[:24]:>24}{n:>12}{t1:>12.3g}{t5:>12.3g}" for name, n, t1, t5 in self.per_class()]
        return "\n".join(lines)


class ClassificationStep(EvalStep):
    """evaluate()'s per-batch work: the loss and the top-k ranking of each image."""

    def __init__(self, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 target_map: Optional[np.ndarray]):
        self.criterion, self.target_map = criterion, target_map
        self.targets: List[torch.Tensor] = []
        self.ranked: List[torch.Tensor] = []
        self.loss_sum = 0.0

    def preprocess(self, batch: Any, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        labels = labels.to(device)
        if self.target_map is not None:
            labels = torch.as_tensor(self.target_map, device=device)[labels]
        return images.to(device, non_blocking=True), labels

    def update(self, logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, batch_index: int) -> None:
        self.loss_sum += float(self.criterion(logits.float(), labels)) * len(labels)
        self.ranked.append(logits.topk(min(TOPK, logits.shape[1]), dim=1).indices.cpu())
        self.targets.append(labels.cpu())


def evaluate(model: Union[nn.Module, Backend], loader: Sequence, device: Union[str, torch.device] = "cpu",
             criterion: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
             names: Optional[Sequence[str]] = None, half: bool = False, desc: Optional[str] = None,
             target_map: Optional[np.ndarray] = None) -> ClassifyMetrics:
    """One pass over (images, labels) batches in eval mode; `target_map` renumbers dataset labels to model ids.
    Batches go to the model's device (`device` for a module without parameters)."""
    step = ClassificationStep(criterion or nn.CrossEntropyLoss(), target_map)
    stats = evaluate_loop(model, loader, step, half=half, desc=desc, device=device)
    if not stats.seen:
        raise ClassifyDataError("evaluate(): the validation loader yielded no images")
    nc = int(getattr(model, "nc", 0)) or int(step.ranked[0].shape[1])
    names = list(names if names is not None else getattr(model, "names", []))
    if len(names) != nc:
        names = [str(i) for i in range(nc)]
    return ClassifyMetrics(names=names, targets=torch.cat(step.targets).numpy().astype(np.int64),
                           ranked=torch.cat(step.ranked).numpy().astype(np.int64),
                           loss=step.loss_sum / stats.seen, speed_ms=stats.speed_ms())
