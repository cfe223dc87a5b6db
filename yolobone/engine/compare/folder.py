"""A comparison folder's state: the options of a --resume, the settings a reused folder must share, the model YAMLs
(--cfg composed with each of --backbones), the run names, and the protocol and settings that the reports record."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Sequence

from yolobone.engine.compare.metrics import task_metrics
from yolobone.engine.compare.options import CompareError, CompareOptions
from yolobone.engine.compare.protocol import build_protocol, describe_model
from yolobone.engine.train import TASKS
from yolobone.models.compose import compose, dump_model_yaml
from yolobone.utils.torch_utils import select_device
from yolobone.utils.yaml_io import load_yaml

# Options that must match when an existing comparison folder is reused for training.
TRAINING_IDENTITY = ("task", "data", "epochs", "imgsz", "batch_size", "seed", "hyp", "optimizer", "pretrained",
                     "tune_each", "tune_time")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # yolobone/: a relative hyp file may name one under it


def resume_options(o: CompareOptions) -> CompareOptions:
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


def check_settings(save_dir: Path, o: CompareOptions) -> None:
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


def unique_names(cfgs: Sequence[str]) -> List[str]:
    names: List[str] = []
    for c in cfgs:
        stem, n = Path(c).stem, 2
        name = stem
        while name in names:
            name, n = f"{stem}-{n}", n + 1
        names.append(name)
    return names


def model_cfgs(o: CompareOptions, save_dir: Path) -> List[str]:
    """--cfgs, then --cfg composed with each of --backbones (written to save_dir/models/, so every run, its hash
    and its checkpoint see one ordinary model YAML)."""
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


def dataset_nc(o: CompareOptions) -> int:
    """Class count of the comparison's data (generating a built-in set on first use)."""
    return TASKS[o.task].dataset_nc(o.data or TASKS[o.task].default_data, o.seed)


def data_name(o: CompareOptions) -> str:
    """The comparison's data as the reports name it (the task's built-in set when none was given)."""
    task = TASKS[o.task]
    return o.data or task.default_data or task_metrics(o.task).builtin_data_name


def comparison_protocol(o: CompareOptions, cfgs: Sequence[str], names: Sequence[str]) -> Dict[str, Any]:
    """protocol.yaml's content for these options (yolobone/engine/compare/protocol.py)."""
    task = TASKS[o.task]
    if task.default_hyp:  # a task with a data YAML and a hyperparameter YAML (detection)
        data = o.data or task.default_data
        hyp = o.hyp or (None if task.recipe_by_head else task.default_hyp)  # None: models.*.default_recipe
        if hyp:
            hyp = hyp if Path(hyp).is_file() or not (PACKAGE_ROOT / hyp).is_file() else str(PACKAGE_ROOT / hyp)
        data_file = next((str(p) for p in (Path(data), PACKAGE_ROOT / data)
                          if p.suffix in (".yaml", ".yml") and p.is_file()), None)
    else:
        data, hyp, data_file = data_name(o), None, None
    nc = dataset_nc(o)
    models = {n: describe_model(c, o.task, nc, o.freeze, o.pretrained) for n, c in zip(names, cfgs)}
    devices = sorted({str(select_device(d)) for d in (str(o.device).split(",") if o.device else [""])})
    values = {**o.to_dict(), "seeds": o.run_seeds,
              "optimizer": o.optimizer if task.recipe_by_head else o.training_optimizer}
    return build_protocol(values, data, data_file, hyp, models, devices)


def report_settings(o: CompareOptions) -> Dict[str, Any]:
    """The settings every config shares, as results.md and the tables state them."""
    task = TASKS[o.task]
    s: Dict[str, Any] = {"task": o.task, "data": data_name(o)}
    if task.default_hyp:
        s["hyp"] = o.hyp or ("per head (default_recipe)" if task.recipe_by_head else task.default_hyp)
    if not o.profile_only:
        s.update(optimizer=o.training_optimizer, epochs=o.epochs, batch_size=o.batch_size)
        if o.seeds:
            s.update(seeds=o.run_seeds)
        else:
            s.update(seed=o.seed)
        s.update(training_device=o.device if o.parallel else str(select_device(o.device)))
    s.update(imgsz=o.imgsz)
    return s
