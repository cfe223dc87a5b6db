"""A comparison's options (CompareOptions: one field per compare.py flag) and their checks."""
from __future__ import annotations

import argparse
import dataclasses
import shlex
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Union

from yolobone.engine.core.optim import OPTIMIZER_CHOICES
from yolobone.engine.core.trackers import DEFAULT_LOGGERS, LOGGER_CHOICES
from yolobone.engine.export.latency import RUNTIMES
from yolobone.engine.train import TASKS
from yolobone.utils.errors import YoloboneError
from yolobone.utils.options import at_least, check_options, one_of, option, option_values, to_argv

BACKENDS = ("torch", *RUNTIMES)  # latency columns: PyTorch (the cpu/gpu columns), then export runtimes


class CompareError(YoloboneError, ValueError):
    """Comparison options that cannot be used (one line naming the option, the value and what is expected)."""


def _backends(names: List[str]) -> List[str]:
    if not names or any(b not in BACKENDS for b in names):
        raise ValueError(f"expected some of {', '.join(BACKENDS)}")
    return list(names)


def _unique(seeds: List[int]) -> List[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError("expected each seed once")
    return seeds


def _loggers(names: List[str]) -> List[str]:
    if any(n not in LOGGER_CHOICES for n in names):
        raise ValueError(f"expected names from {', '.join(LOGGER_CHOICES)}")
    return list(names)


@dataclass
class CompareOptions:
    """compare.py's options, each declared once (flag, default, help, check): the parser is generated from them."""

    cfgs: List[str] = option(help="model YAMLs to compare", factory=list)
    cfg: str = option("", "the model whose backbone each of --backbones replaces")
    backbones: List[str] = option(help="backbones for --cfg: names in configs/backbones/ or files; the --cfg stem "
                                       "(yolov5s) keeps its own backbone", factory=list)
    data: Optional[str] = option(None, "data YAML (detect) or ImageFolder root (classify); default: the built-in "
                                       "shapes set")
    epochs: int = option(100, "training epochs per config", check=at_least(1))
    imgsz: int = option(640, "train/val image size, also used for GFLOPs and latency",
                        aliases=("--img", "--img-size"))
    task: str = option("detect", "train detectors or classifiers", choices=tuple(TASKS), check=one_of(tuple(TASKS)))
    profile_only: bool = option(False, "only measure parameters, GFLOPs and latency")
    batch_size: int = option(16, "training batch size", check=at_least(1))
    device: str = option("", "training device: cuda index (0) or cpu; a list (0,1,2,3) runs one job per GPU at a "
                             "time")
    seed: int = option(0, "training seed shared by every config")
    hyp: Optional[str] = option(None, "detection hyperparameter YAML (default: each head's own)")
    optimizer: Optional[str] = option(None, "optimizer for every config (default: each head's own for detect, Adam "
                                            "for classify)", choices=OPTIMIZER_CHOICES,
                                      check=one_of(OPTIMIZER_CHOICES, optional=True))
    workers: int = option(8, "max dataloader workers", check=at_least(0))
    noplots: bool = option(False, "no plot files inside each training run (pareto.png and curves.png are still "
                                  "drawn)")
    project: str = option("runs/compare", "save to project/name")
    name: str = option("exp", "save to project/name")
    exist_ok: bool = option(False, "reuse project/name: read back finished configs, resume interrupted ones")
    resume: Union[bool, str] = option(False, "continue the newest (or the given) comparison folder with its saved "
                                             "options", nargs="?", const=True)
    latency_runs: int = option(20, "timed forward passes per device (median reported)", check=at_least(1))
    backends: List[str] = option(help="latency columns: torch (PyTorch, CPU/GPU), onnx (ONNX Runtime), openvino "
                                      "(CPU), ...", factory=lambda: ["torch"], choices=BACKENDS, check=_backends)
    pareto_backend: str = option("torch", "whose latency the Pareto plot uses (one of --backends)", choices=BACKENDS)
    int8: bool = option(False, "per trained config: INT8 (ONNX Runtime) mAP50-95/top-1, its drop against FP32, "
                               "INT8 latency")
    seeds: List[int] = option(help="train every config once per seed; the table reports mean ± std (n) and tests "
                                   "each config against the first", factory=list, check=_unique)
    freeze: List[Union[int, str]] = option(help="train.py --freeze for every config (detect)", factory=lambda: [0])
    pretrained: bool = option(True, "train.py --pretrained for every config (detect): false trains the backbones "
                                    "from scratch")
    jobs: int = option(1, "(config, seed) jobs at the same time on this machine, each in its own process and log",
                       check=at_least(1))
    ray: str = option("", "run the jobs as Ray tasks on a cluster (auto, host:port) or a Ray instance here (local)",
                      metavar="auto|ADDRESS|local")
    cpus_per_job: int = option(1, "CPU threads of each parallel job (the CPUs a Ray task asks for)",
                               check=at_least(1))
    protocol: str = option("", "rerun the comparison a protocol.yaml describes")
    tune_each: int = option(0, "detect: K Ray Tune trials (ASHA) per config over lr0, weight decay, warmup, "
                               "optimizer and backbone LR on a tuning split of train; each config then trains with "
                               "its own best recipe", metavar="K", check=at_least(0))
    tune_time: float = option(0.0, "detect: a time budget for each config's tuning (alone: trials until the time is "
                                   "up)", metavar="SECONDS", check=at_least(0))
    recipes: Dict[str, Dict[str, Any]] = option(help="config name -> tuned recipe (compare/tune.py)", factory=dict,
                                                cli=False)
    loggers: List[str] = option(help="train.py --loggers for every run; mlflow/wandb runs are grouped under the "
                                     "comparison", factory=lambda: list(DEFAULT_LOGGERS), choices=LOGGER_CHOICES,
                                check=_loggers)

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
        check_options(self, CompareError)
        task = TASKS[self.task]
        if self.imgsz < task.min_imgsz:
            raise CompareError(f"--imgsz {self.imgsz}: expected >= {task.min_imgsz} for --task {self.task}")
        if self.hyp and not task.default_hyp:
            raise CompareError(f"--hyp {self.hyp}: --task {self.task} takes no hyperparameter YAML")
        if self.pareto_backend not in self.backends:
            raise CompareError(f"--pareto-backend {self.pareto_backend!r}: expected one of the --backends "
                               f"({', '.join(self.backends)})")
        if self.tuning and self.task != "detect":
            raise CompareError(f"--tune-each {self.tune_each} / --tune-time {self.tune_time:g}: detection only (got "
                               f"--task {self.task})")

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
        return " ".join(shlex.quote(p) for p in ["python", "compare.py", *to_argv(self, skip=("resume", "exist_ok", "protocol"))])
