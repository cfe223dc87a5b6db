"""Backbone comparison: train (or only profile) several model YAMLs under identical settings, then tabulate and plot.

    from engine.compare import compare
    res = compare({"cfgs": ["configs/yolov5s.yaml", "configs/yolov5s-resnet18.yaml"], "epochs": 3, "imgsz": 128})
    print(res.results_md.read_text())

Layout of a comparison folder (runs/compare/exp, exp2, ...):
    compare.yaml             the options (a re-run with different training settings is refused)
    profiles.json            cached size/speed measurements (reused while the YAML file and settings match)
    runs/<cfg stem>/         each config's own training run (results.csv, weights/last.pt, best.pt, plots)
    results.md, results.csv  the table; pareto.png, curves.png
Re-running the same command with --exist-ok (or --resume DIR) reads finished runs back, resumes an interrupted run
from its last.pt and retries failed configs; nothing finished is retrained.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import json
import os
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
import yaml
from tqdm import tqdm

from engine.backends.latency import RUNTIMES, export_latency_ms
from engine.compare_report import (ConfigResult, plot_curves, plot_pareto, read_run_history, write_results_csv,
                                   write_results_md)
from engine.core.optim import OPTIMIZERS
from engine.train import TASKS, train
from utils.option_values import option_values
from utils.checkpoint import load_checkpoint
from utils.logging import LOGGER
from utils.paths import increment_path
from utils.profiling import ModelProfile, device_name, latency_devices, profile_model
from utils.yaml_io import load_yaml

# Options that must match when an existing comparison folder is reused for training.
TRAINING_IDENTITY = ("task", "data", "epochs", "imgsz", "batch_size", "seed", "hyp", "optimizer")
BACKENDS = ("torch", *RUNTIMES)  # latency columns: PyTorch (the cpu/gpu columns), then export runtimes
CLOCK_FILE = "compare_time.json"  # per run: wall seconds trained so far, epochs done, finished flag


class CompareError(ValueError):
    """Comparison options that cannot be used (one line naming the option, the value and what is expected)."""


@dataclass
class CompareOptions:
    """compare.py's options (field = flag with dashes as underscores)."""

    cfgs: List[str] = field(default_factory=list)  # model YAMLs to compare
    cfg: str = ""  # the model whose backbone each of `backbones` replaces (models/compose.py)
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
        if self.optimizer and self.optimizer not in OPTIMIZERS:
            raise CompareError(f"--optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def training_optimizer(self) -> str:
        """--optimizer, or the task's default when none was given."""
        return self.optimizer or TASKS[self.task].default_optimizer

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
        parts += ["--profile-only"] if self.profile_only else []
        parts += ["--noplots"] if self.noplots else []
        return " ".join(shlex.quote(p) for p in parts)


@dataclass
class CompareResult:
    """What compare() returns."""

    save_dir: Path
    rows: List[ConfigResult]
    results_md: Path
    results_csv: Path
    pareto: Optional[Path] = None
    curves: Optional[Path] = None


# --------------------------------------------------------------------------------------------- folder state
def _resume_options(o: CompareOptions) -> CompareOptions:
    """--resume [DIR]: the saved options of that comparison, with this command's device, workers and cfgs."""
    if isinstance(o.resume, str) and o.resume not in ("", "True", "true", "1"):
        folder = Path(o.resume)
    else:
        found = sorted(Path(o.project).glob("*/compare.yaml"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise CompareError(f"--resume: no comparison (compare.yaml) under {o.project}; pass its folder")
        folder = found[-1].parent
    saved_file = folder / "compare.yaml"
    if not saved_file.is_file():
        raise CompareError(f"--resume {folder}: not a comparison folder (no compare.yaml)")
    saved = load_yaml(saved_file, CompareError) or {}
    d = CompareOptions()
    keep = {k: getattr(o, k) for k in ("device", "workers", "cfgs", "cfg", "backbones", "latency_runs")
            if getattr(o, k) != getattr(d, k)}
    known = {f.name for f in dataclasses.fields(CompareOptions)}
    values = {k: v for k, v in saved.get("options", {}).items() if k in known}
    values.update(keep, project=str(folder.parent), name=folder.name, exist_ok=True, resume=False)
    return CompareOptions.from_any(values)


def _check_settings(save_dir: Path, o: CompareOptions) -> None:
    """Refuse to mix runs trained under different settings in one comparison folder."""
    f = save_dir / "compare.yaml"
    if not f.is_file():
        return
    old = (load_yaml(f, CompareError) or {}).get("options", {})
    if old.get("profile_only") or o.profile_only:
        keys = ("task", "imgsz")
    else:
        keys = TRAINING_IDENTITY
    for k in keys:
        was, now = _normalised(k, old.get(k), o.task), _normalised(k, getattr(o, k), o.task)
        if k in old and was != now:
            raise CompareError(f"{save_dir}: this comparison was made with --{k.replace('_', '-')} {was}, "
                               f"this command has {now}; use another --name (or the same settings)")


def _normalised(key: str, value: Any, task: str) -> Any:
    """data/hyp as training resolves them, so an omitted flag equals the default written out."""
    plugin = TASKS[task]
    if key == "data" and not value:
        return plugin.default_data
    if key == "hyp" and not value and plugin.default_hyp:
        return plugin.default_hyp
    if key == "optimizer" and not value:
        return plugin.default_optimizer
    return value


def _unique_names(cfgs: Sequence[str]) -> List[str]:
    names: List[str] = []
    for c in cfgs:
        stem, n = Path(c).stem, 2
        name = stem
        while name in names:
            name, n = f"{stem}-{n}", n + 1
        names.append(name)
    return names


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}"[:300] if text else type(e).__name__


def _read_clock(run_dir: Path) -> Dict[str, Any]:
    try:
        return json.loads((run_dir / CLOCK_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _model_cfgs(o: CompareOptions, save_dir: Path) -> List[str]:
    """--cfgs, then --cfg composed with each of --backbones (written to save_dir/models/, so every run, its hash
    and its checkpoint see one ordinary model YAML)."""
    from models.compose import compose, dump_model_yaml
    # the model's own stem stands for its own backbone (the YAML as it is); compose all before writing any
    specs = [None if b == Path(o.cfg).stem else compose(o.cfg, b) for b in o.backbones]
    cfgs = list(o.cfgs)
    for spec in specs:
        if spec is None:
            cfgs.append(o.cfg)
            continue
        path = save_dir / "models" / f"{spec.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {spec.source}\n{dump_model_yaml(spec.data)}")
        cfgs.append(str(path))
    return cfgs


def _file_hash(path: str) -> str:
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------- the task's pieces
def _dataset_nc(o: CompareOptions) -> int:
    """Class count of the comparison's data (generating a built-in set on first use)."""
    return TASKS[o.task].dataset_nc(o.data or TASKS[o.task].default_data, o.seed)


def _build(cfg: str, task: str, nc: int, imgsz: int):
    """The model as training builds it, and the image size training will use (a stride multiple for detection)."""
    from utils.image_size import stride_multiple
    model = TASKS[task].new_model(cfg, nc)
    return model, stride_multiple(imgsz, TASKS[task].grid_size(model))


class _Comparison:
    """One compare() call: the folder, the rows, the progress bar."""

    def __init__(self, o: CompareOptions, save_dir: Path, train_callbacks: Optional[Mapping[str, Any]],
                 cfgs: Sequence[str]):
        self.opt, self.save_dir = o, save_dir
        self.train_callbacks = dict(train_callbacks or {})
        self.names = _unique_names(cfgs)
        self.rows = [ConfigResult(name=n, cfg=c) for n, c in zip(self.names, cfgs)]
        self.profiles_file = save_dir / "profiles.json"
        try:
            self.profiles: Dict[str, Any] = json.loads(self.profiles_file.read_text())
        except (OSError, ValueError):
            self.profiles = {}
        self.per_config = 1 if o.profile_only else o.epochs
        self.accounted = [0 if o.profile_only else min(int(_read_clock(self.run_dir(n)).get("epochs_done", 0)),
                                                       o.epochs) for n in self.names]
        self.bar: Optional[tqdm] = None

    def run_dir(self, name: str) -> Path:
        return self.save_dir / "runs" / name

    # ---- progress -------------------------------------------------------------------------------------------
    def _account(self, i: int, n: int) -> None:
        self.accounted[i] = n
        if self.bar is not None:
            self.bar.update(sum(self.accounted) - self.bar.n)

    def _epoch_done(self, i: int, epoch: int) -> None:
        self.bar.set_postfix_str(f"epoch {epoch + 1}/{self.opt.epochs}")
        self._account(i, epoch + 1)

    # ---- one config -------------------------------------------------------------------------------------------
    def profile(self, row: ConfigResult, nc: int) -> None:
        o = self.opt
        devices = [str(d) for d in latency_devices(o.device)]
        key = {"sha1": _file_hash(row.cfg), "nc": nc, "imgsz": o.imgsz, "task": o.task, "devices": devices,
               "runs": o.latency_runs, "backends": list(o.backends)}
        cached = self.profiles.get(row.name)
        if cached and cached.get("key") == key:
            row.profile = ModelProfile.from_dict(cached["profile"])
            return
        model, imgsz = _build(row.cfg, o.task, nc, o.imgsz)
        row.profile = profile_model(model, imgsz, devices=devices, runs=o.latency_runs)
        for kind in (b for b in o.backends if b != "torch"):  # CPU runtimes, timed from a static export
            ms, runtime = export_latency_ms(model, imgsz, kind, self.save_dir / "exports" / row.name / kind,
                                            runs=o.latency_runs)
            row.profile.latency_ms[kind], row.profile.device_names[kind] = ms, f"{runtime}, {device_name('cpu')}"
        del model
        self.profiles[row.name] = {"key": key, "profile": row.profile.to_dict()}
        tmp = self.profiles_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.profiles, indent=1))
        os.replace(tmp, self.profiles_file)

    def train(self, i: int, row: ConfigResult) -> None:
        """Read back a finished run, resume an interrupted one, or train from scratch."""
        o, run_dir = self.opt, self.run_dir(row.name)
        last = run_dir / "weights" / "last.pt"
        clock = _read_clock(run_dir)
        state = "finished" if clock.get("finished") and last.is_file() else _checkpoint_state(last)
        if state == "finished":
            row.how = "read back"
        elif state == "partial":
            row.how = "resumed"
            self._train_run(i, run_dir, {"resume": str(last)}, base_seconds=float(clock.get("train_seconds", 0.0)))
        else:
            if run_dir.exists():  # a start that never wrote a checkpoint: begin again in a clean folder
                shutil.rmtree(run_dir)
            row.how = "trained"
            self._train_run(i, run_dir, self._fresh_options(row), base_seconds=0.0)
        row.run_dir = run_dir
        row.history = read_run_history(run_dir / "results.csv", o.task)
        row.train_time_s = _read_clock(run_dir).get("train_seconds")
        row.status = "done"

    def _fresh_options(self, row: ConfigResult) -> Dict[str, Any]:
        o = self.opt
        opts: Dict[str, Any] = {"cfg": row.cfg, "epochs": o.epochs, "imgsz": o.imgsz, "batch_size": o.batch_size,
                                "device": o.device, "seed": o.seed, "workers": o.workers, "noplots": o.noplots,
                                "project": str(self.save_dir / "runs"), "name": row.name, "exist_ok": True,
                                "optimizer": o.training_optimizer, "task": o.task,
                                "data": o.data or TASKS[o.task].default_data}
        if o.hyp:
            opts["hyp"] = o.hyp
        return opts

    def _train_run(self, i: int, run_dir: Path, opts: Dict[str, Any], base_seconds: float) -> None:
        o = self.opt
        t0 = time.perf_counter()

        def record(epochs_done: int, finished: bool = False) -> None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / CLOCK_FILE).write_text(json.dumps({"train_seconds": base_seconds + time.perf_counter() - t0,
                                                          "epochs_done": epochs_done, "finished": finished}))

        def on_epoch(epoch: int) -> None:
            record(epoch + 1)
            self._epoch_done(i, epoch)

        callbacks: Dict[str, List[Callable]] = {}
        for event, fns in self.train_callbacks.items():
            callbacks[event] = list(fns) if isinstance(fns, (list, tuple)) else [fns]
        callbacks["on_fit_epoch_end"] = [lambda t: on_epoch(t.epoch)] + callbacks.get("on_fit_epoch_end", [])
        result = train({**opts, "device": o.device, "workers": o.workers}, callbacks=callbacks)
        record(result.epochs_completed, finished=True)

    # ---- the whole comparison ----------------------------------------------------------------------------------
    def run(self) -> CompareResult:
        o, n = self.opt, len(self.rows)
        nc = _dataset_nc(o)
        self.bar = tqdm(total=n * self.per_config, initial=sum(self.accounted), position=0, leave=True,
                        unit="config" if o.profile_only else "epoch", bar_format="{l_bar}{bar:20}{r_bar}")
        try:
            for i, row in enumerate(self.rows):
                self.bar.set_description(f"compare [{i + 1}/{n}] {row.name}")
                LOGGER.info(f"\ncompare: config {i + 1}/{n} {row.cfg} -> {self.run_dir(row.name)}")
                try:
                    self.profile(row, nc)
                    if o.profile_only:
                        row.status = "profiled"
                    else:
                        self.train(i, row)
                except KeyboardInterrupt:
                    row.status, row.error = "interrupted", "stopped by the user; re-run the command to resume"
                    row.run_dir = self.run_dir(row.name) if self.run_dir(row.name).exists() else None
                    self.write(plots=True)
                    raise
                except Exception as e:  # one failing config is reported in the table; the others go on
                    row.status, row.error = "failed", _one_line(e)
                    row.run_dir = self.run_dir(row.name) if self.run_dir(row.name).exists() else None
                    LOGGER.warning(f"compare: {row.name} failed: {row.error}")
                self._account(i, self.per_config)
                self.write(plots=False)
                gc.collect()  # the next config starts without the previous model's tensors
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        finally:
            self.bar.close()
        return self.write(plots=True)

    def write(self, plots: bool) -> CompareResult:
        o = self.opt
        md, csv_path = self.save_dir / "results.md", self.save_dir / "results.csv"
        pareto = curves = None
        if plots and not o.profile_only:
            pareto = plot_pareto(self.rows, o.task, self.save_dir / "pareto.png",
                                 backend=None if o.pareto_backend == "torch" else o.pareto_backend)
            curves = plot_curves(self.rows, o.task, self.save_dir / "curves.png")
        write_results_csv(csv_path, self.rows, o.task)
        imgsz = next((r.profile.imgsz for r in self.rows if r.profile), o.imgsz)  # a stride multiple when rounded
        write_results_md(md, self.rows, o.task, imgsz, _settings(o), o.command(),
                         [p for p in (pareto, curves) if p is not None], trained=not o.profile_only)
        return CompareResult(save_dir=self.save_dir, rows=self.rows, results_md=md, results_csv=csv_path,
                             pareto=pareto, curves=curves)


