"""Comparison outputs: per-run results.csv read-back, results.md / results.csv tables, pareto.png, curves.png."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from yolobone.engine.compare.metrics import metric_columns, pareto_metric, task_metrics
from yolobone.utils.errors import YoloboneError
from yolobone.utils.profiling import ModelProfile


class RunResultsError(YoloboneError, ValueError):
    """A run's results.csv that cannot be read."""


@dataclass
class RunHistory:
    """Per-epoch metrics of one training run, as its results.csv holds them (one entry per epoch)."""

    epochs: List[int]
    metrics: Dict[str, List[float]]  # our metric name (metric_columns) -> one value per epoch
    best_index: int  # position in `epochs` of the epoch whose weights are best.pt

    @property
    def best_epoch(self) -> int:
        return self.epochs[self.best_index]

    def best(self, name: str) -> float:
        return self.metrics[name][self.best_index]


def _is_number(v: Optional[str]) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
        return True
    except (TypeError, ValueError):
        return False


def read_run_history(csv_path: Path, task: str = "detect") -> RunHistory:
    """Parse a run's results.csv; a repeated epoch (written again after a resume) keeps its last row.

    The best epoch follows the trainers' choice of best.pt: detection keeps the last epoch with the highest
    fitness 0.1 mAP50 + 0.9 mAP50-95 (anchor-free heads: mAP50-95), classification the last with the highest top-1.
    """
    columns = metric_columns(task)
    try:
        with open(csv_path, newline="") as f:
            rows = [{k.strip(): v.strip() for k, v in r.items() if k is not None} for r in csv.DictReader(f)]
    except OSError as e:
        raise RunResultsError(f"{csv_path}: cannot read ({e.strerror})") from None
    by_epoch: Dict[int, Dict[str, float]] = {}
    for line, r in enumerate(rows, 2):
        try:
            by_epoch[int(float(r["epoch"]))] = {name: float(r[col]) for name, col in columns.items()}
        except (KeyError, TypeError, ValueError):
            col = next(c for c in ("epoch", *columns.values()) if not _is_number(r.get(c)))
            raise RunResultsError(f"{csv_path}:{line}: column {col!r} is {r.get(col)!r}, expected a number "
                                  f"(results.csv of a {task} run)") from None
    if not by_epoch:
        raise RunResultsError(f"{csv_path}: no epoch rows")
    epochs = sorted(by_epoch)
    metrics = {name: [by_epoch[e][name] for e in epochs] for name in columns}
    header = list(rows[0])
    return RunHistory(epochs=epochs, metrics=metrics, best_index=task_metrics(task).best_epoch(metrics, header))


@dataclass
class ConfigResult:
    """One table row: a config's size, speed and (when trained) its run's figures."""

    name: str  # unique label (the YAML stem)
    cfg: str
    status: str = "pending"  # pending | done | failed | interrupted | profiled
    error: str = ""  # one line, for failed/interrupted
    how: str = ""  # trained | resumed | read back (done rows)
    profile: Optional[ModelProfile] = None
    train_time_s: Optional[float] = None
    run_dir: Optional[Path] = None
    history: Optional[RunHistory] = None
    notes: List[str] = field(default_factory=list)
    seed: Optional[int] = None  # the training seed of this run
    device: str = ""  # the device it trained on, named
    int8: Dict[str, float] = field(default_factory=dict)  # compare --int8: fp32, int8, drop, int8_ms (int8_eval.py)

    def metric(self, name: str) -> Optional[float]:
        return self.history.best(name) if self.history is not None else None


# ---------------------------------------------------------------------------------------------------- tables
def _latency_keys(rows: Sequence[ConfigResult]) -> Tuple[List[str], Dict[str, str]]:
    """Latency devices present in any row ('cpu' first) and their names."""
    names: Dict[str, str] = {}
    for r in rows:
        if r.profile:
            names.update(r.profile.device_names)
    keys = sorted(names, key=lambda k: (k != "cpu", k))
    return keys, names


