"""compare.py --tune-each K: every backbone config gets the same Ray Tune budget (K trials) over its recipe, on a
tuning split carved from the train images, before the comparison's runs train each config with its own best recipe.

Search space (YOLOv5 v7.0 `meta` bounds for the hyp keys): lr0 log-uniform [1e-5, 0.1], weight_decay uniform
[0, 0.001], warmup_epochs uniform [0, 5], optimizer SGD / Adam / AdamW, backbone_lr 0.1 / 1.0 (train.py
--backbone-lr). ASHA stops weak trials early (one rung per epoch); the metric is the task's fitness on the tuning
split's val part. Per config, tune/<config>/trials.csv records every trial (seed, recipe, fitness, epochs) and
tune/<config>/recipe.yaml the chosen recipe (read back on a re-run instead of tuning again).
"""
from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

import yaml

from yolobone.data.config import check_dataset, list_image_files
from yolobone.engine.compare.jobs import ray_connect
from yolobone.engine.compare.options import CompareError, CompareOptions
from yolobone.engine.compare.recipe import RECIPE_KEYS, budget_text, recipe_train_options
from yolobone.engine.train import TASKS, train
from yolobone.utils.logging import LOGGER
from yolobone.utils.yaml_io import load_yaml

TUNE_VAL_FRACTION = 0.2  # of the train images: the tuning split's val part (the comparison's val set stays unseen)
RECIPE_FILE, TRIALS_FILE = "recipe.yaml", "trials.csv"


def search_space() -> Dict[str, Any]:
    """Ray Tune's search space for one config's recipe."""
    from ray import tune
    return {"lr0": tune.loguniform(1e-5, 1e-1), "weight_decay": tune.uniform(0.0, 1e-3),
            "warmup_epochs": tune.uniform(0.0, 5.0), "optimizer": tune.choice(["SGD", "Adam", "AdamW"]),
            "backbone_lr": tune.choice([0.1, 1.0])}


