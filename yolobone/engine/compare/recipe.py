"""A comparison config's own training recipe (compare.py --tune-each): the keys it sets, how it becomes train()
options, and its results.md section."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from yolobone.engine.compare.options import CompareOptions
from yolobone.engine.train import TASKS
from yolobone.utils.hyp import load_hyp

RECIPE_KEYS = ("lr0", "weight_decay", "warmup_epochs", "optimizer", "backbone_lr")
HYP_KEYS = ("lr0", "weight_decay", "warmup_epochs")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # yolobone/: where configs/hyp/... resolves from anywhere


def budget_text(trials: int, seconds: float) -> str:
    """'--tune-each 8', '--tune-time 600', or both."""
    return " ".join(t for t in (f"--tune-each {trials}" if trials else "",
                                f"--tune-time {seconds:g}" if seconds else "") if t)


def recipes_markdown(recipes: Mapping[str, Mapping[str, Any]], trials: int, seconds: float = 0.0) -> str:
    """results.md's section: the recipe each config trained with."""
    lines = [f"\n## Per-config recipes ({budget_text(trials, seconds)}: Ray Tune + ASHA on a tuning split of train)\n",
             "| config | " + " | ".join(RECIPE_KEYS) + " | tuning fitness |",
             "|---" * (len(RECIPE_KEYS) + 2) + "|"]
    for n, r in recipes.items():
        vals = [f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in RECIPE_KEYS]
        lines.append(f"| {n} | " + " | ".join(vals) + f" | {float(r.get('fitness', float('nan'))):.4g} |")
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=64)
def head_default_hyp(task: str, cfg: str) -> str:
    """The hyp file a config trains with when --hyp is not given (TrainTask.default_recipe: by its head)."""
    plugin = TASKS[task]
    if not plugin.recipe_by_head:
        return plugin.default_hyp
    from yolobone.models.backbones.pretrained import from_scratch
    with from_scratch():
        return plugin.default_recipe(plugin.new_model(cfg, 1))["hyp"] or plugin.default_hyp


def recipe_train_options(o: CompareOptions, recipe: Optional[Mapping[str, Any]], cfg: str = "") -> Dict[str, Any]:
    """train() options that apply a config's tuned recipe (nothing without one) over --hyp, else over the hyp the
    config's head trains with."""
    if not recipe:
        return {}
    hyp_file = Path(o.hyp or (head_default_hyp(o.task, cfg) if cfg else TASKS[o.task].default_hyp))
    if not hyp_file.is_file() and (PACKAGE_ROOT / hyp_file).is_file():  # a Ray Tune trial runs in its own folder
        hyp_file = PACKAGE_ROOT / hyp_file
    hyp = {**load_hyp(str(hyp_file)).to_dict(), **{k: float(recipe[k]) for k in HYP_KEYS}}
    return {"hyp": hyp, "optimizer": recipe["optimizer"], "backbone_lr": float(recipe["backbone_lr"])}
