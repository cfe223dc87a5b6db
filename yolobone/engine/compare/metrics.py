"""What a comparison reads from each task's runs and ranks them by: the metric columns of a run's results.csv, the
metric of the Pareto plot and of the significance test, and the epoch the trainer saved as best.pt.

These live here rather than on the task plugins (engine/core/task.py): only compare's reports use them. A new task
that compare should handle adds one TaskMetrics entry to TASK_METRICS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

from yolobone.engine.compare.options import CompareError
from yolobone.engine.detect.metrics import ULTRALYTICS_FITNESS, YOLOV5_FITNESS, fitness
from yolobone.models.loss_af import LOSS_NAMES


@dataclass(frozen=True)
class TaskMetrics:
    """One task's figures as compare reads and reports them."""

    columns: Dict[str, str]  # our metric name -> results.csv column (the first is also the curves' y-axis)
    pareto: str  # the metric of the Pareto plot and of the significance test
    # per-epoch metrics (columns' names) and the results.csv header -> best.pt's position
    best_epoch: Callable[[Dict[str, List[float]], Sequence[str]], int]
    best_epoch_note: str  # how the epoch saved as best.pt is chosen, as results.md says it
    builtin_data_name: str = ""  # how the reports name the built-in dataset that an empty --data means


def _latest_max(values: List[float]) -> int:
    """Position of the highest value; the trainers keep the latest of equal epochs."""
    return max(range(len(values)), key=lambda i: (values[i], i))


def _detect_best(metrics: Dict[str, List[float]], header: Sequence[str]) -> int:
    """An anchor-free head's run (its DFL loss column) keeps Ultralytics' fitness, an anchor-based one YOLOv5's."""
    weights = ULTRALYTICS_FITNESS if f"train/{LOSS_NAMES[-1]}" in header else YOLOV5_FITNESS
    return _latest_max([fitness(a, b, weights) for a, b in zip(metrics["mAP50"], metrics["mAP50-95"])])


def _classify_best(metrics: Dict[str, List[float]], header: Sequence[str]) -> int:
    return _latest_max(metrics["top1"])


TASK_METRICS: Dict[str, TaskMetrics] = {
    "detect": TaskMetrics(columns={"mAP50": "metrics/mAP_0.5", "mAP50-95": "metrics/mAP_0.5:0.95"},
                          pareto="mAP50-95", best_epoch=_detect_best,
                          best_epoch_note="highest 0.1 mAP50 + 0.9 mAP50-95 (anchor-free heads: mAP50-95), the epoch "
                                          "saved as best.pt"),
    "classify": TaskMetrics(columns={"top1": "metrics/accuracy_top1", "top5": "metrics/accuracy_top5"},
                            pareto="top1", best_epoch=_classify_best,
                            best_epoch_note="highest top-1, the epoch saved as best.pt",
                            builtin_data_name="built-in shapes-cls"),
}


def task_metrics(task: str) -> TaskMetrics:
    """The task's TaskMetrics; a task compare has no entry for raises CompareError."""
    if task not in TASK_METRICS:
        raise CompareError(f"task {task!r}: compare reports only {', '.join(TASK_METRICS)} runs "
                           f"(yolobone/engine/compare/metrics.py TASK_METRICS)")
    return TASK_METRICS[task]


def metric_columns(task: str) -> Dict[str, str]:
    """The task's per-epoch metrics: our name -> results.csv column (the first is the curves' y-axis)."""
    return task_metrics(task).columns


def pareto_metric(task: str) -> str:
    """The metric of the Pareto plot and of the significance test."""
    return task_metrics(task).pareto
