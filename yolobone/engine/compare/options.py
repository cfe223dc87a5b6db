"""A comparison's options (CompareOptions: one field per compare.py flag) and their checks."""
from __future__ import annotations

import argparse
import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

from yolobone.engine.core.optim import OPTIMIZER_CHOICES
from yolobone.engine.core.trackers import DEFAULT_LOGGERS, check_loggers
from yolobone.engine.export.latency import RUNTIMES
from yolobone.engine.train import TASKS
from yolobone.utils.errors import YoloboneError
from yolobone.utils.option_values import option_values

BACKENDS = ("torch", *RUNTIMES)  # latency columns: PyTorch (the cpu/gpu columns), then export runtimes


class CompareError(YoloboneError, ValueError):
    """Comparison options that cannot be used (one line naming the option, the value and what is expected)."""


@dataclass
class CompareOptions:
    """compare.py's options (field = flag with dashes as underscores)."""

    cfgs: List[str] = field(default_factory=list)  # model YAMLs to compare
    cfg: str = ""  # the model whose backbone each of `backbones` replaces (yolobone/models/compose.py)
    backbones: List[str] = field(default_factory=list)  # backbone names/files; cfg's own stem = cfg unchanged
    data: Optional[str] = None  # data YAML / folder (None = the task's built-in set)
    epochs: int = 100
    imgsz: int = 640  # train, val and profiling image size (pixels)
    task: str = "detect"  # detect or classify (classify cuts detection YAMLs after their backbone)
    profile_only: bool = False  # only measure parameters, GFLOPs and latency
    batch_size: int = 16
    device: str = ""  # training device: '' (CUDA if present), 'cpu', '0', ...
    seed: int = 0
    hyp: Optional[str] = None  # detection hyperparameter YAML (None = train.py's default)
    optimizer: Optional[str] = None  # SGD, Adam or AdamW (None = the task's default_optimizer)
    workers: int = 8  # max dataloader workers
    noplots: bool = False  # no plot files inside the training runs (pareto.png and curves.png are still drawn)
    project: str = "runs/compare"
    name: str = "exp"
    exist_ok: bool = False  # reuse project/name: read back finished runs, resume interrupted ones
    resume: Union[bool, str] = False  # True = the newest comparison under project, or a comparison folder
    latency_runs: int = 20  # timed forward passes per device (median reported)
    backends: List[str] = field(default_factory=lambda: ["torch"])  # latency columns: torch, onnx, openvino
    pareto_backend: str = "torch"  # the latency the Pareto plot uses (one of backends)
    int8: bool = False  # per trained config: INT8 (ONNX Runtime) score, its drop against FP32, and INT8 latency
    seeds: List[int] = field(default_factory=list)  # train every config once per seed (empty: just `seed`)
    freeze: List[Union[int, str]] = field(default_factory=lambda: [0])  # train.py --freeze for every config (detect)
    pretrained: bool = True  # train.py --pretrained for every config (detect): False = backbones from random init
    jobs: int = 1  # concurrent (config, seed) jobs on this machine (--device 0,1,2,3: one per GPU)
    ray: str = ""  # run the jobs as Ray tasks: 'auto', a cluster address, or 'local' (a Ray instance here)
    cpus_per_job: int = 1  # CPUs each job asks for (Ray's resource request, the pool's thread count)
    protocol: str = ""  # rerun this protocol.yaml (yolobone/engine/compare/protocol.py)
    tune_each: int = 0  # Ray Tune trials per config for its own recipe before the comparison (detect; 0: off)
    tune_time: float = 0.0  # seconds of Ray Tune per config (with tune_each 0: trials until the time is up)
    recipes: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # config name -> tuned recipe (compare/tune.py)
    loggers: List[str] = field(default_factory=lambda: list(DEFAULT_LOGGERS))  # train.py --loggers for every run

    @classmethod
    def from_any(cls, opt: Union["CompareOptions", argparse.Namespace, Mapping[str, Any], None] = None,
                 **overrides: Any) -> "CompareOptions":
        """From a Namespace, a dict or CompareOptions; unknown keys raise CompareError."""
        values = option_values(opt, cls, overrides, CompareError, "compare()")
        values["cfgs"] = [str(c) for c in (values.get("cfgs") or [])]
        values["backbones"] = [str(b) for b in (values.get("backbones") or [])]
        return cls(**values)

    def check(self) -> None:
        """Reject values no comparison could use, naming the flag."""
        if not self.cfgs and not self.backbones:
            raise CompareError("--cfgs: expected one or more model YAMLs (or --cfg with --backbones), got none")
        if bool(self.cfg) != bool(self.backbones):
            raise CompareError("--cfg and --backbones go together: --cfg configs/yolov5s.yaml --backbones yolov5s "
                               "resnet50 ... compares that model with each backbone")
        if self.task not in TASKS:
            raise CompareError(f"--task {self.task!r}: expected one of {', '.join(TASKS)}")
        task = TASKS[self.task]
        if self.epochs < 1:
            raise CompareError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise CompareError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.imgsz < task.min_imgsz:
            raise CompareError(f"--imgsz must be >= {task.min_imgsz} for --task {self.task}, got {self.imgsz}")
        if self.latency_runs < 1:
            raise CompareError(f"--latency-runs must be >= 1, got {self.latency_runs}")
        if self.workers < 0:
            raise CompareError(f"--workers must be >= 0, got {self.workers}")
        if self.hyp and not task.default_hyp:
            raise CompareError(f"--hyp {self.hyp}: --task {self.task} takes no hyperparameter YAML")
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad or not self.backends:
            raise CompareError(f"--backends {' '.join(bad) or '(none)'}: expected some of {', '.join(BACKENDS)}")
        if self.pareto_backend not in self.backends:
            raise CompareError(f"--pareto-backend {self.pareto_backend!r}: expected one of the --backends "
                               f"({', '.join(self.backends)})")
        if self.optimizer and self.optimizer not in OPTIMIZER_CHOICES:
            raise CompareError(f"--optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZER_CHOICES)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise CompareError(f"--seeds {' '.join(map(str, self.seeds))}: each seed once")
        if self.tune_each < 0 or self.tune_time < 0 or (self.tuning and self.task != "detect"):
            raise CompareError(f"--tune-each {self.tune_each} / --tune-time {self.tune_time:g}: expected >= 0, and "
                               f"detection only (got --task {self.task})")
        if check_loggers(self.loggers):
            raise CompareError(check_loggers(self.loggers))
        if self.jobs < 1 or self.cpus_per_job < 1:
            raise CompareError(f"--jobs and --cpus-per-job must be >= 1, got {self.jobs} and {self.cpus_per_job}")

    @property
    def tuning(self) -> bool:
        """Each config gets its own tuned recipe (--tune-each K trials and/or --tune-time seconds)."""
        return bool(self.tune_each or self.tune_time)

    @property
    def run_seeds(self) -> List[int]:
        """The seeds every config trains with: --seeds, else --seed."""
        return [int(s) for s in self.seeds] or [self.seed]

    @property
    def parallel(self) -> bool:
        """Jobs go to worker processes (a pool or Ray) rather than train in this process one after another."""
        return bool(self.ray) or self.jobs > 1 or "," in str(self.device)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def training_optimizer(self) -> str:
        """--optimizer, or what each config trains with when none was given."""
        task = TASKS[self.task]
        return self.optimizer or ("per head (default_recipe)" if task.recipe_by_head else task.default_optimizer)

    def command(self) -> str:
        """The compare.py command line that reproduces these options."""
        d = CompareOptions()
        parts = ["python", "compare.py"] + (["--cfgs", *self.cfgs] if self.cfgs else [])
        parts += ["--cfg", self.cfg, "--backbones", *self.backbones] if self.backbones else []
        for k in ("data", "epochs", "imgsz", "task", "batch_size", "device", "seed", "hyp", "optimizer", "workers",
                  "project", "name", "latency_runs", "pareto_backend"):
            v = getattr(self, k)
            if v != getattr(d, k) and v not in (None, ""):
                parts += [f"--{k.replace('_', '-')}", str(v)]
        parts += ["--backends", *self.backends] if self.backends != d.backends else []
        parts += ["--seeds", *map(str, self.seeds)] if self.seeds else []
        parts += ["--freeze", *map(str, self.freeze)] if list(self.freeze) != d.freeze else []
        parts += ["--pretrained", "false"] if not self.pretrained else []
        parts += ["--loggers", *self.loggers] if list(self.loggers) != d.loggers else []
        for k in ("jobs", "ray", "cpus_per_job", "tune_each", "tune_time"):
            parts += [f"--{k.replace('_', '-')}", str(getattr(self, k))] if getattr(self, k) != getattr(d, k) else []
        parts += ["--profile-only"] if self.profile_only else []
        parts += ["--noplots"] if self.noplots else []
        parts += ["--int8"] if self.int8 else []
        return " ".join(shlex.quote(p) for p in parts)


