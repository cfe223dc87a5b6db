"""Background checkpoint writes: the file on disk is the dict handed over (training goes on changing its tensors),
best.pt is a byte copy of last.pt, errors come back to the caller, and --nbs sets the gradient accumulation."""
from __future__ import annotations

import pytest
import torch

from yolobone.engine.core.checkpoint_writer import CheckpointWriter
from yolobone.engine.core.options import RunOptions, TrainConfigError
from yolobone.engine.core.optim import accumulation
from yolobone.utils.checkpoint import copy_checkpoint, load_checkpoint


def _ckpt(value: float) -> dict:
    w = torch.full((64, 64), value)
    return {"model": {"w": w}, "ema": {"w": w}, "model_yaml": {"nc": 1}, "epoch": int(value)}


@pytest.mark.parametrize("background", [True, False])
def test_writer_saves_last_and_copies_best(tmp_path, background):
    writer = CheckpointWriter(background=background)
    last, best = tmp_path / "w" / "last.pt", tmp_path / "w" / "best.pt"
    writer.write(_ckpt(1.0), last, copies=[best])
    writer.write(_ckpt(2.0), last)  # waits for the first write, then replaces last.pt; best.pt keeps epoch 1
    writer.close()
    assert load_checkpoint(last)["epoch"] == 2 and torch.equal(load_checkpoint(last)["model"]["w"],
                                                                 torch.full((64, 64), 2.0))
    assert load_checkpoint(best)["epoch"] == 1
    assert not list((tmp_path / "w").glob(".*.tmp"))  # no temp files left behind


def test_background_error_is_raised_to_the_caller(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    writer = CheckpointWriter()
    writer.write(_ckpt(1.0), blocker / "last.pt")
    with pytest.raises(OSError):
        writer.wait()
    writer.write(_ckpt(3.0), tmp_path / "ok.pt")  # the writer keeps working after an error
    writer.close()
    assert load_checkpoint(tmp_path / "ok.pt")["epoch"] == 3


def test_copy_checkpoint_is_byte_identical(tmp_path):
    src = tmp_path / "a.pt"
    torch.save(_ckpt(5.0), src)
    dst = copy_checkpoint(src, tmp_path / "sub" / "b.pt")
    assert dst.read_bytes() == src.read_bytes()


def test_nbs_sets_gradient_accumulation():
    assert RunOptions.from_any({"nbs": 16}).nbs == 16 and RunOptions.from_any({}).nbs == 0
    with pytest.raises(TrainConfigError, match="--nbs -1: expected >= 0"):
        RunOptions.from_any({"nbs": -1})
    assert accumulation(16, 16) == (1, 1.0)  # --nbs 16 with batch 16: a step per batch, weight decay unscaled
    assert accumulation(16, 64) == (4, 1.0)
