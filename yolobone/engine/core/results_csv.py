"""results.csv, the per-epoch log every task writes, read back by column (for results.png and compare's curves)."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List, Union

import numpy as np

from yolobone.utils.errors import YoloboneError

PathLike = Union[str, os.PathLike]


class PlotInputError(YoloboneError, ValueError):
    """Raised when plot inputs do not fit: a results file without the expected columns, names vs classes."""



def read_results_csv(csv_path: PathLike) -> Dict[str, np.ndarray]:
    """results.csv as {stripped column name: float array}; header names may carry padding spaces."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise PlotInputError(f"{csv_path}: results file not found")
    with open(csv_path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        raise PlotInputError(f"{csv_path}: expected a header and at least one row, got {len(rows)} line(s)")
    header = [h.strip() for h in rows[0]]
    columns: Dict[str, List[float]] = {h: [] for h in header}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise PlotInputError(f"{csv_path}:{line}: {len(row)} values for {len(header)} columns")
        for h, v in zip(header, row):
            try:
                columns[h].append(float(v))
            except ValueError:
                raise PlotInputError(f"{csv_path}:{line}: column {h!r} has {v.strip()!r}, expected a number") from None
    return {h: np.asarray(v) for h, v in columns.items()}
