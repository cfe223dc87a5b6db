"""Backbone comparison: train (or only profile) several model YAMLs under identical settings, then tabulate and plot.

    from yolobone.engine.compare import compare
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
import torch.nn as nn
import yaml
from tqdm import tqdm

from yolobone.engine.export.latency import RUNTIMES, export_latency_ms
from yolobone.engine.backends.torch_backend import TorchBackend
from yolobone.engine.compare_protocol import (PROTOCOL_FILE, build_protocol, check_same_protocol, describe_model,
                                     protocol_options, read_protocol, write_protocol)
from yolobone.engine.compare_report import ConfigResult, read_run_history
from yolobone.engine.core.optim import OPTIMIZERS
from yolobone.engine.train import TASKS, train
from yolobone.utils.option_values import option_values
from yolobone.utils.checkpoint import load_checkpoint
from yolobone.utils.faults import fault_point
from yolobone.utils.logging import LOGGER
from yolobone.utils.paths import increment_path
from yolobone.utils.profiling import ModelProfile, device_name, latency_devices, profile_model
from yolobone.utils.torch_utils import select_device
from yolobone.utils.yaml_io import load_yaml

# Options that must match when an existing comparison folder is reused for training.
TRAINING_IDENTITY = ("task", "data", "epochs", "imgsz", "batch_size", "seed", "hyp", "optimizer", "pretrained")
TORCH_LATENCY = "TorchBackend"  # what the torch columns time (in the profile cache key: older caches re-measure)
BACKENDS = ("torch", *RUNTIMES)  # latency columns: PyTorch (the cpu/gpu columns), then export runtimes
CLOCK_FILE = "compare_time.json"  # per run: wall seconds trained so far, epochs done, finished flag


def deployed_torch(model: nn.Module, device: torch.device) -> TorchBackend:
    """The PyTorch latency columns time what detect.py and val.py run: the inference backend (a fused copy, on the
    CPU channels_last with packed oneDNN convolutions), not the bare eager model."""
    return TorchBackend(model, device)


class CompareError(ValueError):
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
    seeds: List[int] = field(default_factory=list)  # train every config once per seed (empty: just `seed`)
    freeze: List[Union[int, str]] = field(default_factory=lambda: [0])  # train.py --freeze for every config (detect)
    pretrained: bool = True  # train.py --pretrained for every config (detect): False = backbones from random init
    jobs: int = 1  # concurrent (config, seed) jobs on this machine (--device 0,1,2,3: one per GPU)
    ray: str = ""  # run the jobs as Ray tasks: 'auto', a cluster address, or 'local' (a Ray instance here)
    cpus_per_job: int = 1  # CPUs each job asks for (Ray's resource request, the pool's thread count)
    protocol: str = ""  # rerun this protocol.yaml (yolobone/engine/compare_protocol.py)

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
        if len(set(self.seeds)) != len(self.seeds):
            raise CompareError(f"--seeds {' '.join(map(str, self.seeds))}: each seed once")
        if self.jobs < 1 or self.cpus_per_job < 1:
            raise CompareError(f"--jobs and --cpus-per-job must be >= 1, got {self.jobs} and {self.cpus_per_job}")

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
        parts += ["--seeds", *map(str, self.seeds)] if self.seeds else []
        parts += ["--freeze", *map(str, self.freeze)] if list(self.freeze) != d.freeze else []
        parts += ["--pretrained", "false"] if not self.pretrained else []
        for k in ("jobs", "ray", "cpus_per_job"):
            parts += [f"--{k.replace('_', '-')}", str(getattr(self, k))] if getattr(self, k) != getattr(d, k) else []
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
    results_tex: Optional[Path] = None
    results_json: Optional[Path] = None


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
    keep = {k: getattr(o, k) for k in ("device", "workers", "cfgs", "cfg", "backbones", "latency_runs", "jobs", "ray",
                                       "cpus_per_job")
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
    from yolobone.models.compose import compose, dump_model_yaml
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
    """The model as training builds it, and the image size training will use (a stride multiple for detection).
    Profiling needs no pretrained weights: none are read (or downloaded)."""
    from yolobone.models.backbones.pretrained import no_pretrained
    from yolobone.utils.image_size import stride_multiple
    with no_pretrained():
        model = TASKS[task].new_model(cfg, nc)
    return model, stride_multiple(imgsz, TASKS[task].grid_size(model))


class _Comparison:
    """One compare() call: the folder, the rows, the progress bar."""

    def __init__(self, o: CompareOptions, save_dir: Path, train_callbacks: Optional[Mapping[str, Any]],
                 cfgs: Sequence[str], names: Optional[Sequence[str]] = None):
        self.opt, self.save_dir = o, save_dir
        self.train_callbacks = dict(train_callbacks or {})
        self.names = list(names or _unique_names(cfgs))
        # one row per (config, seed) training run, configs in order, seeds inside
        self.rows = [ConfigResult(name=n, cfg=c, seed=s) for n, c in zip(self.names, cfgs) for s in o.run_seeds]
        self.profiles_file = save_dir / "profiles.json"
        try:
            self.profiles: Dict[str, Any] = json.loads(self.profiles_file.read_text())
        except (OSError, ValueError):
            self.profiles = {}
        self.per_config = 1 if o.profile_only else o.epochs
        self.accounted = [0 if o.profile_only else min(int(_read_clock(self.run_dir(r)).get("epochs_done", 0)),
                                                       o.epochs) for r in self.rows]
        self.bar: Optional[tqdm] = None
        self.protocol: Optional[Dict[str, Any]] = None  # protocol.yaml's content (None: profile only)

    def order(self) -> List[int]:
        """Rows in the order they run: every config with the first seed, then with the next, ... (a comparison
        stopped early has whole seeds, the tests across configs already usable)."""
        seeds = self.opt.run_seeds
        return sorted(range(len(self.rows)), key=lambda i: (seeds.index(self.rows[i].seed), i))

    def run_dir(self, row: ConfigResult) -> Path:
        """runs/<config>, or runs/<config>/seed<k> when the comparison has several seeds."""
        one_seed = len(self.opt.run_seeds) == 1
        return self.save_dir / "runs" / row.name / ("" if one_seed else f"seed{row.seed}")

    # ---- progress -------------------------------------------------------------------------------------------
    def _account(self, i: int, n: int) -> None:
        self.accounted[i] = n
        if self.bar is not None and sum(self.accounted) != self.bar.n:
            self.bar.update(sum(self.accounted) - self.bar.n)

    def _epoch_done(self, i: int, epoch: int) -> None:
        if self.bar is None:  # a worker's job: the driver reads the epoch clock instead
            return
        self.bar.set_postfix_str(f"epoch {epoch + 1}/{self.opt.epochs}")
        self._account(i, epoch + 1)

    # ---- one config -------------------------------------------------------------------------------------------
    def profile(self, row: ConfigResult, nc: int) -> None:
        o = self.opt
        devices = [str(d) for d in latency_devices(o.device)]
        key = {"sha1": _file_hash(row.cfg), "nc": nc, "imgsz": o.imgsz, "task": o.task, "devices": devices,
               "runs": o.latency_runs, "backends": list(o.backends), "torch": TORCH_LATENCY}
        cached = self.profiles.get(row.name)
        if cached and cached.get("key") == key:
            row.profile = ModelProfile.from_dict(cached["profile"])
            return
        model, imgsz = _build(row.cfg, o.task, nc, o.imgsz)
        row.profile = profile_model(model, imgsz, devices=devices, runs=o.latency_runs, runner=deployed_torch)
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
        run_dir = self.run_dir(row)
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
                _clear_run_dir(run_dir)
            row.how = "trained"
            self._train_run(i, run_dir, self._fresh_options(row), base_seconds=0.0)
        self._finish(row, run_dir)

    def _finish(self, row: ConfigResult, run_dir: Path) -> None:
        """A finished run's figures into its row."""
        row.run_dir = run_dir
        row.history = read_run_history(run_dir / "results.csv", self.opt.task)
        row.train_time_s = _read_clock(run_dir).get("train_seconds")
        row.status = "done"
        row.device = device_name(select_device(self.opt.device))

    def _fresh_options(self, row: ConfigResult) -> Dict[str, Any]:
        o = self.opt
        opts: Dict[str, Any] = {"cfg": row.cfg, "epochs": o.epochs, "imgsz": o.imgsz, "batch_size": o.batch_size,
                                "device": o.device, "seed": row.seed, "workers": o.workers, "noplots": o.noplots,
                                "project": str(self.run_dir(row).parent), "name": self.run_dir(row).name,
                                "exist_ok": True, "optimizer": o.training_optimizer, "task": o.task,
                                "data": o.data or TASKS[o.task].default_data}
        if o.hyp:
            opts["hyp"] = o.hyp
        if list(o.freeze) != [0]:
            opts["freeze"] = list(o.freeze)
        if not o.pretrained:
            opts["pretrained"] = False
        return opts

    def _pending_jobs(self, nc: int) -> List[Any]:
        """Profile each config once and read finished runs back; the (config, seed) runs left, as worker jobs."""
        from yolobone.engine.compare_jobs import Job
        o, profiled, jobs = self.opt, {}, []
        for i in self.order():
            row = self.rows[i]
            try:
                if row.name not in profiled:
                    self.profile(row, nc)
                    profiled[row.name] = row.profile
                row.profile = profiled[row.name]
                run_dir = self.run_dir(row)
                if _read_clock(run_dir).get("finished") and (run_dir / "weights" / "last.pt").is_file():
                    self.train(i, row)  # reads it back
                    self._account(i, self.per_config)
                    continue
            except Exception as e:  # a config that cannot be built fails in the table; the others go on
                profiled.setdefault(row.name, None)
                row.status, row.error = "failed", _one_line(e)
                continue
            spec = {"options": {**o.to_dict(), "resume": False, "protocol": ""}, "save_dir": str(self.save_dir),
                    "name": row.name, "cfg": row.cfg, "seed": row.seed}
            jobs.append(Job(i, _job_key(row), self.run_dir(row), spec))
        return jobs

    def _run_parallel(self, nc: int) -> None:
        """Profile every config here (no training runs beside the timing), read finished runs back, and hand the
        rest to worker processes: a local pool (--jobs, --device 0,1,...) or Ray tasks (--ray)."""
        from yolobone.engine.compare_jobs import Job, device_slots, run_pool, run_ray
        o = self.opt
        jobs = self._pending_jobs(nc)
        self.write(plots=False)
        finished, shown = set(), [""]

        def on_done(job: Job, result: Dict[str, Any]) -> None:
            row = self.rows[job.index]
            finished.add(job.index)
            try:
                if result.get("status") == "done":
                    self._finish(row, job.run_dir)
                    row.how = result.get("how", "")
                else:
                    row.status, row.error = result.get("status", "failed"), result.get("error", "")
                    row.run_dir = job.run_dir if job.run_dir.exists() else None
                    LOGGER.warning(f"compare: {job.key} {row.status}: {row.error}")
            except Exception as e:  # e.g. a results.csv that cannot be read
                row.status, row.error = "failed", _one_line(e)
            worker_devices = (result.get("worker") or {}).get("devices") or {}
            if worker_devices:  # the device as the worker saw it (another machine under Ray)
                row.device = ", ".join(worker_devices.values())
            self._account(job.index, self.per_config)
            self.write(plots=False)
            fault_point(f"compare_job:{job.key}")

        def on_poll() -> None:
            for job in jobs:
                if job.index not in finished:
                    done = int(_read_clock(job.run_dir).get("epochs_done", 0))
                    self._account(job.index, min(done, o.epochs))
            text = f"compare: {len(finished)}/{len(jobs)} jobs done"
            if shown[0] != text:  # a redraw per change, not per poll (logs stay short)
                shown[0] = text
                self.bar.set_description(text)

        LOGGER.info(f"compare: {len(jobs)} jobs to run, {len(self.rows) - len(jobs)} read back or failed; "
                    f"logs in <run>/job.log")
        if o.ray:
            run_ray(jobs, o.ray, o.device, o.cpus_per_job, on_done, on_poll, local_cpus=o.jobs * o.cpus_per_job)
        else:
            run_pool(jobs, device_slots(o.device, o.jobs), o.cpus_per_job, on_done, on_poll)

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
            if o.parallel and not o.profile_only:
                self._run_parallel(nc)
                return self.write(plots=True)
            for k, i in enumerate(self.order()):
                row = self.rows[i]
                self.bar.set_description(f"compare [{k + 1}/{n}] {_job_key(row)}")
                LOGGER.info(f"\ncompare: run {k + 1}/{n} {row.cfg} seed {row.seed} -> {self.run_dir(row)}")
                try:
                    self.profile(row, nc)
                    if o.profile_only:
                        row.status = "profiled"
                    else:
                        self.train(i, row)
                except KeyboardInterrupt:
                    row.status, row.error = "interrupted", "stopped by the user; re-run the command to resume"
                    row.run_dir = self.run_dir(row) if self.run_dir(row).exists() else None
                    self.write(plots=True)
                    raise
                except Exception as e:  # one failing config is reported in the table; the others go on
                    row.status, row.error = "failed", _one_line(e)
                    row.run_dir = self.run_dir(row) if self.run_dir(row).exists() else None
                    LOGGER.warning(f"compare: {row.name} failed: {row.error}")
                self._account(i, self.per_config)
                self.write(plots=False)
                fault_point(f"compare_job:{_job_key(row)}")
                gc.collect()  # the next config starts without the previous model's tensors
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        finally:
            self.bar.close()
        return self.write(plots=True)

    def write(self, plots: bool) -> CompareResult:
        from yolobone.engine.compare_outputs import write_outputs
        o = self.opt
        imgsz = next((r.profile.imgsz for r in self.rows if r.profile), o.imgsz)  # a stride multiple when rounded
        out = write_outputs(self.save_dir, self.rows, o.task, imgsz, _settings(o), o.command(), self.protocol,
                            plots=plots and not o.profile_only, trained=not o.profile_only,
                            pareto_backend=None if o.pareto_backend == "torch" else o.pareto_backend)
        return CompareResult(save_dir=self.save_dir, rows=self.rows, results_md=out.md, results_csv=out.csv,
                             pareto=out.pareto, curves=out.curves, results_tex=out.tex, results_json=out.json)


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
        from yolobone.engine.core.training_checkpoint import strip_checkpoint
        for f in (last, last.with_name("best.pt")):
            if f.is_file():
                strip_checkpoint(f)
        return "finished"
    return "partial"