def _checkpoint_state(last: Path) -> str:
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
        from engine.core.training_checkpoint import strip_checkpoint
        for f in (last, last.with_name("best.pt")):
            if f.is_file():
                strip_checkpoint(f)
        return "finished"
    return "partial"


def _settings(o: CompareOptions) -> Dict[str, Any]:
    from utils.torch_utils import select_device
    task = TASKS[o.task]
    s: Dict[str, Any] = {"task": o.task, "data": o.data or task.default_data or task.builtin_data_name}
    if task.default_hyp:
        s["hyp"] = o.hyp or task.default_hyp
    if not o.profile_only:
        s.update(optimizer=o.training_optimizer, epochs=o.epochs, batch_size=o.batch_size, seed=o.seed,
                 training_device=str(select_device(o.device)))
    s.update(imgsz=o.imgsz)
    return s


def compare(opt: Union[CompareOptions, argparse.Namespace, Mapping[str, Any], None] = None,
            train_callbacks: Optional[Mapping[str, Any]] = None, **overrides: Any) -> CompareResult:
    """Profile and train every config under the same settings; write results.md/.csv, pareto.png and curves.png.

    train_callbacks are passed to each run's train() (events of engine.core.trainer.EVENTS), whatever the task. Input errors raise ValueError subclasses with one line.
    """
    o = CompareOptions.from_any(opt, **overrides)
    if o.resume:
        o = _resume_options(o)
    o.check()
    save_dir = increment_path(Path(o.project) / o.name, exist_ok=o.exist_ok)
    _check_settings(save_dir, o)
    cfgs = _model_cfgs(o, save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    (save_dir / "compare.yaml").write_text(yaml.safe_dump({"command": o.command(), "options": o.to_dict()},
                                                          sort_keys=False))
    LOGGER.info(f"compare: {len(cfgs)} configs, results in {save_dir}")
    comparison = _Comparison(o, save_dir, train_callbacks, cfgs)
    result = comparison.run()
    LOGGER.info(f"compare: results in {result.results_md}")
    return result
