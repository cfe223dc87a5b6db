"""Classification figures: results.png (loss and accuracy per epoch) and the class confusion matrix.

Drawn on matplotlib's Agg canvas directly (no pyplot), so nothing global changes and no display is needed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from yolobone.engine.core.results_csv import PlotInputError, read_results_csv

PathLike = Union[str, os.PathLike]
CLASSIFY_COLUMNS = ("epoch", "train/loss", "val/loss", "metrics/accuracy_top1", "metrics/accuracy_top5", "lr/0")


def _save(fig: Figure, path: PathLike, dpi: int = 200) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_classify_results(csv_path: PathLike, save_path: Optional[PathLike] = None) -> Path:
    """results.png beside the CSV: train/val loss and top-1/top-5 accuracy against epoch."""
    csv_path = Path(csv_path)
    data = read_results_csv(csv_path)
    missing = [c for c in CLASSIFY_COLUMNS[:5] if c not in data]
    if missing:
        raise PlotInputError(f"{csv_path}: missing column(s) {', '.join(missing)}; found {', '.join(data)}")
    epoch = data["epoch"]
    fig = Figure(figsize=(12, 5), tight_layout=True)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, keys, title, ylabel in ((ax_loss, ("train/loss", "val/loss"), "Loss", "cross-entropy"),
                                    (ax_acc, ("metrics/accuracy_top1", "metrics/accuracy_top5"), "Accuracy",
                                     "accuracy")):
        for k in keys:
            ax.plot(epoch, data[k], marker=".", linewidth=2, markersize=8, label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_acc.set_ylim(0, 1.02)
    best = int(np.argmax(data["metrics/accuracy_top1"]))
    ax_acc.annotate(f"best top-1 {data['metrics/accuracy_top1'][best]:.3f}",
                    (epoch[best], data["metrics/accuracy_top1"][best]), textcoords="offset points", xytext=(0, -18),
                    ha="center")
    return _save(fig, csv_path.with_name("results.png") if save_path is None else save_path)


def plot_classify_confusion(matrix: np.ndarray, names: Sequence[str], save_path: PathLike,
                            normalize: bool = True) -> Path:
    """(nc, nc) matrix, rows = predicted, columns = true class, as a heat map (normalised per true class)."""
    matrix = np.asarray(matrix)
    nc = len(names)
    if matrix.shape != (nc, nc):
        raise PlotInputError(f"plot_classify_confusion: matrix shape {matrix.shape} for {nc} class names")
    if normalize:
        total = matrix.sum(0, keepdims=True)
        values = np.divide(matrix, total, out=np.zeros(matrix.shape), where=total > 0)
    else:
        values = matrix.astype(float)
    size = min(4 + 0.45 * nc, 16)
    fig = Figure(figsize=(size + 1.5, size), tight_layout=True)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    shown = np.where(values > 0.005, values, np.nan)  # near-zero cells left blank
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    readable = nc < 30
    ticks = np.arange(nc)
    ax.set_xticks(ticks, list(names) if readable else [], rotation=90)
    ax.set_yticks(ticks, list(names) if readable else [])
    if readable:
        vmax = np.nanmax(shown) if np.isfinite(shown).any() else 1.0
        for r, c in zip(*np.nonzero(values > 0.005)):
            ax.text(c, r, f"{values[r, c]:.2f}" if normalize else f"{int(matrix[r, c])}", ha="center",
                    va="center", fontsize=8 if nc < 15 else 6, color="white" if values[r, c] > 0.6 * vmax else "black")
    ax.set_xlabel("True")
    ax.set_ylabel("Predicted")
    ax.set_title("Confusion Matrix" + (" (normalised by true class)" if normalize else ""))
    return _save(fig, save_path, dpi=250)