def _protocol(o: CompareOptions, cfgs: Sequence[str], names: Sequence[str]) -> Dict[str, Any]:
    """protocol.yaml's content for these options (yolobone/engine/compare_protocol.py)."""
    root = Path(__file__).resolve().parents[1]
    task = TASKS[o.task]
    if task.default_hyp:  # a task with a data YAML and a hyperparameter YAML (detection)
        data, hyp = o.data or task.default_data, o.hyp or task.default_hyp
        hyp = hyp if Path(hyp).is_file() or not (root / hyp).is_file() else str(root / hyp)
        data_file = next((str(p) for p in (Path(data), root / data) if p.suffix in (".yaml", ".yml") and p.is_file()),
                         None)
    else:
        data, hyp, data_file = o.data or task.default_data or task.builtin_data_name, None, None
    nc = _dataset_nc(o)
    models = {n: describe_model(c, o.task, nc, o.freeze, o.pretrained) for n, c in zip(names, cfgs)}
    devices = sorted({str(select_device(d)) for d in (str(o.device).split(",") if o.device else [""])})
    values = {**o.to_dict(), "seeds": o.run_seeds, "optimizer": o.training_optimizer}
    return build_protocol(values, data, data_file, hyp, models, devices)


def _settings(o: CompareOptions) -> Dict[str, Any]:
    task = TASKS[o.task]
    s: Dict[str, Any] = {"task": o.task, "data": o.data or task.default_data or task.builtin_data_name}
    if task.default_hyp:
        s["hyp"] = o.hyp or task.default_hyp
    if not o.profile_only:
        s.update(optimizer=o.training_optimizer, epochs=o.epochs, batch_size=o.batch_size)
        if o.seeds:
            s.update(seeds=o.run_seeds)
        else:
            s.update(seed=o.seed)
        s.update(training_device=o.device if o.parallel else str(select_device(o.device)))
    s.update(imgsz=o.imgsz)
    return s


