"""Per-epoch training records: results.csv with YOLOv5's columns, TensorBoard scalars, results.png."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from yolobone.utils.logging import LOGGER

def csv_header(result_keys: Sequence[str]) -> str:
    keys = ("epoch",) + tuple(result_keys)
    return ("%20s," * len(keys) % keys).rstrip(",") + "\n"


def csv_row(epoch: int, values: Sequence[float]) -> str:
    vals = (epoch, *values)
    return ("%20.5g," * len(vals) % vals).rstrip(",") + "\n"


def _row_epoch(line: str) -> Optional[int]:
    """The epoch of a results.csv row, or None for a line cut short by a kill."""
    try:
        return int(float(line.split(",")[0]))
    except ValueError:
        return None


class RunLogger:
    """Writes one results.csv row and the TensorBoard scalars per epoch (rank 0 only: pass enabled=False elsewhere)."""

    def __init__(self, save_dir: Path, keys: Sequence[str], enabled: bool = True, tensorboard: bool = True):
        self.save_dir = Path(save_dir)
        self.keys = tuple(keys)
        self.enabled = enabled
        self.csv = self.save_dir / "results.csv"
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(self.save_dir))
                LOGGER.info(f"TensorBoard: start with 'tensorboard --logdir {self.save_dir.parent}', "
                            f"view at http://localhost:6006/")
            except ImportError as e:  # tensorboard is a requirement, but a broken install must not stop training
                LOGGER.warning(f"TensorBoard disabled ({e})")

    def log_epoch(self, epoch: int, values: Sequence[float]) -> None:
        """values in self.keys order."""
        if not self.enabled:
            return
        if len(values) != len(self.keys):
            raise ValueError(f"log_epoch: {len(values)} values for {len(self.keys)} results.csv columns")
        with open(self.csv, "a") as f:
            if f.tell() == 0:
                f.write(csv_header(self.keys))
            f.write(csv_row(epoch, values))
        if self.tb is not None:
            for k, v in zip(self.keys, values):
                self.tb.add_scalar(k, float(v), epoch)
            self.tb.flush()

    def drop_rows_from(self, epoch: int) -> None:
        """Remove results.csv rows of `epoch` and later: a run killed after logging an epoch but before saving
        last.pt repeats that epoch on --resume, and must not leave it in the file twice."""
        if not self.enabled or not self.csv.is_file():
            return
        lines = self.csv.read_text().splitlines(keepends=True)
        epochs = [_row_epoch(ln) for ln in lines[1:]]
        keep = lines[:1] + [ln for ln, e in zip(lines[1:], epochs) if e is not None and e < epoch]
        if len(keep) != len(lines):
            tmp = self.csv.with_suffix(".csv.tmp")
            tmp.write_text("".join(keep))
            os.replace(tmp, self.csv)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