def carve_tuning_split(data: str, out: Path, seed: int) -> Path:
    """A data YAML whose train and val are a seeded 80/20 split of `data`'s train images."""
    d = check_dataset(data)
    images = list_image_files(d["train"])
    if len(images) < 2:
        raise CompareError(f"--tune-each: {data} has {len(images)} train images; the tuning split needs 2 or more")
    random.Random(seed).shuffle(images)
    n_val = max(1, int(round(len(images) * TUNE_VAL_FRACTION)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune_train.txt").write_text("".join(f + "\n" for f in sorted(images[n_val:])))
    (out / "tune_val.txt").write_text("".join(f + "\n" for f in sorted(images[:n_val])))
    names = d["names"]
    spec = {"train": str((out / "tune_train.txt").resolve()), "val": str((out / "tune_val.txt").resolve()),
            "nc": len(names), "names": list(names.values()) if isinstance(names, dict) else list(names)}
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def trial_options(o: CompareOptions, cfg: str, data: Path, recipe: Mapping[str, Any], trial_dir: Path
                  ) -> Dict[str, Any]:
    """train() options of one trial (absolute paths: a Ray worker may run in another folder)."""
    return {"cfg": cfg, "data": str(data), "epochs": o.epochs, "imgsz": o.imgsz, "batch_size": o.batch_size,
            "device": "cpu" if o.device == "cpu" else "", "seed": o.run_seeds[0], "workers": o.workers,
            "noplots": True, "project": str(trial_dir.parent), "name": trial_dir.name, "exist_ok": True,
            "task": o.task, "freeze": list(o.freeze), "pretrained": o.pretrained, "loggers": ["csv"],
            **recipe_train_options(o, recipe, cfg)}


def run_trial(recipe: Dict[str, Any], options: Dict[str, Any]) -> None:
    """Ray Tune's function trainable: train one recipe, reporting fitness after every epoch (ASHA's rungs)."""
    import torch
    from ray import tune
    torch.set_num_threads(int(options.pop("threads")))
    o = CompareOptions.from_any(options.pop("compare"))
    trial_dir = Path(options.pop("out")) / tune.get_context().get_trial_id()
    task = TASKS[o.task]

    def report(trainer: Any) -> None:
        tune.report({"fitness": float(task.fitness(trainer.results, trainer.rules)), "epoch": trainer.epoch + 1})

    train(trial_options(o, options["cfg"], Path(options["data"]), recipe, trial_dir),
          callbacks={"on_fit_epoch_end": report})


def _write_trials(out: Path, seed: int, grid: Any) -> None:
    rows = []
    for r in grid:
        cfg = r.config or {}
        metrics = r.metrics or {}
        rows.append({"trial": metrics.get("trial_id", ""), "seed": seed, **{k: cfg.get(k) for k in RECIPE_KEYS},
                     "fitness": metrics.get("fitness"), "epochs": metrics.get("epoch"),
                     "error": str(r.error).splitlines()[0] if r.error else ""})
    with open(out / TRIALS_FILE, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["trial"])
        w.writeheader()
        w.writerows(rows)


def tune_config(o: CompareOptions, name: str, cfg: str, data: Path, out: Path) -> Dict[str, Any]:
    """K Ray Tune trials of one config under ASHA; its best recipe (with the fitness it reached)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator
    seed = o.run_seeds[0]
    options = {"cfg": str(Path(cfg).resolve()), "data": str(data.resolve()), "threads": o.cpus_per_job,
               "compare": o.to_dict(), "out": str(out.resolve() / "trials")}
    gpus = 0 if o.device == "cpu" else int(bool(_cluster_gpus()))
    trainable = tune.with_resources(tune.with_parameters(run_trial, options=options),
                                    {"cpu": o.cpus_per_job, "gpu": gpus})
    tuner = tune.Tuner(
        trainable, param_space=search_space(),
        tune_config=tune.TuneConfig(metric="fitness", mode="max", num_samples=o.tune_each or -1,
                                    time_budget_s=o.tune_time or None,
                                    scheduler=ASHAScheduler(max_t=o.epochs, grace_period=1, reduction_factor=2,
                                                            time_attr="epoch"),
                                    search_alg=BasicVariantGenerator(random_state=seed)),
        run_config=tune.RunConfig(name=name, storage_path=str(out.resolve() / "ray"), verbose=0))
    grid = tuner.fit()
    _write_trials(out, seed, grid)
    ok = [r for r in grid if r.error is None and r.metrics and "fitness" in r.metrics]
    if not ok:
        raise CompareError(f"tuning: every trial of {name} failed; see {out / TRIALS_FILE}")
    best = max(ok, key=lambda r: r.metrics["fitness"])
    recipe = {**{k: best.config[k] for k in RECIPE_KEYS}, "fitness": float(best.metrics["fitness"]),
              "trials": len(grid), "seed": seed}
    recipe = {k: (float(v) if isinstance(v, float) else v) for k, v in recipe.items()}
    (out / RECIPE_FILE).write_text(yaml.safe_dump(recipe, sort_keys=False))
    return recipe


def _cluster_gpus() -> float:
    import ray
    return float(ray.cluster_resources().get("GPU", 0))


def tune_configs(o: CompareOptions, cfgs: Sequence[str], names: Sequence[str], save_dir: Path
                 ) -> Dict[str, Dict[str, Any]]:
    """Each config's recipe: given (--protocol, a resumed comparison), read back from tune/<name>/recipe.yaml, or
    tuned now with the same budget as the others."""
    recipes: Dict[str, Dict[str, Any]] = dict(o.recipes or {})
    todo = [(n, c) for n, c in zip(names, cfgs) if n not in recipes
            and not (save_dir / "tune" / n / RECIPE_FILE).is_file()]
    for n in names:
        if n not in recipes and (save_dir / "tune" / n / RECIPE_FILE).is_file():
            recipes[n] = load_yaml(save_dir / "tune" / n / RECIPE_FILE, CompareError)
    if todo:
        data = carve_tuning_split(o.data or TASKS[o.task].default_data, save_dir / "tune", o.run_seeds[0])
        ray_connect(o.ray or "local", o.jobs * o.cpus_per_job if o.ray in ("", "local") else None)
        for n, c in todo:
            LOGGER.info(f"compare: tuning {n} ({budget_text(o.tune_each, o.tune_time)}, Ray Tune + ASHA)")
            recipes[n] = tune_config(o, n, c, data, save_dir / "tune" / n)
            LOGGER.info(f"compare: {n} recipe " + ", ".join(f"{k}={recipes[n][k]}" for k in RECIPE_KEYS))
    return {n: recipes[n] for n in names}
