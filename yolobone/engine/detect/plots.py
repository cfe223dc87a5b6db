"""Plots written to run folders: metric curves, confusion matrix, training results.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so importing this module changes no
global matplotlib state and works without a display.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from yolobone.engine.core.results_csv import PlotInputError, read_results_csv
from yolobone.engine.detect.metrics import DetectionMetrics, smooth

PathLike = Union[str, os.PathLike]
Names = Union[Sequence[str], Dict[int, str]]
MAX_LEGEND_CLASSES = 20  # above this, per-class lines are drawn grey and unlabelled


def _figure(figsize: Tuple[float, float] = (9, 6), nrows: int = 1, ncols: int = 1, tight: bool = True):
    fig = Figure(figsize=figsize, layout="tight" if tight else "none")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols)


def _save(fig: Figure, path: PathLike, dpi: int = 200) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": 1})  # fast writes; size matters little here
    return path


def _class_names(metrics: DetectionMetrics) -> List[str]:
    return [metrics.names.get(int(c), str(int(c))) for c in metrics.classes]


def _finish_axes(ax, xlabel: str, ylabel: str, title: str, legend: bool) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left", fontsize="small")


# ---------------------------------------------------------------------------------------------- metric curves

def plot_pr_curve(metrics: DetectionMetrics, save_path: PathLike) -> Path:
    """Precision vs recall at IoU 0.5 (COCO's 101-point precision envelope), one line per class plus the mean."""
    fig, ax = _figure()
    names = _class_names(metrics)
    few = 0 < len(names) <= MAX_LEGEND_CLASSES
    x = metrics.recall_thresholds
    for i, name in enumerate(names):
        if few:
            ax.plot(x, metrics.pr_curve[i], linewidth=1, label=f"{name} {metrics.ap50[i]:.3f}")
        else:
            ax.plot(x, metrics.pr_curve[i], linewidth=1, color="grey")
    if len(names):
        ax.plot(x, metrics.pr_curve.mean(0), linewidth=3, color="blue",
                label=f"all classes {metrics.map50:.3f} mAP@0.5")
    _finish_axes(ax, "Recall", "Precision", "Precision-Recall Curve", legend=bool(len(names)))
    return _save(fig, save_path)


def plot_conf_curve(px: np.ndarray, curves: np.ndarray, names: Sequence[str], save_path: PathLike,
                    ylabel: str) -> Path:
    """A metric (P, R or F1) vs confidence threshold: one line per class plus the smoothed mean."""
    fig, ax = _figure()
    few = 0 < len(names) <= MAX_LEGEND_CLASSES
    for i, name in enumerate(names):
        if few:
            ax.plot(px, curves[i], linewidth=1, label=name)
        else:
            ax.plot(px, curves[i], linewidth=1, color="grey")
    if len(names):
        mean = smooth(curves.mean(0), 0.05)
        best = int(mean.argmax())
        ax.plot(px, mean, linewidth=3, color="blue", label=f"all classes {mean[best]:.2f} at {px[best]:.3f}")
    _finish_axes(ax, "Confidence", ylabel, f"{ylabel}-Confidence Curve", legend=bool(len(names)))
    return _save(fig, save_path)


def plot_metric_curves(metrics: DetectionMetrics, save_dir: PathLike) -> List[Path]:
    """Write PR_curve.png, F1_curve.png, P_curve.png and R_curve.png into save_dir."""
    save_dir = Path(save_dir)
    names = _class_names(metrics)
    return [plot_pr_curve(metrics, save_dir / "PR_curve.png"),
            plot_conf_curve(metrics.px, metrics.f1_curve, names, save_dir / "F1_curve.png", "F1"),
            plot_conf_curve(metrics.px, metrics.p_curve, names, save_dir / "P_curve.png", "Precision"),
            plot_conf_curve(metrics.px, metrics.r_curve, names, save_dir / "R_curve.png", "Recall")]


# ------------------------------------------------------------------------------------------ confusion matrix

def plot_confusion_matrix(matrix: np.ndarray, names: Names, save_path: PathLike, normalize: bool = True) -> Path:
    """(nc + 1)^2 matrix (rows predicted, columns true, last = background) as an annotated heat map."""
    nc = matrix.shape[0] - 1
    labels = [names[i] for i in range(nc)] if isinstance(names, dict) else list(names)
    if len(labels) != nc:
        raise PlotInputError(f"plot_confusion_matrix: {len(labels)} names for a matrix of {nc} classes + background")
    labels = labels + ["background"]
    if normalize:
        total = matrix.sum(0, keepdims=True)
        values = np.divide(matrix, total, out=np.zeros(matrix.shape), where=total > 0)
    else:
        values = matrix.astype(float)
    size = min(4 + 0.4 * (nc + 1), 14)
    fig, ax = _figure(figsize=(size + 1.5, size))
    shown = np.where(values > 0.005, values, np.nan)  # near-zero cells left blank, as white
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(nc + 1)
    tick_labels = labels if nc < 100 else []  # beyond this the names are unreadable
    tick_size = 10 if nc < 30 else 6
    ax.set_xticks(ticks, tick_labels, rotation=90, fontsize=tick_size)
    ax.set_yticks(ticks, tick_labels, fontsize=tick_size)
    if nc < 30:  # cell values only while they fit
        fontsize = 8 if nc < 15 else 6
        for r, c in zip(*np.nonzero(values > 0.005)):
            text = f"{values[r, c]:.2f}" if normalize else f"{int(matrix[r, c])}"
            ax.text(c, r, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if values[r, c] > 0.6 * np.nanmax(shown) else "black")
    ax.set_xlabel("True")
    ax.set_ylabel("Predicted")
    ax.set_title("Confusion Matrix" + (" (normalised by true class)" if normalize else ""))
    return _save(fig, save_path)


# ------------------------------------------------------------------------------------------ training results

def results_panels(columns: Sequence[str]) -> Tuple[str, ...]:
    """The 2 x 5 grid of results.png: train losses, P, R / val losses, mAP50, mAP50-95 (lr columns not plotted).

    The loss columns are whatever the head's loss reports (box/obj/cls for YOLOv5's heads, box/cls/dfl anchor-free).
    """
    train = tuple(c for c in columns if c.startswith("train/"))
    val = tuple(c for c in columns if c.startswith("val/"))
    return train + ("metrics/precision", "metrics/recall") + val + ("metrics/mAP_0.5", "metrics/mAP_0.5:0.95")


def gaussian_smooth(y: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Gaussian-weighted moving average (kernel cut at 4 sigma), edges padded with the end values."""
    radius = int(4 * sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(np.asarray(y, float), radius, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def plot_results(csv_path: PathLike, save_path: Optional[PathLike] = None) -> Path:
    """results.png (beside the CSV unless save_path): each YOLOv5 results column vs epoch, with a smoothed line."""
    csv_path = Path(csv_path)
    data = read_results_csv(csv_path)
    panels = results_panels(list(data))
    missing = [c for c in ("epoch",) + panels if c not in data]
    if len(panels) != 10:
        missing.append("3 train/ and 3 val/ loss columns")
    if missing:
        raise PlotInputError(f"{csv_path}: missing column(s) {', '.join(missing)}; found {', '.join(data)}")
    epoch = data["epoch"]
    # a fixed grid: tight layout would cost more than all the drawing
    fig, axes = _figure(figsize=(12, 6), nrows=2, ncols=5, tight=False)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.06, top=0.94, wspace=0.45, hspace=0.3)
    for ax, name in zip(axes.ravel(), panels):
        y = data[name]
        ax.plot(epoch, y, marker=".", linewidth=2, markersize=8, label="results")
        if len(y) > 2:
            ax.plot(epoch, gaussian_smooth(y, sigma=3), ":", linewidth=2, label="smooth")
        ax.set_title(name, fontsize=11)
    axes[0, 0].legend()
    return _save(fig, csv_path.with_name("results.png") if save_path is None else save_path)
