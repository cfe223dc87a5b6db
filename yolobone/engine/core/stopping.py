"""Early stopping on validation fitness (YOLOv5's --patience)."""
from __future__ import annotations

from yolobone.utils.logging import LOGGER


class EarlyStopping:
    """Stop when fitness has not improved for `patience` epochs (0 disables)."""

    def __init__(self, patience: int = 30, best_fitness: float = 0.0, best_epoch: int = 0):
        self.patience = patience if patience > 0 else float("inf")
        self.best_fitness = best_fitness
        self.best_epoch = best_epoch
        self.possible_stop = False  # the next epoch may be the last

    def __call__(self, epoch: int, fitness: float) -> bool:
        """Record this epoch's fitness; True when training should stop."""
        if fitness >= self.best_fitness:  # >= so a run stuck at 0 fitness in early epochs keeps going
            self.best_epoch = epoch
            self.best_fitness = fitness
        delta = epoch - self.best_epoch
        self.possible_stop = delta >= self.patience - 1
        stop = delta >= self.patience
        if stop:
            LOGGER.info(f"Stopping training early as no improvement observed in last {self.patience} epochs. "
                        f"Best results observed at epoch {self.best_epoch}, best model saved as best.pt.\n"
                        f"To update EarlyStopping(patience={self.patience}) pass a new patience value, "
                        f"i.e. `python train.py --patience 300` or use `--patience 0` to disable EarlyStopping.")
        return stop

    def state_dict(self) -> dict:
        return {"best_fitness": float(self.best_fitness), "best_epoch": int(self.best_epoch)}
