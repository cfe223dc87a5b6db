"""train.py --evolve N: YOLOv5's genetic hyperparameter evolution, resumable.

Each generation picks a parent from the best 5 rows of evolve.csv (by fitness 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95),
mutates it and trains one run with the mutated hyp under <save_dir>/gen<k>. The search space and mutation scheme are
YOLOv5 v7.0's (train.py `meta`: gain, lower, upper per key; mutation probability 0.8, sigma 0.2, factors clipped to
[0.3, 3.0], values rounded to 5 digits). Generation k mutates with a generator seeded by (--seed, k), so a search
killed at any point and started again with the same command (--exist-ok) continues where evolve.csv stops and
draws the same hyps an uninterrupted search would have.

    python train.py --cfg configs/yolov5n.yaml --data data.yaml --epochs 10 --evolve 300 --name evo --exist-ok
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import yaml

from yolobone.engine.detect.task import RESULT_KEYS
from yolobone.engine.train import train
from yolobone.utils.errors import YoloboneError
from yolobone.utils.faults import fault_point
from yolobone.utils.hyp import load_hyp
from yolobone.utils.logging import LOGGER
from yolobone.utils.paths import increment_path

# YOLOv5 v7.0 train.py `meta`: hyp key -> (mutation gain 0-1, lower limit, upper limit). Keys our Hyp lacks are left
# out ('anchors' only when the hyp sets it: our default is the model YAML's anchors, with nothing to mutate).
EVOLVE_META: Dict[str, Tuple[float, float, float]] = {
    "lr0": (1, 1e-5, 1e-1), "lrf": (1, 0.01, 1.0), "momentum": (0.3, 0.6, 0.98), "weight_decay": (1, 0.0, 0.001),
    "warmup_epochs": (1, 0.0, 5.0), "warmup_momentum": (1, 0.0, 0.95), "warmup_bias_lr": (1, 0.0, 0.2),
    "box": (1, 0.02, 0.2), "cls": (1, 0.2, 4.0), "cls_pw": (1, 0.5, 2.0), "obj": (1, 0.2, 4.0),
    "obj_pw": (1, 0.5, 2.0), "iou_t": (0, 0.1, 0.7), "anchor_t": (1, 2.0, 8.0), "anchors": (2, 2.0, 10.0),
    "fl_gamma": (0, 0.0, 2.0), "hsv_h": (1, 0.0, 0.1), "hsv_s": (1, 0.0, 0.9), "hsv_v": (1, 0.0, 0.9),
    "degrees": (1, 0.0, 45.0), "translate": (1, 0.0, 0.9), "scale": (1, 0.0, 0.9), "shear": (1, 0.0, 10.0),
    "perspective": (0, 0.0, 0.001), "flipud": (1, 0.0, 1.0), "fliplr": (0, 0.0, 1.0), "mosaic": (1, 0.0, 1.0),
    "mixup": (1, 0.0, 1.0), "copy_paste": (1, 0.0, 1.0)}
MUTATION_PROB, SIGMA, FACTOR_CLIP, TOP_N = 0.8, 0.2, (0.3, 3.0), 5
FITNESS_WEIGHTS = (0.0, 0.0, 0.1, 0.9)  # P, R, mAP@0.5, mAP@0.5:0.95 (the detect task's fitness)
N_RESULTS = 7  # evolve.csv: 7 validation columns (P, R, mAP50, mAP50-95, 3 val losses), then the hyp
PARENTS = ("single", "weighted")
EVOLVE_CSV, EVOLVE_YAML = "evolve.csv", "hyp_evolve.yaml"


class EvolveError(YoloboneError, ValueError):
    """An --evolve setting or an evolve.csv that cannot be used (one line)."""


def fitness_of(rows: np.ndarray) -> np.ndarray:
    """Fitness of evolve.csv rows (their first 4 columns)."""
    return (np.asarray(rows, dtype=float)[:, :4] * np.asarray(FITNESS_WEIGHTS)).sum(1)


def bounded(keys: Sequence[str], values: Sequence[float]) -> Dict[str, float]:
    """Values clipped to EVOLVE_META's limits and rounded to 5 digits, as YOLOv5 stores them."""
    return {k: round(min(max(float(v), EVOLVE_META[k][1]), EVOLVE_META[k][2]), 5) for k, v in zip(keys, values)}


