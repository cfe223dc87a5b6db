"""train(): one entry point for every task; the task plugin is picked by the `task` option (detect, classify).

    from yolobone.engine.train import train
    result = train({"cfg": "configs/yolov5n.yaml", "epochs": 30, "imgsz": 256, "device": "cpu"})
    result = train({"task": "classify", "cfg": "configs/cls/yolov5n-cls.yaml", "epochs": 2, "imgsz": 64})
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from yolobone.engine.classify.task import ClassifyTask
from yolobone.engine.core.options import RunOptions, TrainConfigError
from yolobone.engine.core.task import TrainTask
from yolobone.engine.core.trainer import Callback, TrainResult, run_training
from yolobone.engine.detect.task import DetectTask

TASKS: Dict[str, TrainTask] = {t.name: t for t in (DetectTask(), ClassifyTask())}


def get_task(name: str) -> TrainTask:
    """The task plugin called `name` (TASKS); an unknown name raises TrainConfigError with the known ones."""
    if name not in TASKS:
        raise TrainConfigError(f"task {name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


def _task_name(opt: Any, overrides: Mapping[str, Any]) -> str:
    if "task" in overrides:
        return overrides["task"]
    if isinstance(opt, RunOptions):
        return opt.task
    values = vars(opt) if isinstance(opt, argparse.Namespace) else opt if isinstance(opt, Mapping) else {}
    return values.get("task") or "detect"


def train(opt: Union[RunOptions, Mapping[str, Any], argparse.Namespace, None] = None,
          callbacks: Optional[Mapping[str, Union[Callback, Sequence[Callback]]]] = None,
          **overrides: Any) -> TrainResult:
    """Train the task named by opt's `task` (default detect). opt: the task's options, an argparse Namespace or a
    dict of train.py's options (keyword overrides on top); callbacks: {event: fn(trainer) or [fns]}
    (engine.core.trainer.EVENTS)."""
    task = get_task(_task_name(opt, overrides))
    return run_training(task.options.from_any(opt, **overrides), task, callbacks)
