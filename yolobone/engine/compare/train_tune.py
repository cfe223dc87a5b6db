"""train.py --tune K / --tune-time SECONDS: one model's recipe searched with Ray Tune + ASHA (the search space and
tuning split of compare.py --tune-each), then written as a hyp YAML that train.py takes.

    python train.py --cfg configs/yolov5n.yaml --data data.yaml --epochs 10 --tune 16          # 16 trials
    python train.py --cfg configs/yolo11n.yaml --tune-time 3600 --ray auto                      # one hour, a cluster

Writes <project>/<name>/ (default runs/tune/exp): tune/<model>/trials.csv (every trial's seed, recipe, fitness),
tune/<model>/recipe.yaml, and hyp_tuned.yaml (the starting hyp with the best lr0, weight decay and warmup), and
prints the train.py command that trains with the best recipe (its optimizer and backbone LR multiplier included).
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Dict

import yaml

from yolobone.engine.compare.folder import model_cfgs, unique_names
from yolobone.engine.compare.options import CompareOptions
from yolobone.engine.compare.recipe import RECIPE_KEYS, recipe_train_options
from yolobone.engine.compare.tune import tune_configs
from yolobone.utils.logging import LOGGER
from yolobone.utils.paths import increment_path

TUNED_HYP = "hyp_tuned.yaml"
# train() options that carry over to every trial as they are
SHARED = ("data", "epochs", "imgsz", "batch_size", "device", "seed", "workers", "hyp", "freeze", "pretrained")


def tune_options(options: Dict[str, Any], trials: int, seconds: float, ray: str, cpus: int) -> CompareOptions:
    """The one-model comparison whose --tune-each search train.py --tune runs."""
    values = {k: options[k] for k in SHARED if options.get(k) is not None}
    model = {"cfg": options["cfg"], "backbones": [options["backbone"]]} if options.get("backbone") else \
        {"cfgs": [options["cfg"]]}
    o = CompareOptions.from_any({**values, **model, "tune_each": trials, "tune_time": seconds,
                                 "ray": ray or "local", "cpus_per_job": cpus, "task": "detect",
                                 "project": options.get("project") or "runs/tune", "name": options.get("name") or "exp",
                                 "exist_ok": bool(options.get("exist_ok"))})
    o.check()
    return o


def tune_training(options: Dict[str, Any], trials: int = 0, seconds: float = 0.0, ray: str = "",
                  cpus: int = 1) -> Path:
    """Search the recipe of options' model (train() options with cfg); returns the tuned hyp YAML."""
    o = tune_options(options, trials, seconds, ray, cpus)
    save_dir = increment_path(Path(o.project) / o.name, exist_ok=o.exist_ok)
    save_dir.mkdir(parents=True, exist_ok=True)
    cfgs = model_cfgs(o, save_dir)
    name = unique_names(cfgs)[0]
    recipe = tune_configs(o, cfgs, [name], save_dir)[name]
    train_opts = recipe_train_options(o, recipe, cfgs[0])
    out = save_dir / TUNED_HYP
    out.write_text(f"# train.py --tune: best of {recipe.get('trials')} trials (fitness {recipe['fitness']:.4g} on the "
                   f"tuning split); train with --optimizer {recipe['optimizer']} --backbone-lr "
                   f"{recipe['backbone_lr']}\n" + yaml.safe_dump(train_opts["hyp"], sort_keys=False))
    command = ["python", "train.py", "--cfg", cfgs[0], "--hyp", str(out), "--optimizer", str(recipe["optimizer"]),
               "--backbone-lr", str(recipe["backbone_lr"])]
    command += [x for k in ("data", "epochs", "imgsz", "batch_size") if options.get(k) is not None
                for x in (f"--{k.replace('_', '-')}", str(options[k]))]
    LOGGER.info("tune: best recipe " + ", ".join(f"{k}={recipe[k]}" for k in RECIPE_KEYS)
                + f"\ntune: {out}\ntune: train with: {' '.join(shlex.quote(c) for c in command)}")
    return out