def mutate(keys: Sequence[str], rows: np.ndarray, rng: np.random.Generator, parent: str = "single"
           ) -> Dict[str, float]:
    """A child hyp from evolve.csv rows (results then values of `keys`): pick the parent among the top 5 by
    fitness ('single': one row drawn with fitness weights; 'weighted': their fitness-weighted mean), then multiply
    each gene by a factor 1 + gain * [u < 0.8] * N(0,1) * U(0,1) * 0.2, clipped to [0.3, 3.0]; at least one changes."""
    rows = np.asarray(rows, dtype=float)
    fit = fitness_of(rows)
    top = rows[np.argsort(-fit, kind="stable")][:TOP_N]
    w = fitness_of(top) - fitness_of(top).min() + 1e-6
    if parent == "single" or len(top) == 1:
        x = top[rng.choice(len(top), p=w / w.sum())]
    else:
        x = (top * w[:, None]).sum(0) / w.sum()
    gains = np.array([EVOLVE_META[k][0] for k in keys], dtype=float)
    v = np.ones(len(keys))
    while np.all(v == 1):  # a child identical to its parent would waste a generation
        v = (gains * (rng.random(len(keys)) < MUTATION_PROB) * rng.standard_normal(len(keys)) * rng.random() * SIGMA
             + 1).clip(*FACTOR_CLIP)
    return bounded(keys, x[N_RESULTS:N_RESULTS + len(keys)] * v)


def evolve_keys(hyp: Mapping[str, Any]) -> List[str]:
    """The hyp keys that evolve: EVOLVE_META's keys with a number in this hyp, in EVOLVE_META's order."""
    return [k for k in EVOLVE_META if isinstance(hyp.get(k), (int, float)) and not isinstance(hyp.get(k), bool)]


def read_evolve_csv(path: Path, keys: Sequence[str]) -> np.ndarray:
    """evolve.csv's complete rows (a line cut short by a kill is dropped); its columns must be these keys'."""
    if not path.is_file():
        return np.zeros((0, N_RESULTS + len(keys)))
    lines = path.read_text().splitlines()
    header = [c.strip() for c in lines[0].split(",")] if lines else []
    if header[N_RESULTS:] != list(keys):
        raise EvolveError(f"{path}: its hyp columns ({', '.join(header[N_RESULTS:])}) differ from this search's "
                          f"({', '.join(keys)}); use another --name")
    rows = []
    for line in lines[1:]:
        try:
            vals = [float(c) for c in line.split(",")]
        except ValueError:
            continue
        if len(vals) == len(header):
            rows.append(vals)
    return np.array(rows, dtype=float).reshape(-1, len(header))


def _fmt(values: Sequence[Any], spec: str) -> str:
    return ",".join(spec % v for v in values)


def write_evolve_files(save_dir: Path, keys: Sequence[str], rows: np.ndarray) -> None:
    """evolve.csv (rewritten whole, then swapped in: a kill never leaves half a row) and hyp_evolve.yaml (the
    fittest row's hyp, with its results as comments)."""
    result_keys = [k.strip() for k in RESULT_KEYS[len(RESULT_KEYS) - N_RESULTS - 3:len(RESULT_KEYS) - 3]]
    header = _fmt([*result_keys, *keys], "%20s")
    tmp = save_dir / (EVOLVE_CSV + ".tmp")
    tmp.write_text(header + "\n" + "".join(_fmt(r, "%20.5g") + "\n" for r in rows))
    tmp.replace(save_dir / EVOLVE_CSV)
    best = int(np.argmax(fitness_of(rows)))
    text = (f"# yolobone hyperparameter evolution (train.py --evolve)\n# Best generation: {best}\n"
            f"# Last generation: {len(rows) - 1}\n# {', '.join(result_keys)}\n# {_fmt(rows[best, :N_RESULTS], '%.5g')}\n"
            + yaml.safe_dump(dict(zip(keys, (float(v) for v in rows[best, N_RESULTS:]))), sort_keys=False))
    (save_dir / EVOLVE_YAML).write_text(text)


