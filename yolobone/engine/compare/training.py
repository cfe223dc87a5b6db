"""One (config, seed) training run of a comparison, in its own folder: read back a finished run, resume an
interrupted one from its last.pt, or train from scratch.

Each run folder keeps an epoch clock (compare_time.json: wall seconds trained so far, epochs done, finished), so a
resumed run's train time adds up and a driver in another process can follow the run's progress. The same code runs
in the driver (one job after another) and in a worker process (yolobone/engine/compare/worker.py).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from yolobone.engine.compare.options import CompareOptions
from yolobone.engine.compare.recipe import recipe_train_options
from yolobone.engine.compare.report import ConfigResult, read_run_history
from yolobone.engine.train import TASKS, train
from yolobone.utils.checkpoint import load_checkpoint
from yolobone.utils.profiling import device_name
from yolobone.utils.torch_utils import select_device

CLOCK_FILE = "compare_time.json"  # per run: wall seconds trained so far, epochs done, finished flag
JOB_SPEC, JOB_LOG, JOB_RESULT = "job_spec.json", "job.log", "job_result.json"  # a worker's files in its run folder
JOB_FILES = (JOB_SPEC, JOB_LOG)  # kept when a run folder is cleared for a fresh start


def read_clock(run_dir: Path) -> Dict[str, Any]:
    """The run's epoch clock ({} before its first epoch)."""
    try:
        return json.loads((run_dir / CLOCK_FILE).read_text())
    except (OSError, ValueError):
        return {}


def job_key(row: ConfigResult) -> str:
    """'config/seed0': a run's name, unique in its comparison."""
    return f"{row.name}/seed{row.seed}"


def checkpoint_state(last: Path) -> str:
    """'new' (no last.pt), 'partial' (an epoch checkpoint short of the end) or 'finished'."""
    if not last.is_file():
        return "new"
    ckpt = load_checkpoint(last)
    epoch = int(ckpt.get("epoch", -1))
    total = int((ckpt.get("opt") or {}).get("epochs", 0))
    ckpt_stage = ckpt.get("stage")
    del ckpt
    if epoch < 0:
        return "finished"
    if ckpt_stage is not None:  # the run records its end steps in last.pt: --resume finishes them
        return "partial"
    if epoch + 1 >= total:  # killed after the last epoch's checkpoint but before the final strip
        from yolobone.engine.core.training_checkpoint import strip_checkpoint
        for f in (last, last.with_name("best.pt")):
            if f.is_file():
                strip_checkpoint(f)
        return "finished"
    return "partial"


def tracker_group(save_dir: Path) -> str:
    """The comparison's name in MLflow / W&B: its folder (absolute, so two checkouts' runs/compare/exp differ)."""
    return str(Path(save_dir).resolve())[-128:]  # W&B caps group names at 128 characters


def clear_run_dir(run_dir: Path) -> None:
    """Empty a run folder for a fresh start, keeping the job's spec and log (a worker writes that log)."""
    for p in run_dir.iterdir():
        if p.name in JOB_FILES:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


class RunTrainer:
    """Trains a comparison's runs into save_dir/runs/<config> (runs/<config>/seed<k> with several seeds)."""

    def __init__(self, o: CompareOptions, save_dir: Path, train_callbacks: Optional[Mapping[str, Any]] = None):
        self.opt, self.save_dir = o, save_dir
        self.train_callbacks = dict(train_callbacks or {})

    def run_dir(self, row: ConfigResult) -> Path:
        one_seed = len(self.opt.run_seeds) == 1
        return self.save_dir / "runs" / row.name / ("" if one_seed else f"seed{row.seed}")

    def train(self, row: ConfigResult, on_epoch: Optional[Callable[[int], None]] = None) -> None:
        """Read back a finished run, resume an interrupted one, or train from scratch; on_epoch(epoch) after each."""
        run_dir = self.run_dir(row)
        last = run_dir / "weights" / "last.pt"
        clock = read_clock(run_dir)
        state = "finished" if clock.get("finished") and last.is_file() else checkpoint_state(last)
        if state == "finished":
            row.how = "read back"
        elif state == "partial":
            row.how = "resumed"
            self._train_run(run_dir, {"resume": str(last)}, float(clock.get("train_seconds", 0.0)), on_epoch)
        else:
            if run_dir.exists():  # a start that never wrote a checkpoint: begin again in a clean folder
                clear_run_dir(run_dir)
            row.how = "trained"
            self._train_run(run_dir, self._fresh_options(row), 0.0, on_epoch)
        self.finish(row, run_dir)

    def finish(self, row: ConfigResult, run_dir: Path) -> None:
        """A finished run's figures into its row."""
        row.run_dir = run_dir
        row.history = read_run_history(run_dir / "results.csv", self.opt.task)
        row.train_time_s = read_clock(run_dir).get("train_seconds")
        row.status = "done"
        row.device = device_name(select_device(self.opt.device))

    def _fresh_options(self, row: ConfigResult) -> Dict[str, Any]:
        o = self.opt
        opts: Dict[str, Any] = {"cfg": row.cfg, "epochs": o.epochs, "imgsz": o.imgsz, "batch_size": o.batch_size,
                                "device": o.device, "seed": row.seed, "workers": o.workers, "noplots": o.noplots,
                                "project": str(self.run_dir(row).parent), "name": self.run_dir(row).name,
                                "exist_ok": True, "task": o.task,
                                "data": o.data or TASKS[o.task].default_data, "loggers": list(o.loggers),
                                "log_group": tracker_group(self.save_dir)}
        if o.hyp:  # else each config trains with its head's recipe (TrainTask.default_recipe)
            opts["hyp"] = o.hyp
        if o.optimizer:
            opts["optimizer"] = o.optimizer
        opts.update(recipe_train_options(o, (o.recipes or {}).get(row.name), row.cfg))
        if list(o.freeze) != [0]:
            opts["freeze"] = list(o.freeze)
        if not o.pretrained:
            opts["pretrained"] = False
        return opts

    def _train_run(self, run_dir: Path, opts: Dict[str, Any], base_seconds: float,
                   on_epoch: Optional[Callable[[int], None]]) -> None:
        t0 = time.perf_counter()

        def record(epochs_done: int, finished: bool = False) -> None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / CLOCK_FILE).write_text(json.dumps({"train_seconds": base_seconds + time.perf_counter() - t0,
                                                          "epochs_done": epochs_done, "finished": finished}))

        def epoch_end(epoch: int) -> None:
            record(epoch + 1)
            if on_epoch is not None:
                on_epoch(epoch)

        callbacks: Dict[str, List[Callable]] = {}
        for event, fns in self.train_callbacks.items():
            callbacks[event] = list(fns) if isinstance(fns, (list, tuple)) else [fns]
        callbacks["on_fit_epoch_end"] = [lambda t: epoch_end(t.epoch)] + callbacks.get("on_fit_epoch_end", [])
        result = train({**opts, "device": self.opt.device, "workers": self.opt.workers}, callbacks=callbacks)
        record(result.epochs_completed, finished=True)


def train_job(options: Mapping[str, Any], save_dir: str, name: str, cfg: str, seed: int, device: str
              ) -> Dict[str, Any]:
    """One (config, seed) job as a worker process runs it: read back, resume or train into the comparison folder."""
    o = CompareOptions.from_any(options, device=device, jobs=1, ray="")
    row = ConfigResult(name=name, cfg=cfg, seed=int(seed))
    RunTrainer(o, Path(save_dir)).train(row)
    return {"how": row.how, "train_time_s": row.train_time_s}