def _job_key(row: ConfigResult) -> str:
    return f"{row.name}/seed{row.seed}"


def _clear_run_dir(run_dir: Path) -> None:
    """Empty a run folder for a fresh start, keeping the job's spec and log (a worker writes that log)."""
    from yolobone.engine.compare_jobs import JOB_FILES
    for p in run_dir.iterdir():
        if p.name in JOB_FILES:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def train_job(options: Mapping[str, Any], save_dir: str, name: str, cfg: str, seed: int, device: str
              ) -> Dict[str, Any]:
    """One (config, seed) job as a worker process runs it: read back, resume or train into the comparison folder."""
    o = CompareOptions.from_any(options, device=device, jobs=1, ray="")
    comparison = _Comparison(o, Path(save_dir), None, [cfg], names=[name])
    i, row = next((i, r) for i, r in enumerate(comparison.rows) if r.seed == int(seed))
    comparison.train(i, row)
    return {"how": row.how, "train_time_s": row.train_time_s}


def compare(opt: Union[CompareOptions, argparse.Namespace, Mapping[str, Any], None] = None,
            train_callbacks: Optional[Mapping[str, Any]] = None, **overrides: Any) -> CompareResult:
    """Profile and train every config under the same settings; write results.md/.csv, pareto.png and curves.png.

    train_callbacks are passed to each run's train() (events of engine.core.trainer.EVENTS), whatever the task. Input errors raise ValueError subclasses with one line.
    """
    o = CompareOptions.from_any(opt, **overrides)
    given = read_protocol(Path(o.protocol)) if o.protocol else None
    if given is not None:  # the protocol's settings; where and how to run come from this command
        o = CompareOptions.from_any({**o.to_dict(), **protocol_options(given, Path(o.protocol).parent)})
    if o.resume:
        o = _resume_options(o)
    o.check()
    save_dir = increment_path(Path(o.project) / o.name, exist_ok=o.exist_ok)
    _check_settings(save_dir, o)
    cfgs = _model_cfgs(o, save_dir)
    names = _unique_names(cfgs)
    protocol = None if o.profile_only else _protocol(o, cfgs, names)
    if given is not None:
        check_same_protocol(given, protocol, o.protocol, "the files it names changed since it was written")
    if protocol is not None and (save_dir / PROTOCOL_FILE).is_file():
        check_same_protocol(read_protocol(save_dir / PROTOCOL_FILE), protocol, str(save_dir / PROTOCOL_FILE),
                            "use another --name, or --protocol with that file to rerun it")
    save_dir.mkdir(parents=True, exist_ok=True)
    (save_dir / "compare.yaml").write_text(yaml.safe_dump({"command": o.command(), "options": o.to_dict()},
                                                          sort_keys=False))
    if protocol is not None:
        write_protocol(save_dir / PROTOCOL_FILE, protocol)
    LOGGER.info(f"compare: {len(cfgs)} configs x {len(o.run_seeds)} seeds, results in {save_dir}")
    comparison = _Comparison(o, save_dir, train_callbacks, cfgs, names=names)
    comparison.protocol = protocol
    result = comparison.run()
    LOGGER.info(f"compare: results in {result.results_md}")
    return result