def _fmt(v: Optional[float], spec: str) -> str:
    return "" if v is None else format(v, spec)


def _fmt_gflops(v: Optional[float]) -> str:
    """1 decimal from 10 GFLOPs up, 3 significant digits below (tiny models at small sizes stay readable)."""
    return "" if v is None else (f"{v:.1f}" if v >= 10 else f"{v:.3g}")


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _status_text(r: ConfigResult) -> str:
    text = r.status + (f" ({r.how})" if r.how else "") + (f": {r.error}" if r.error else "")
    return text.replace("|", "\\|").replace("\n", " ")


def _device_label(key: str) -> str:
    """'cpu' or 'gpu' for PyTorch (a comparison times at most one CUDA device); 'onnx' / 'openvino' for runtimes."""
    return "gpu" if key.startswith("cuda") else key


def csv_fieldnames(task: str, latency_keys: Sequence[str]) -> List[str]:
    return (["config", "cfg", "status", "error", "params", "gflops", "imgsz"]
            + [f"latency_{_device_label(k)}_{part}" for k in latency_keys for part in ("ms", "device")]
            + ["train_time_s", "epochs", "best_epoch", *metric_columns(task), "run_dir"])


def write_results_csv(path: Path, rows: Sequence[ConfigResult], task: str) -> Path:
    """One row per config, full precision, run_dir relative to the comparison folder."""
    keys, _ = _latency_keys(rows)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=csv_fieldnames(task, keys))
        w.writeheader()
        for r in rows:
            p = r.profile
            rec = {"config": r.name, "cfg": r.cfg, "status": r.status, "error": r.error,
                   "params": p.params if p else "", "gflops": f"{p.gflops:.4f}" if p else "",
                   "imgsz": p.imgsz if p else "",
                   "train_time_s": f"{r.train_time_s:.1f}" if r.train_time_s is not None else "",
                   "epochs": len(r.history.epochs) if r.history else "",
                   "best_epoch": r.history.best_epoch if r.history else "",
                   "run_dir": _rel(r.run_dir, path.parent) if r.run_dir else ""}
            for k in keys:
                v = p.latency_ms.get(k) if p else None
                rec[f"latency_{_device_label(k)}_ms"] = f"{v:.3f}" if v is not None else ""
                rec[f"latency_{_device_label(k)}_device"] = p.device_names.get(k, "") if p else ""
            for name in metric_columns(task):
                v = r.metric(name)
                rec[name] = repr(v) if v is not None else ""
            w.writerow(rec)
    return path


def _rel(p: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(p).resolve(), Path(start).resolve())).as_posix()


