"""Checkpoint loading refuses what is not ours in one line: a text file is "not a checkpoint", and a pickle that
needs code is refused without torch's advice to retry with weights_only=False."""
from __future__ import annotations

import importlib
import os

import pytest
import torch

from yolobone.utils.checkpoint import CheckpointError, load_checkpoint


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_text_file_is_not_a_checkpoint(tmp_path, capsys):
    weights = tmp_path / "notes.pt"
    weights.write_text("these are my notes, not weights\n")
    with pytest.raises(CheckpointError, match="notes.pt: not a checkpoint") as e:
        load_checkpoint(weights)
    assert "\n" not in str(e.value) and "pop from empty list" not in str(e.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt: not a checkpoint .*is empty"):
        load_checkpoint(tmp_path / "empty.pt")


@pytest.mark.parametrize("cli, argv", [("train", []), ("train", ["--task", "classify", "--data", "shapes-cls"]),
                                       ("val", []), ("val", ["--task", "classify", "--data", "shapes-cls"]),
                                       ("export", ["--int8", "--data", "shapes"])])
def test_bad_weights_are_refused_before_any_dataset_work(cli, argv, tmp_path, monkeypatch, capsys):
    """An empty dataset cache (a newcomer's machine): the one-line refusal comes first, nothing is generated."""
    weights = tmp_path / "notes.pt"
    weights.write_text("these are my notes, not weights\n")
    monkeypatch.setenv("YOLOBONE_DATASETS", str(tmp_path / "datasets"))
    main = importlib.import_module(f"yolobone.cli.{cli}").main
    extra = ["--device", "cpu", "--project", str(tmp_path / "runs")] if cli != "export" else []
    assert main(["--weights", str(weights), *extra, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.pt: not a checkpoint" in err[0], err
    assert not (tmp_path / "datasets").exists()


def test_code_carrying_pickle_is_refused_without_unsafe_advice(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(), "model_yaml": {}}, evil)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(evil)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{evil}: not a loadable weights-only checkpoint")
    assert "system" in msg and "refused" in msg  # what it wanted to call, and that it is not loaded
    assert "weights_only" not in msg.split("checkpoint", 1)[1] and "False" not in msg and "safe_globals" not in msg
