"""Experiment trackers behind --loggers: MLflow and Weights & Biases, each through its own Python API.

A tracker that is not installed, not reachable or failing mid-run costs one warning line and is switched off: training
is never lost to a logger. TensorBoard and results.csv stay with RunLogger (loggers.py)."""
from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from yolobone.utils.logging import LOGGER

LOGGER_CHOICES = ("tensorboard", "csv", "mlflow", "wandb")
DEFAULT_LOGGERS = ("tensorboard", "csv")
MLFLOW_DEFAULT_STORE = "mlruns"  # a local file store under the working directory (MLflow's own default folder)


def file_hash(path: Any) -> str:
    """sha256 (first 16 hex digits) of a file, or '' where `path` is not a file (a dict, the built-in dataset)."""
    try:
        p = Path(str(path))
        return hashlib.sha256(p.read_bytes()).hexdigest()[:16] if str(path) and p.is_file() else ""
    except OSError:
        return ""


def _why(e: BaseException) -> str:
    """'Type: first line of the message' (a tracker's exception can span pages)."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else 'no message'}"


def flat_params(prefix: str, values: Mapping[str, Any]) -> Dict[str, str]:
    """{'prefix/key': text}: trackers store parameters as short strings."""
    return {f"{prefix}/{k}": v if isinstance(v, str) else json.dumps(v, default=str)[:500] for k, v in values.items()}


def safe_metric_name(name: str) -> str:
    """MLflow accepts letters, digits and _-. /: results.csv's 'metrics/mAP_0.5:0.95' loses its colon."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name.strip())


class Tracker(ABC):
    """One experiment run in an external tracker; subclasses wrap one package."""

    name = ""

    @abstractmethod
    def start(self, run_name: str, group: str, params: Mapping[str, str], save_dir: Path) -> None:
        """(abstract)"""

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """(abstract)"""

    @abstractmethod
    def log_files(self, files: Sequence[Path], folder: str) -> None:
        """(abstract)"""

    @abstractmethod
    def finish(self) -> None:
        """(abstract)"""


GROUP_TAG, PARENT_TAG = "yolobone.group", "yolobone.group_parent"


def _mlflow_connect() -> Any:
    """The mlflow module pointed at MLFLOW_TRACKING_URI, else ./mlruns, and at the experiment (default 'yolobone')."""
    import mlflow
    uri = os.environ.get("MLFLOW_TRACKING_URI") or Path(MLFLOW_DEFAULT_STORE).resolve().as_uri()
    if uri.startswith("file:"):  # MLflow 3 refuses its file store unless told; it stays readable by MlflowClient
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or "yolobone")
    return mlflow


def _mlflow_group_run(mlflow: Any, group: str, create: bool = False) -> Optional[str]:
    """The id of the parent run tagged with `group` (made when `create` and none exists yet)."""
    quoted = group.replace("'", "\\'")
    found = mlflow.search_runs(filter_string=f"tags.`{PARENT_TAG}` = '{quoted}'", output_format="list",
                               max_results=1)
    if found:
        return found[0].info.run_id
    if not create:
        return None
    with mlflow.start_run(run_name=group.rsplit("/", 2)[-1], tags={PARENT_TAG: group, GROUP_TAG: group}) as run:
        return run.info.run_id


class MLflowTracker(Tracker):
    """MLflow: MLFLOW_TRACKING_URI, else a file store in ./mlruns. A compare group is a parent run (made once by the
    comparison, open_group) that every (config, seed) run nests under, found again by its tag in any process."""

    name = "mlflow"

    def start(self, run_name: str, group: str, params: Mapping[str, str], save_dir: Path) -> None:
        self.mlflow = _mlflow_connect()
        parent = _mlflow_group_run(self.mlflow, group) if group else None
        tags = {GROUP_TAG: group} if group else {}
        if parent is not None:
            tags["mlflow.parentRunId"] = parent
        self.run = self.mlflow.start_run(run_name=run_name, tags=tags or None)
        self.mlflow.log_params(dict(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics({safe_metric_name(k): float(v) for k, v in metrics.items()}, step=step)

    def log_files(self, files: Sequence[Path], folder: str) -> None:
        for f in files:
            self.mlflow.log_artifact(str(f), artifact_path=folder)

    def finish(self) -> None:
        self.mlflow.end_run()


class WandbTracker(Tracker):
    """Weights & Biases (WANDB_MODE=offline works without an account); a compare group is a W&B group."""

    name = "wandb"

    def start(self, run_name: str, group: str, params: Mapping[str, str], save_dir: Path) -> None:
        import wandb
        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "yolobone", name=run_name,
                              group=group or None, config=dict(params), dir=os.environ.get("WANDB_DIR") or str(save_dir),
                              reinit="finish_previous")

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log({k: float(v) for k, v in metrics.items()}, step=step)

    def log_files(self, files: Sequence[Path], folder: str) -> None:
        images = [f for f in files if f.suffix in (".png", ".jpg")]
        if images:
            self.run.log({f"{folder}/{f.stem}": self.wandb.Image(str(f)) for f in images})
        weights = [f for f in files if f.suffix == ".pt"]
        if weights:
            art = self.wandb.Artifact(f"{self.run.id}-{folder}", type="model")
            for f in weights:
                art.add_file(str(f))
            self.run.log_artifact(art)

    def finish(self) -> None:
        self.run.finish()


TRACKERS: Dict[str, Callable[[], Tracker]] = {"mlflow": MLflowTracker, "wandb": WandbTracker}


class TrackerSet:
    """The external trackers of one run; any failure warns once and drops that tracker."""

    def __init__(self, names: Sequence[str]):
        self.trackers: List[Tracker] = [TRACKERS[n]() for n in names if n in TRACKERS]

    def _each(self, what: str, fn: Callable[[Tracker], None]) -> None:
        for t in list(self.trackers):
            try:
                fn(t)
            except Exception as e:  # noqa: BLE001 - any tracker failure (import, network, store) must not stop training
                LOGGER.warning(f"{t.name} logging disabled: {what} failed ({_why(e)})")
                self.trackers.remove(t)

    def start(self, run_name: str, group: str, params: Mapping[str, str], save_dir: Path) -> None:
        self._each("start", lambda t: t.start(run_name, group, params, save_dir))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._each("log_metrics", lambda t: t.log_metrics(metrics, step))

    def log_files(self, files: Sequence[Path], folder: str) -> None:
        present = [Path(f) for f in files if Path(f).is_file()]
        if present:
            self._each("log_files", lambda t: t.log_files(present, folder))

    def finish(self) -> None:
        self._each("finish", lambda t: t.finish())
        self.trackers = []


def open_group(names: Sequence[str], group: str) -> None:
    """Before a comparison's runs start: its MLflow parent run (W&B groups need nothing made first)."""
    if "mlflow" not in names:
        return
    try:
        _mlflow_group_run(_mlflow_connect(), group, create=True)
    except Exception as e:  # noqa: BLE001 - as TrackerSet: a tracker problem is a warning
        LOGGER.warning(f"mlflow parent run for {group} not made ({_why(e)})")