def markdown_table(rows: Sequence[ConfigResult], task: str, imgsz: int, base: Path, trained: bool = True) -> str:
    """The results table in GitHub markdown; run links relative to `base` (the folder of results.md).

    trained=False (profile-only) leaves out the training columns.
    """
    keys, _ = _latency_keys(rows)
    metrics = list(metric_columns(task)) if trained else []
    train_head = ["train time", "best epoch", *metrics] if trained else []
    head = (["config", "params", f"GFLOPs@{imgsz}"] + [f"{_device_label(k).upper()} ms" for k in keys]
            + train_head + ["status"] + (["run"] if trained else []))
    n_num = len(head) - 2 - (1 if trained else 0)
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * n_num + ["---"] * (2 if trained else 1)) + "|"]
    for r in rows:
        p = r.profile
        cells = [r.name, f"{p.params:,}" if p else "", _fmt_gflops(p.gflops if p else None)]
        cells += [_fmt(p.latency_ms.get(k) if p else None, ".1f") for k in keys]
        if trained:
            cells += [_duration(r.train_time_s), str(r.history.best_epoch) if r.history else "",
                      *[_fmt(r.metric(m), ".3f") for m in metrics]]
        cells.append(_status_text(r))
        if trained:
            link = _rel(r.run_dir, base) if r.run_dir and r.run_dir.exists() else ""
            cells.append(f"[{link}]({link})" if link else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results_md(path: Path, rows: Sequence[ConfigResult], task: str, imgsz: int, settings: Dict[str, object],
                     command: str, plots: Sequence[Path], trained: bool = True, table: Optional[str] = None,
                     notes: Sequence[str] = ()) -> Path:
    """results.md: the command, the shared settings, the devices timed, the table and the plots.

    table replaces the per-run table (the across-seed one); notes are extra lines after it."""
    keys, names = _latency_keys(rows)
    lines = ["# Backbone comparison", "", "```", command, "```", "",
             "Settings shared by every config: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + ".", ""]
    for k in keys:
        lines.append(f"- {_device_label(k).upper()} latency: median of batch-1 forward passes at "
                     f"{imgsz}x{imgsz} on {names[k]} ({k}), Conv+BN fused, float32.")
    lines.append(f"- Parameters and GFLOPs (one forward pass at {imgsz}x{imgsz}) of the model as trained "
                 f"(the data's class count).")
    if trained:
        t = task_metrics(task)
        metric_note = (f"{' and '.join(t.columns)} of the best epoch ({t.best_epoch_note}), read from each "
                       f"run's results.csv.")
        lines += [f"- {metric_note}", "- Epochs are numbered from 0; train time is the wall time of the training "
                  "run (set-up, epochs, final validation)."]
    lines += ["", table or markdown_table(rows, task, imgsz, path.parent, trained=trained), "", *notes]
    for p in plots:
        lines += [f"![{p.stem}]({_rel(p, path.parent)})", ""]
    path.write_text("\n".join(lines))
    return path


# ---------------------------------------------------------------------------------------------------- plots
def pareto_front(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the points no other point beats on both axes (lower x = latency, higher y = accuracy),
    ordered by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_y = [], float("-inf")
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def latency_axis(rows: Sequence[ConfigResult], backend: Optional[str] = None) -> Optional[str]:
    """The latency the Pareto plot uses: `backend` ('onnx', 'openvino') when given; for PyTorch the GPU when every
    plotted row has it, else the CPU."""
    keys, _ = _latency_keys(rows)
    if backend is not None:
        return backend if all(r.profile and backend in r.profile.latency_ms for r in rows) else None
    gpu = [k for k in keys if k != "cpu"]
    if gpu and all(r.profile and gpu[0] in r.profile.latency_ms for r in rows):
        return gpu[0]
    return "cpu" if "cpu" in keys else None


def _label_points(ax, names: Sequence[str], pts: Sequence[Tuple[float, float]], fontsize: float = 8) -> None:
    """Label each point beside it, moving a label up or down (with a leader line) when it would overlap one
    already placed."""
    ax.autoscale_view()
    scale = 72 / ax.figure.dpi  # display pixels -> points
    h = fontsize + 2
    x0, y0, x1, y1 = (v * scale for v in ax.bbox.extents)
    marks = [tuple(v * scale for v in ax.transData.transform(p)) for p in pts]
    placed: List[Tuple[float, float, float, float]] = [(x - 5, y - 5, x + 5, y + 5) for x, y in marks]  # markers
    for i in sorted(range(len(pts)), key=lambda i: pts[i]):
        px, py = marks[i]
        w = 0.62 * fontsize * len(names[i])
        for k in (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 0):  # the last 0: nothing fits, keep the plain place
            dy = 3 + k * h
            box = (px + 5, py + dy, px + 5 + w, py + dy + h)
            inside = box[1] >= y0 and box[3] <= y1 and box[2] <= x1
            if inside and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                                  for b in placed):
                break
        placed.append(box)
        ax.annotate(names[i], pts[i], textcoords="offset points", xytext=(5, dy), fontsize=fontsize,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5") if k else None)


def plot_pareto(rows: Sequence[ConfigResult], task: str, path: Path, backend: Optional[str] = None,
                spread: Optional[Dict[str, Tuple[float, Optional[float]]]] = None) -> Optional[Path]:
    """Accuracy vs latency per trained config (PyTorch, or the `backend` runtime), Pareto front marked.

    spread: config name -> (mean, std) over seeds; the point sits at the mean with a ±std error bar."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = pareto_metric(task)
    done = [r for r in rows if r.history is not None and r.profile is not None]
    dev = latency_axis(done, backend)
    if not done or dev is None:
        return None
    _, names = _latency_keys(done)
    pts = [(r.profile.latency_ms[dev], spread[r.name][0] if spread else r.metric(metric)) for r in done]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(8, 5.5), tight_layout=True)
    if spread:
        ax.errorbar([x for x, _ in pts], [y for _, y in pts], yerr=[spread[r.name][1] or 0.0 for r in done],
                    fmt="none", ecolor="tab:blue", elinewidth=1, capsize=3, zorder=2, label="± std over seeds")
    ax.scatter([x for x, _ in pts], [y for _, y in pts], s=30, color="tab:blue", zorder=2, label="trained config")
    fx, fy = [pts[i][0] for i in front], [pts[i][1] for i in front]
    ax.step(fx, fy, where="post", color="tab:red", lw=1.5, zorder=1)
    ax.scatter(fx, fy, s=90, facecolors="none", edgecolors="tab:red", lw=1.5, zorder=3, label="Pareto front")
    _label_points(ax, [r.name for r in done], pts)
    _plot_int8(ax, done, pts)
    ax.set_xlabel(f"median latency, batch 1 (ms) on {names.get(dev, dev)}")
    ax.set_ylabel(f"{metric} (best epoch{', mean over seeds' if spread else ''})")
    ax.set_title(f"{metric} vs latency")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _plot_int8(ax: Any, rows: Sequence[ConfigResult], pts: Sequence[Tuple[float, float]]) -> None:
    """compare.py --int8: each config's INT8 export as a second marker (its ONNX Runtime latency and INT8 score),
    joined to the config's FP32 point."""
    quantized = [(r, p) for r, p in zip(rows, pts) if r.int8]
    if not quantized:
        return
    for r, (x, y) in quantized:
        ax.plot([x, r.int8["int8_ms"]], [y, r.int8["int8"]], color="tab:orange", lw=0.8, ls="--", zorder=1)
    ax.scatter([r.int8["int8_ms"] for r, _ in quantized], [r.int8["int8"] for r, _ in quantized], marker="v", s=40,
               color="tab:orange", zorder=2, label="INT8 (ONNX Runtime latency)")


def plot_curves(rows: Sequence[ConfigResult], task: str, path: Path,
                groups: Optional[Dict[str, List[RunHistory]]] = None) -> Optional[Path]:
    """Validation metrics per epoch, every trained config overlaid (one panel per metric).

    groups: config name -> its seeds' histories; each config is drawn as the mean over seeds with a ±std band
    (over the epochs every seed has)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    done = [r for r in rows if r.history is not None]
    if not done:
        return None
    metrics = list(metric_columns(task))
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5), tight_layout=True)
    for ax, m in zip(axes, metrics):
        for name, runs in (groups or {r.name: [r.history] for r in done}).items():
            if not runs:
                continue
            epochs = sorted(set.intersection(*(set(h.epochs) for h in runs)))
            series = [[h.metrics[m][h.epochs.index(e)] for e in epochs] for h in runs]
            mean = [sum(v) / len(v) for v in zip(*series)]
            line, = ax.plot(epochs, mean, marker="o", ms=3, label=f"{name} (n={len(runs)})" if groups else name)
            if len(runs) > 1:
                std = [(sum((x - mu) ** 2 for x in v) / (len(v) - 1)) ** 0.5 for v, mu in zip(zip(*series), mean)]
                ax.fill_between(epochs, [a - b for a, b in zip(mean, std)], [a + b for a, b in zip(mean, std)],
                                color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"val {m}")
        ax.set_title(f"val {m} per epoch")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # outside: many configs
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
