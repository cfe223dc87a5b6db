"""A training callback that stops a run after its first epoch, as a kill would (importable by any test module)."""
from __future__ import annotations


class Interrupt(Exception):
    """Raised by stop_after_first_epoch."""


def stop_after_first_epoch(trainer) -> None:
    """on_fit_epoch_end callback: raise Interrupt once epoch 0 is logged and checkpointed."""
    if trainer.epoch == 0:
        raise Interrupt