def plot_evolve(save_dir: Path, keys: Sequence[str], rows: np.ndarray) -> Path:
    """evolve.png: fitness against each evolved value, the best generation marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fit, best = fitness_of(rows), int(np.argmax(fitness_of(rows)))
    ncols = 5
    fig = Figure(figsize=(12, 2.2 * ((len(keys) + ncols - 1) // ncols)), tight_layout=True)
    FigureCanvasAgg(fig)
    for i, k in enumerate(keys):
        ax = fig.add_subplot((len(keys) + ncols - 1) // ncols, ncols, i + 1)
        v = rows[:, N_RESULTS + i]
        ax.scatter(v, fit, c=np.arange(len(v)), cmap="viridis", s=12)
        ax.plot(v[best], fit[best], "k+", markersize=12)
        ax.set_title(f"{k} = {v[best]:.3g}", fontsize=8)
        ax.tick_params(labelsize=6)
    path = save_dir / "evolve.png"
    fig.savefig(path, dpi=120)
    return path


@dataclass
class EvolveResult:
    save_dir: Path
    rows: np.ndarray  # evolve.csv: N_RESULTS results then the hyp values, one row per generation
    keys: List[str]
    best_hyp: Dict[str, float]


def _generation(opt: Mapping[str, Any], save_dir: Path, k: int, hyp: Dict[str, Any]) -> Tuple[float, ...]:
    """Train generation k (a folder a killed attempt left is started over); its validation results."""
    gen_dir = save_dir / f"gen{k}"
    if gen_dir.exists():
        shutil.rmtree(gen_dir)
    run = {**opt, "hyp": hyp, "project": str(save_dir), "name": gen_dir.name, "exist_ok": True, "noval": True,
           "nosave": True, "noplots": True, "resume": False}
    results = tuple(float(r) for r in train(run).results)
    if len(results) != N_RESULTS:
        raise EvolveError(f"--evolve: generation {k} gave {len(results)} validation figures, expected {N_RESULTS}")
    return results


def evolve(opt: Mapping[str, Any], generations: int, parent: str = "single") -> EvolveResult:
    """Evolve the hyp of a detection run (train() options) until evolve.csv holds `generations` rows."""
    if generations < 1 or parent not in PARENTS:
        raise EvolveError(f"--evolve {generations} --evolve-parent {parent}: expected >= 1 and one of "
                          f"{', '.join(PARENTS)}")
    if (opt.get("task") or "detect") != "detect" or opt.get("resume"):
        raise EvolveError("--evolve: detection only, and not with --resume (re-run the command with --exist-ok)")
    from yolobone.engine.detect.options import DEFAULT_HYP
    base = load_hyp(opt.get("hyp") or DEFAULT_HYP).to_dict()
    keys = evolve_keys(base)
    save_dir = increment_path(Path(opt.get("project") or "runs/evolve") / (opt.get("name") or "exp"),
                              exist_ok=bool(opt.get("exist_ok")), mkdir=True)
    rows = read_evolve_csv(save_dir / EVOLVE_CSV, keys)
    if len(rows):
        LOGGER.info(f"evolve: {len(rows)} generations in {save_dir / EVOLVE_CSV}, continuing to {generations}")
    seed = int(opt.get("seed") or 0)
    for k in range(len(rows), generations):
        genes = mutate(keys, rows, np.random.default_rng([seed, k]), parent) if len(rows) else \
            bounded(keys, [base[key] for key in keys])
        results = _generation(opt, save_dir, k, {**base, **genes})
        rows = np.vstack([rows, [*results, *(genes[key] for key in keys)]])
        write_evolve_files(save_dir, keys, rows)
        rows = read_evolve_csv(save_dir / EVOLVE_CSV, keys)  # as a resumed search reads them (5 digits)
        fault_point(f"evolve_generation:{k}")
        LOGGER.info(f"evolve: generation {k + 1}/{generations}, fitness {fitness_of(rows[-1:])[0]:.5g} "
                    f"(best {fitness_of(rows).max():.5g})")
    plot_evolve(save_dir, keys, rows)
    best = rows[int(np.argmax(fitness_of(rows)))]
    LOGGER.info(f"evolve: {generations} generations in {save_dir}; use: train.py --hyp {save_dir / EVOLVE_YAML}")
    return EvolveResult(save_dir, rows, keys, dict(zip(keys, (float(v) for v in best[N_RESULTS:]))))
